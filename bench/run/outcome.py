"""How a run ends: its final state from its records (complete, complete_with_failures, failed), the exit code of
each state (the state a reader sees is bench.rundir.reader_state), the reason an interruption records, one line for an environment fault (disk full, read-only, no permission), and the log that keeps an
unexpected error's traceback while the user sees one line."""

from __future__ import annotations

import os
import traceback
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError, one_line
from bench.run.store import RunStore

# `bench run`'s exit status by the run's final state; bad input (bench.errors.BenchError) exits 2.
EXIT_CODES = {"complete": 0, "complete_with_failures": 3, "failed": 1, "incomplete": 130, "interrupted": 130}
ERROR_LOG = "error.log"
_WRITE_ERRNOS = {28, 30, 13, 1, 122}  # ENOSPC, EROFS, EACCES, EPERM, EDQUOT


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, `kill`): ends a run as Ctrl-C does, and the run says which it was."""


class RunFailed(Exception):
    """The run broke after its directory existed: it is marked failed, and `message` says why in one line."""

    def __init__(self, run_dir: Path, message: str, bad_input: bool) -> None:
        super().__init__(message)
        self.run_dir, self.message, self.bad_input = run_dir, message, bad_input


def interrupt_reason(exc: KeyboardInterrupt) -> str:
    how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
    return f"{how}; the records written so far are kept"


def os_error_line(exc: OSError) -> str:
    """An environment fault as one line naming the path and the cause."""
    where = f"'{exc.filename}'" if exc.filename else "a file"
    cause = exc.strerror or one_line(exc)
    return f"cannot write {where}: {cause}" if exc.errno in _WRITE_ERRNOS else f"{where}: {cause}"


def write_error_log(exc: BaseException, directory: Path | None) -> Path:
    """The full traceback of an unexpected error, in `directory` (a run's) or else the temporary directory."""
    import tempfile

    text = "".join(traceback.format_exception(exc))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidates = ([directory / ERROR_LOG] if directory and directory.is_dir() else []) + \
        [Path(tempfile.gettempdir()) / f"xglm-bench-error-{stamp}-{os.getpid()}.log"]
    for path in candidates:
        try:
            path.write_text(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n{text}", encoding="utf-8")
            return path
        except OSError:
            continue
    return candidates[-1]


def finish(store: RunStore) -> str:
    """The final state from the records: complete, complete_with_failures or failed (nothing measured)."""
    records = store.records()
    counts = Counter(str(r.get("status")) for r in records)
    first = next((r.get("error") for r in records if r.get("status") == "failed"), None)
    fields = {"records": len(records), "records_ok": counts["ok"], "records_failed": counts["failed"],
              "records_skipped": counts["skipped"]}
    if not counts["ok"]:
        skipped = next((r.get("error") for r in records if r.get("status") == "skipped"), None)
        why = f"first error: {first}" if first else f"first reason: {skipped}" if skipped else "no records"
        reason = (f"nothing was measured: {counts['failed']} records failed, {counts['skipped']} skipped ({why})")
        store.set_status("failed", reason=reason, **fields)
        return "failed"
    if counts["failed"]:
        reason = f"{counts['failed']} of {len(records)} records failed (first error: {first})"
        store.set_status("complete_with_failures", reason=reason, **fields)
        return "complete_with_failures"
    store.set_status("complete", **fields)
    return "complete"


def fail(store: RunStore, exc: BaseException) -> RunFailed:
    """Mark the run failed because `exc` broke it; an unexpected error's traceback goes to error.log."""
    bad_input = isinstance(exc, BenchError)
    if bad_input:
        message = str(exc)
    elif isinstance(exc, OSError):
        message = os_error_line(exc)
    else:
        log = write_error_log(exc, store.path)
        message = f"unexpected {one_line(exc)}; the traceback is in {log}"
    try:
        store.set_status("failed", reason=message, records=len(store.records()))
        marked = f"; run {store.path} is marked failed"
    except (OSError, BenchError) as again:
        marked = f"; could not mark run {store.path} failed either ({one_line(again)})"
    return RunFailed(store.path, message + marked, bad_input)
