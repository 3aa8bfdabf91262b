"""Faults, caused on purpose: a writer killed by kill -9, a results file cut mid-line, a cell process killed by
SIGKILL (as the OOM killer does), Ctrl-C, a damaged cached artifact, a read-only cache, a full disk, values that
are not numbers and an unexpected error. Each ends in a run state that tells the truth, one line on stderr, and a
run that --resume (or --retry-failed) finishes."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import tomli_w
from typer.testing import CliRunner

import bench.measure.passes
import bench.run.store
import bench.run.sweep
from bench.cli import app
from bench.run.records import make_record
from bench.run.store import RunStore
from processes import cell_processes
from tinydata import tiny_sweep, write_layouts

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TWO_CELLS = [{"name": "dense-a", "method": "dense"}, {"name": "dense-b", "method": "dense"}]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_layouts(tmp_path_factory.mktemp("fault-data"))


@pytest.fixture(autouse=True)
def _offline(bench_env):
    """No hub, caches in tmp dirs."""


def _config(tmp_path: Path, data: Path, name: str = "sweep.toml", **sections) -> Path:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(tiny_sweep(tmp_path / "runs", tmp_path / "cache", data, **sections)))
    return path


def _invoke(*argv: str):
    result = CliRunner().invoke(app, [str(a) for a in argv])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _one_line(stderr: str) -> str:
    lines = [line for line in ANSI.sub("", stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _only_run(tmp_path: Path) -> Path:
    (run,) = (tmp_path / "runs").iterdir()
    return run


def _bench(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for(predicate, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"bench ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def _cell_ids(run: Path) -> list[str]:
    return [r["cell_id"] for r in RunStore(run).records()]


# ------------------------------------------------------------------------------------ the writer dies


def test_kill_9_leaves_an_interrupted_run_that_resume_finishes_at_once(tmp_path, data):
    config = _config(tmp_path, data, variants=TWO_CELLS, measure={"min_time_s": 600.0, "max_time_s": 600.0,
                                                                  "min_iters": 10**9})
    writer = _bench("run", config)
    runs = tmp_path / "runs"
    prepared = lambda: runs.is_dir() and any((run / "results.jsonl").is_file() for run in runs.iterdir())  # noqa: E731
    _wait_for(prepared, writer, "prepared cells")  # their rounds run for ten minutes
    run = _only_run(tmp_path)
    # While its writer lives, the run is refused in one line that names the writer.
    refused = _invoke("run", "--resume", run)
    assert refused.exit_code == 2
    assert f"being written by bench process {writer.pid}" in _one_line(refused.stderr)
    writer.kill()  # kill -9: no handler runs, run.json keeps saying "running"
    writer.communicate(timeout=60)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "running" and manifest["writer"]["pid"] == writer.pid and manifest["writer"]["host"]

    report = _invoke("report", run)
    assert report.exit_code == 0, report.output
    text = " ".join(ANSI.sub("", report.stdout).split())
    assert "interrupted" in text and f"pid {writer.pid}" in text and "--resume" in text
    assert "running" not in text.split("machine")[0]  # the header says interrupted, not running

    # The run's own config timed for ten minutes; make it quick. The kernel released the dead writer's lock: the
    # resume starts at once.
    (run / "config.toml").write_text((run / "config.toml").read_text().replace("min_time_s = 600.0", "min_time_s = 0.0")
                                     .replace("max_time_s = 600.0", "max_time_s = 5.0")
                                     .replace(f"min_iters = {10**9}", "min_iters = 3"))
    resumed = _invoke("run", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    assert ANSI.sub("", resumed.stdout).strip().splitlines()[-1].startswith("state: complete")
    ids = _cell_ids(run)
    assert len(set(ids)) == 2 and all(ids.count(c) == 4 for c in set(ids))  # 4 scenarios per cell, none twice
    assert sorted((run / "cells.done").read_text().split()) == sorted(set(ids))
    assert json.loads((run / "run.json").read_text())["writer"]["pid"] == os.getpid()


def test_a_cut_last_line_is_read_up_to_and_measured_again_on_resume(tmp_path, data):
    config = _config(tmp_path, data, variants=TWO_CELLS)
    assert _invoke("run", config).exit_code == 0
    run = _only_run(tmp_path)
    before = RunStore(run).records()
    results = run / "results.jsonl"
    raw = results.read_bytes()
    last = raw.rstrip(b"\n").rfind(b"\n") + 1
    results.write_bytes(raw[: last + (len(raw) - last) // 2])  # a power cut in the middle of the last record
    cut_cell = before[-1]["cell_id"]

    report = _invoke("report", run)
    assert report.exit_code == 0, report.output
    text = " ".join(ANSI.sub("", report.stdout).split())
    assert "incomplete" in text and f"line {len(before)} was cut off" in text

    resumed = _invoke("run", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    said = " ".join(ANSI.sub("", resumed.stdout).split())
    assert f"line {len(before)} of results.jsonl was cut off and is dropped" in said and cut_cell in said
    after = RunStore(run).records()
    assert sorted(r["cell_id"] for r in after) == sorted(r["cell_id"] for r in before)
    assert [r for r in after if r["cell_id"] != cut_cell] == [r for r in before if r["cell_id"] != cut_cell]
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_a_damaged_line_in_the_middle_stays_an_error_naming_it(tmp_path, data):
    assert _invoke("run", _config(tmp_path, data)).exit_code == 0
    run = _only_run(tmp_path)
    lines = (run / "results.jsonl").read_text().splitlines()
    lines[1] = lines[1][:40]
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    resumed = _invoke("run", "--resume", run)
    assert resumed.exit_code == 2 and "results.jsonl:2: not a JSON record" in _one_line(resumed.stderr)


# ------------------------------------------------------------------------------- cells that die or fail


def test_a_cell_killed_by_sigkill_fails_retryably_and_resume_measures_it_again(tmp_path, data):
    config = _config(tmp_path, data, measure={"isolation": "process", "min_time_s": 600.0, "max_time_s": 600.0,
                                              "min_iters": 10**9})
    writer = _bench("run", config)
    parent = psutil.Process(writer.pid)
    _wait_for(lambda: cell_processes(parent), writer, "cell process")
    time.sleep(1.0)
    for cell in cell_processes(parent):
        cell.send_signal(signal.SIGKILL)  # what the OOM killer does
    _, stderr = writer.communicate(timeout=120)
    assert writer.returncode == 1, stderr  # failed: nothing was measured
    assert "nothing was measured" in _one_line(stderr) and "killed by SIGKILL" in stderr
    run = _only_run(tmp_path)
    records = RunStore(run).records()
    assert {r["status"] for r in records} == {"failed"} and all(r["failure_retryable"] for r in records)
    assert json.loads((run / "run.json").read_text())["status"] == "failed"

    # The run's own config measured for ten minutes; make it quick, then resume: the dead cell is measured again.
    (run / "config.toml").write_text((run / "config.toml").read_text().replace("min_time_s = 600.0", "min_time_s = 0.0")
                                     .replace("max_time_s = 600.0", "max_time_s = 5.0")
                                     .replace(f"min_iters = {10**9}", "min_iters = 3"))
    resumed = _invoke("run", "--resume", run, "--isolation", "none")
    assert resumed.exit_code == 0, resumed.output
    assert "1 done cells measured again" in " ".join(ANSI.sub("", resumed.stdout).split())
    assert {r["status"] for r in RunStore(run).records()} == {"ok"}


def test_retry_failed_measures_failed_cells_again_and_resume_alone_does_not(tmp_path, data, monkeypatch):
    def broken_memory(runner, batch):
        raise MemoryError("sampler broke")

    config = _config(tmp_path, data)
    with monkeypatch.context() as patch:
        patch.setattr(bench.measure.passes, "memory", broken_memory)
        first = _invoke("run", config)
    assert first.exit_code == 3, first.output  # complete_with_failures
    assert _one_line(first.stderr).startswith("complete_with_failures: 1 of 4 records failed")
    assert ANSI.sub("", first.stdout).strip().splitlines()[-1].startswith("state: complete_with_failures")
    run = _only_run(tmp_path)

    again = _invoke("run", "--resume", run)  # not retryable (the measurement failed, not the process)
    assert again.exit_code == 3 and "1 finished cells kept" in " ".join(ANSI.sub("", again.stdout).split())
    retried = _invoke("run", "--resume", run, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "1 done cells measured again" in " ".join(ANSI.sub("", retried.stdout).split())
    records = RunStore(run).records()
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_ctrl_c_ends_the_run_without_a_traceback_from_the_cell_process(tmp_path, data):
    config = _config(tmp_path, data, measure={"isolation": "process", "min_time_s": 600.0, "max_time_s": 600.0,
                                              "min_iters": 10**9})
    # Its own process group, as a terminal's job, with Ctrl-C's default action even where this test runs as a
    # background job (whose commands start with SIGINT ignored, and Python then installs no handler for it).
    writer = _bench("run", config, start_new_session=True,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    parent = psutil.Process(writer.pid)
    _wait_for(lambda: cell_processes(parent), writer, "cell process")
    time.sleep(2.0)  # the cell is running
    os.killpg(writer.pid, signal.SIGINT)  # Ctrl-C reaches every process of the group
    _, stderr = writer.communicate(timeout=60)
    assert writer.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "interrupted (Ctrl-C)" in _one_line(stderr)
    manifest = json.loads((_only_run(tmp_path) / "run.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["reason"].startswith("interrupted (Ctrl-C)")


# -------------------------------------------------------------------------------------------- the cache


def test_a_damaged_artifact_is_found_by_verify_and_rebuilt_with_a_note(tmp_path, data):
    config = _config(tmp_path, data)
    cache = tmp_path / "cache"
    assert _invoke("run", config).exit_code == 0
    verified = _invoke("cache", "verify", "--cache-dir", cache)
    assert verified.exit_code == 0 and "1 artifacts" in verified.stdout and "0 damaged" in verified.stdout
    (artifact,) = (cache / "artifacts").iterdir()
    weights = artifact / "model.safetensors"
    raw = bytearray(weights.read_bytes())

    raw[-10] ^= 0xFF  # one flipped byte: same size, header intact; only the hash sees it
    weights.write_bytes(bytes(raw))
    flipped = _invoke("cache", "verify", "--cache-dir", cache)
    assert flipped.exit_code == 1 and "does not match the sha256" in flipped.stdout
    assert _one_line(flipped.stderr).startswith("damaged: 1 artifacts")

    weights.write_bytes(bytes(raw[: len(raw) // 2]))  # cut short: "incomplete metadata, file not fully covered"
    rerun = _invoke("run", config)
    assert rerun.exit_code == 0, rerun.output
    assert "is damaged (model.safetensors" in " ".join(ANSI.sub("", rerun.stdout).split())
    assert "building it again" in ANSI.sub("", rerun.stdout)
    assert _invoke("cache", "verify", "--cache-dir", cache).exit_code == 0

    cleared = _invoke("cache", "clear", "--cache-dir", cache)
    assert cleared.exit_code == 0 and not any((cache / "artifacts").iterdir())
    assert not (cache / "tokenizers").is_dir() or not any((cache / "tokenizers").iterdir())


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o ro,size=64k none /mnt"], capture_output=True).returncode == 0


def test_a_read_only_cache_is_one_line_naming_path_and_cause(tmp_path, data):
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    config = _config(tmp_path, data)
    config.write_text(config.read_text().replace(str(tmp_path / "cache"), str(cache)))
    if os.geteuid() != 0:
        cache.chmod(0o555)
        command = [sys.executable, "-m", "bench", "run", str(config)]
    elif _unshare_works():  # root writes anywhere: a read-only mount is what stops it
        command = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro,size=64k none '{cache}' && "
                                                  f"exec '{sys.executable}' -m bench run '{config}'"]
    else:
        pytest.skip("running as root without user namespaces: no way to make a directory read-only here")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert f"cache directory '{cache}' is not writable" in line
    assert "Read-only file system" in line or "Permission denied" in line
    assert not (tmp_path / "runs").exists()


def test_a_full_disk_is_one_line_and_the_run_is_marked_failed_without_temporary_files(tmp_path, data, monkeypatch):
    """ENOSPC on every new block: the results line (after half of it was written), the temporary run.json."""
    real_write, real_write_text = os.write, Path.write_text

    def full_write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("results.jsonl"):
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def full_write_text(self, *args, **kwargs):
        if self.name.endswith(".tmp") and "runs" in self.parts and (self.parent / "results.jsonl").exists():
            real_write_text(self, "")  # the file is created, then the disk has no room for its contents
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(bench.run.store.os, "write", full_write)
    monkeypatch.setattr(Path, "write_text", full_write_text)
    result = _invoke("run", _config(tmp_path, data))
    monkeypatch.undo()
    assert result.exit_code == 1
    run = _only_run(tmp_path)
    line = _one_line(result.stderr)
    assert f"cannot write '{run / 'results.jsonl'}': No space left on device" in line and "marked failed" in line
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert (run / "results.jsonl").read_bytes() == b""  # the half-written line was taken back


# ------------------------------------------------------------------------------------ values and errors


def test_nan_and_inf_become_null_with_a_note_and_the_run_completes(tmp_path, data, monkeypatch):
    real_parity = bench.measure.passes.parity

    def overflowing_parity(logits, reference):  # fp16 overflow in the logit difference
        return real_parity(logits, reference) | {"max_abs_logit_diff": float("inf"), "agreement_vs_eager_fp32": float("nan")}

    monkeypatch.setattr(bench.measure.passes, "parity", overflowing_parity)
    result = _invoke("run", _config(tmp_path, data))
    assert result.exit_code == 0, result.output
    run = _only_run(tmp_path)
    assert "NaN" not in (run / "results.jsonl").read_text() and "Infinity" not in (run / "results.jsonl").read_text()
    for record in RunStore(run).records():
        assert record["max_abs_logit_diff"] is None and record["agreement_vs_eager_fp32"] is None
        assert "max_abs_logit_diff=inf" in record["non_finite_note"] and "agreement_vs_eager_fp32=nan" in record["non_finite_note"]
    assert not re.search(r"\b(nan|inf)\b", ANSI.sub("", result.stdout), re.IGNORECASE)


def test_compare_never_shows_nan_beside_an_interval_nor_counts_that_cell(tmp_path):
    recorded = Path(__file__).parent / "fixtures" / "recorded"
    base, other = (shutil.copytree(recorded / name, tmp_path / name) for name in ("cpu-dense", "cpu-dense-x1.25"))
    full = _invoke("compare", base, other)
    records = [json.loads(line) for line in (other / "results.jsonl").read_text().splitlines()]
    latency = next(r for r in records if r["scenario"] == "latency" and r["status"] == "ok")
    latency["latency_ms_p50"] = float("nan")  # as an older harness wrote it
    (other / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = _invoke("compare", base, other, "--fail-on-regression", "50")
    assert result.exit_code == 0, result.output
    assert not re.search(r"\bnan\b", ANSI.sub("", result.stdout), re.IGNORECASE)
    compared = lambda out: int(re.search(r"(\d+) cells compared", ANSI.sub("", out)).group(1))  # noqa: E731
    assert compared(result.stdout) == compared(full.stdout) - 1


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_run_log(tmp_path, data, monkeypatch):
    def broken(self, *args):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(bench.run.sweep.Sweep, "_group", broken)
    result = _invoke("run", _config(tmp_path, data, measure={"seq_lens": [48]}))
    assert result.exit_code == 1
    # Preflight warned first: pairs are at most model.max_length (32) tokens, so a 48-token shape is mostly padding.
    said = " ".join(ANSI.sub("", result.stdout).split())
    assert "measure.seq_lens 48 exceeds model.max_length 32" in said and "at least 33% of each" in said
    run = _only_run(tmp_path)
    line = _one_line(result.stderr)
    assert f"unexpected RuntimeError: an internal bug; the traceback is in {run / 'error.log'}" in line
    log = (run / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "_group" in log
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_an_unexpected_error_before_the_run_exists_logs_to_the_temporary_directory(tmp_path, data, monkeypatch):
    import tempfile

    import bench.run.plan

    def broken(*args, **kwargs):
        raise KeyError("tokenizer")

    monkeypatch.setattr(bench.run.plan, "load_tokenizer", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = _invoke("run", _config(tmp_path, data))
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    (log,) = (tmp_path / "tmp").glob("xglm-bench-error-*.log")
    assert "unexpected KeyError" in line and str(log) in line and "Traceback" in log.read_text()
    assert not (tmp_path / "runs").exists()


def test_resume_keeps_whole_cells_and_redoes_cut_dead_and_with_retry_failed_failed_ones(tmp_path):
    def fill(store: RunStore) -> None:
        for cell, status, extra in (("ok", "ok", {}), ("died", "failed", {"failure_retryable": True}),
                                    ("broke", "failed", {}), ("last", "ok", {})):
            for scenario in ("latency", "memory"):
                store.append(make_record(cell_id=cell, status=status, scenario=scenario, **extra))
            store.mark_done(cell)

    for retry_failed, expected in ((False, ["ok", "broke"]), (True, ["ok"])):
        store = RunStore.create(tmp_path, f"retry-{retry_failed}")
        fill(store)
        store.unlock()
        results = store.path / "results.jsonl"
        raw = results.read_bytes()
        results.write_bytes(raw[: raw.rstrip(b"\n").rfind(b"\n") + 12])  # cut before the line names its cell
        said = store.prepare_resume(retry_failed)
        # The cut line's cell is the last one marked done ("last"), measured again with the dead one.
        assert (store.path / "cells.done").read_text().split() == expected, said
        assert sorted({r["cell_id"] for r in store.records()}) == sorted(expected)
        assert store.read()[1] is None and "line 8 of results.jsonl was cut off" in said


def test_a_reader_sees_a_dead_writer_as_interrupted_and_a_live_one_as_running(tmp_path):
    from bench.rundir import reader_state

    store = RunStore.create(tmp_path, "alive")
    assert reader_state(store)["status"] == "running"  # this process holds the lock
    store.unlock()  # as the kernel does when the writer dies
    state = reader_state(store)
    assert state["status"] == "interrupted" and f"pid {os.getpid()}" in state["reason"]


# ------------------------------------------------------------------- issue 31: memory, caches, reports, training


def test_an_oom_in_a_cell_is_a_failed_record_naming_the_shape_and_the_other_cells_go_on(tmp_path, data, monkeypatch):
    """MemoryError in one cell's memory pass (faked: this machine is shared and must never be run out of memory)."""
    real = bench.measure.passes.memory
    calls = []

    def memory(runner, batch):
        calls.append(batch.input_ids.shape)
        if len(calls) == 1:
            raise MemoryError()
        return real(runner, batch)

    monkeypatch.setattr(bench.measure.passes, "memory", memory)
    config = _config(tmp_path, data, variants=TWO_CELLS)
    result = _invoke("run", config)
    assert result.exit_code == 3, result.output  # complete_with_failures: the other cell was measured
    records = RunStore(_only_run(tmp_path)).records()
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["scenario"] == "memory"
    assert re.fullmatch(r"out of memory at batch 2 x 16 \(estimated \d+\.\d\d GiB, free \d+\.\d\d GiB\)", failed[0]["error"])
    ok = [r for r in records if r["scenario"] == "memory" and r["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["estimated_peak_memory_mb"] > 0 and ok[0]["memory_free_at_start_mb"] > 0


def test_a_cell_killed_by_sigkill_says_out_of_memory_at_its_shape(tmp_path, data):
    config = _config(tmp_path, data, measure={"isolation": "process", "block_time_s": 600.0, "scenarios": ["latency"]})
    writer = _bench("run", config)
    parent = psutil.Process(writer.pid)
    for line in writer.stdout:  # the cell is prepared and its blocks are being timed at 2 x 16
        if "interleaved rounds" in line:
            break
    time.sleep(1.0)
    for cell in cell_processes(parent):
        cell.send_signal(signal.SIGKILL)
    writer.communicate(timeout=120)
    (record,) = RunStore(_only_run(tmp_path)).records()
    assert record["error"].startswith("out of memory at batch 2 x 16 (estimated "), record["error"]
    assert "killed by SIGKILL" in record["error"]


def test_a_truncated_calibration_is_found_by_verify_and_measured_again_with_a_note(tmp_path, monkeypatch):
    from bench.measure import calibrate

    monkeypatch.setattr(calibrate, "measure", lambda device, threads: {
        **{f"peak_tflops_{name}": 1.0 for name in calibrate.TORCH_DTYPES}, "peak_gbps": 2.0})
    cache = tmp_path / "cache"
    whole = calibrate.load_or_measure(cache, "cpu", 1)
    (path,) = (cache / "calibration").glob("*.json")
    assert not list(path.parent.glob(".*tmp"))  # written through a temporary file, none left
    path.write_text(path.read_text()[:40])  # cut, as a crash mid-write (before atomic writes) left it

    verify = _invoke("cache", "verify", "--cache-dir", cache)
    assert verify.exit_code == 1 and "1 calibrations" in ANSI.sub("", verify.stderr), verify.output
    assert "is unreadable (JSONDecodeError" in ANSI.sub("", verify.stdout) and str(path.name) in verify.stdout

    notes = []
    healed = calibrate.load_or_measure(cache, "cpu", 1, note=notes.append)
    assert healed["peak_gbps"] == whole["peak_gbps"] and calibrate.calibration_problem(path) is None
    assert len(notes) == 1 and "measuring the peaks again" in notes[0] and str(path) in notes[0]
    assert _invoke("cache", "verify", "--cache-dir", cache).exit_code == 0


def test_a_failed_render_leaves_the_old_report_and_plots_in_place(tmp_path, monkeypatch):
    import reports.report

    run = Path(shutil.copytree(Path(__file__).parent / "fixtures" / "recorded" / "cpu-dense", tmp_path / "run"))
    assert _invoke("report", run).exit_code == 0
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert any(p.parts[0] == "plots" for p in before)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.report, "html_page", broken)
    result = _invoke("report", run)
    assert result.exit_code == 2 and "cannot write the report" in _one_line(result.stderr)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing replaced, nothing deleted, no staging left behind


def test_a_loss_that_becomes_nan_fails_the_build_at_its_step_and_caches_nothing(tmp_path, data):
    config = _config(tmp_path, data, train={"steps": 3, "lr": 1e30}, measure={"scenarios": ["accuracy"]})
    result = _invoke("run", config)
    line = _one_line(result.stderr)
    assert result.exit_code == 2 and re.search(r"the (loss|gradient norm|weights) became (nan|inf) at step [1-3] of 3", line), line
    assert not list((tmp_path / "cache").glob("artifacts/*/meta.json"))
    assert json.loads((_only_run(tmp_path) / "run.json").read_text())["status"] == "failed"


def test_untrained_variants_say_so_in_a_warning_and_their_records(tmp_path, data):
    result = _invoke("run", _config(tmp_path, data, measure={"scenarios": ["accuracy"]}))  # tiny_sweep: steps = 0
    assert result.exit_code == 0, result.output
    assert "train.steps = 0: dense-ft are not trained" in " ".join(ANSI.sub("", result.stdout).split())
    assert {r["trained"] for r in RunStore(_only_run(tmp_path)).records()} == {False}
