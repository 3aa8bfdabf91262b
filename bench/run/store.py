"""The results store: one directory per run holding results.jsonl (a flat record per line, appended and flushed as
each cell finishes), env.json, the resolved config, run.json and cells.done (the cells whose records are all
written, for --resume).

run.json's status is the run's state: running; complete (every record ok, or skipped with its reason);
complete_with_failures (some records failed); failed (nothing was measured, or the run itself broke: the reason
says why, and an unexpected error leaves its traceback in error.log); incomplete (stopped by Ctrl-C or SIGTERM).
Readers see two more: interrupted (run.json says running but its writer, recorded by pid and host, is gone:
killed or crashed) and incomplete when the last line of results.jsonl was cut. Two runs never share a directory:
a run holds an exclusive lock on it while it writes, which the kernel releases when the writer dies. Reading (the
records, the state a reader sees) is bench.rundir's RunDir, which reports use without importing the harness; every
record is validated against bench/records.py as it is appended.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import jsonl
from bench.errors import BenchError
from bench.records import validate
from bench.rundir import DONE, LOCK, MANIFEST, RESULTS, RunDir



class RunStore(RunDir):
    """A run directory as its one writer holds it: records appended whole, files replaced atomically, the lock."""

    @classmethod
    def create(cls, output_dir: Path, name: str) -> "RunStore":
        """runs/<UTC timestamp>-<name>[-N]/, created exclusively so that concurrent runs never collide."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create output directory '{output_dir}': {exc.strerror}; choose another with --output-dir") from None
        if not os.access(output_dir, os.W_OK):
            raise BenchError(f"output directory '{output_dir}' is not writable; choose another with --output-dir")
        for attempt in range(1, 1000):
            path = output_dir / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise BenchError(f"cannot create run directory '{path}': {exc.strerror}") from None
            store = cls(path)
            store.lock()
            store.set_status("running", started=now_utc())
            return store
        raise BenchError(f"too many runs named '{name}' in the same second in '{output_dir}'")

    # ---------------------------------------------------------------------------------------------- writing

    def append(self, record: dict[str, Any]) -> None:
        """One record as one line, flushed to disk. A failed write is undone, so the file never ends in half a line.
        The line is validated as it will be read back (bench.records.RecordError names a key the schema does not know
        or a value of the wrong type): nothing unvalidated is written."""
        target = self.path / RESULTS
        text = jsonl.dumps(record)
        validate(json.loads(text))
        line = text.encode("utf-8")
        with named_errors(target):
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):  # not every file can be truncated (a device)
                        os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)

    def mark_done(self, cell_id: str) -> None:
        with named_errors(self.path / DONE), open(self.path / DONE, "a", encoding="utf-8") as fh:
            fh.write(cell_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2, sort_keys=True, default=str))

    def write_text(self, name: str, text: str) -> None:
        """Atomically (bench.atomic); a failed write leaves the old file and no temporary file behind."""
        from bench import atomic

        target = self.path / name
        with named_errors(target):
            atomic.write_text(target, text)

    # ---------------------------------------------------------------------------------------------- state

    def set_status(self, status: str, **fields: Any) -> None:
        # A reason belongs to the status it explains: a resumed run that completes is no longer "interrupted".
        try:
            previous = {k: v for k, v in self.manifest().items() if k != "reason"}
        except ValueError:  # a damaged run.json is replaced
            previous = {}
        manifest = {**previous, "run_id": self.run_id, "status": status, **fields}
        if status == "running":
            manifest["writer"] = {"pid": os.getpid(), "host": socket.gethostname()}
        else:
            manifest["finished"] = now_utc()
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
        try:
            self.write_text(MANIFEST, text)
        except OSError:
            if status == "running":
                raise
            # A full disk has no room for a second copy; run.json itself is small and its own blocks are free again
            # once truncated, so the final state still gets written in place.
            with named_errors(self.path / MANIFEST), open(self.path / MANIFEST, "w", encoding="utf-8") as fh:
                fh.write(text)

    # ---------------------------------------------------------------------------------------------- the writer

    def lock(self) -> None:
        """Hold this run directory for the life of the process; a second writer gets a clear error."""
        import fcntl

        handle = open(self.path / LOCK, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            try:
                writer = (self.read_json(MANIFEST) or {}).get("writer") or {}
            except ValueError:
                writer = {}
            who = f"bench process {writer.get('pid')} on {writer.get('host')}" if writer else "another bench process"
            raise BenchError(f"run directory '{self.path}' is being written by {who}; wait for it to finish, "
                             "or stop it and resume") from None
        self._lock_handle = handle

    def unlock(self) -> None:
        handle = getattr(self, "_lock_handle", None)
        if handle is not None:
            handle.close()  # closing the file releases the flock
            self._lock_handle = None

    # ---------------------------------------------------------------------------------------------- resume

    def prepare_resume(self, retry_failed: bool = False) -> str:
        """Before a resume: keep the cells that are done and whole; drop the records of the others, which are measured
        again. Redone: a cell cut off mid-write, a cell whose process died or timed out (failure_retryable), and with
        retry_failed every cell with a failed record. Returns what was kept and dropped, in words."""
        records, cut = self.read()
        done = self.done_cells()
        redo = {r.get("cell_id") for r in records if r.get("failure_retryable")}
        if retry_failed:
            redo |= {r.get("cell_id") for r in records if r.get("status") == "failed"}
        order = (self.path / DONE).read_text(encoding="utf-8").split() if done else []
        if cut is not None:
            # The cut line's cell lost a record. Its fragment names the cell unless the cut came within its first few
            # hundred bytes; then, as a cell is marked done only after its last record, the cell is either not done
            # (measured again anyway) or the last one marked done.
            redo.add(cut.cell_id or (order[-1] if order else None))
        kept = [c for c in dict.fromkeys(order) if c not in redo]
        self.write_text(DONE, "".join(f"{c}\n" for c in kept))
        keep = [r for r in records if r.get("cell_id") in set(kept)]
        self.write_text(RESULTS, "".join(jsonl.dumps(r) for r in keep))
        again = sorted(c for c in redo if c in done)
        words = [f"{len(kept)} finished cells kept"]
        if cut is not None:
            words.append(f"line {cut.lineno} of {RESULTS} was cut off and is dropped")
        if again:
            words.append(f"{len(again)} done cells measured again ({', '.join(again[:3])}{', ...' if len(again) > 3 else ''})")
        if len(records) - len(keep):
            words.append(f"{len(records) - len(keep)} records of unfinished or retried cells dropped")
        return "; ".join(words)


class named_errors:
    """Re-raise an OSError with the file the user knows (results.jsonl, not its temporary twin) as its filename."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename != str(self.target):
            raise OSError(exc.errno, exc.strerror, str(self.target)) from exc
        return False


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
