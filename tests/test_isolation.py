"""Cells in their own processes: a hang or a crash becomes a failed record; --resume finishes a cut-off run."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from rich.console import Console

from bench.backends import Target
from bench.run.cell import CellTask
from bench.run.isolation import run_isolated
from bench.config import BackendOptions, MeasureConfig, parse_config
from bench.data.evalset import EvalSet
from bench.run.store import RunStore
from bench.run.sweep import run_sweep


class _DiesOnArrival:
    """Unpickling this in the child process calls os._exit(3): a cell that crashes hard."""

    def __reduce__(self):
        return (os._exit, (3,))


def _task(tmp_path, **base) -> CellTask:
    evalset = EvalSet([[2, 5, 6]], np.array([0]), np.array(["en"]), pad_id=1)
    return CellTask(
        cell_id="v/t/0/eager/fp32/cpu", artifact_path=str(tmp_path / "missing"), base={"method": "dense", "backend": "eager", **base},
        target=Target("cpu", "fp32", 1), options=BackendOptions(),
        measure=MeasureConfig(scenarios=["latency"], batch_sizes=[1], seq_lens=[4]), evalset=evalset,
        reference=np.zeros((1, 3), dtype=np.float32), workdir=str(tmp_path), peaks=None, max_length=16,
    )


def test_a_cell_that_dies_becomes_a_failed_record(tmp_path):
    result = run_isolated(_task(tmp_path, poison=_DiesOnArrival()), timeout_s=120)
    (record,) = result.records
    assert record["status"] == "failed" and "cell process died (exit code 3)" in record["error"]
    assert (record["scenario"], record["batch_size"], record["seq_len"]) == ("latency", 1, 4)


def test_a_cell_past_its_time_limit_is_killed(tmp_path):
    result = run_isolated(_task(tmp_path), timeout_s=0.01)
    (record,) = result.records
    assert record["status"] == "failed" and "exceeded its time limit" in record["error"]


def test_an_error_in_the_cell_is_a_failed_record_not_a_crash(tmp_path):
    result = run_isolated(_task(tmp_path), timeout_s=120)  # the artifact does not exist
    (record,) = result.records
    assert record["status"] == "failed" and "realize" in record["error"] and "missing" in record["error"]


def test_resume_measures_only_the_cells_that_were_cut_off(tiny_config, tmp_path):
    cfg = parse_config(tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["eager", "onnxruntime"]}))
    store = run_sweep(cfg, Console(file=io.StringIO()))
    before = store.records()
    done = (store.path / "cells.done").read_text().split()
    assert len(done) == 2 and {r["cell_id"] for r in before} == set(done)
    # Cut the run off inside its second cell: that cell is not done and left a partial record behind.
    (store.path / "cells.done").write_text(done[0] + "\n")
    partial = [r for r in before if r["cell_id"] == done[1]][0]
    lines = [json.dumps(r) for r in before if r["cell_id"] == done[0]] + [json.dumps(partial)]
    (store.path / "results.jsonl").write_text("\n".join(lines) + "\n")
    store.set_status("incomplete", reason="interrupted (Ctrl-C)")
    resumed = run_sweep(cfg, Console(file=io.StringIO()), resume=store.path)
    assert "reason" not in resumed.manifest() and "resumed" in resumed.manifest()
    after = resumed.records()
    assert resumed.path == store.path and resumed.manifest()["status"] == "complete"
    assert sorted(r["cell_id"] for r in after) == sorted(r["cell_id"] for r in before)  # no duplicates
    first = [r for r in after if r["cell_id"] == done[0]]
    assert first == [r for r in before if r["cell_id"] == done[0]]  # finished cells untouched
    assert sorted((store.path / "cells.done").read_text().split()) == sorted(done)


def test_a_run_directory_has_one_writer(tmp_path):
    """flock is per open file: a second bench process cannot take a run directory that one is writing."""
    import subprocess
    import sys

    store = RunStore.create(tmp_path, "locked")
    code = f"from bench.run.store import RunStore; from pathlib import Path; RunStore.open(Path({str(store.path)!r})).lock()"
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert second.returncode != 0 and "being written by another bench process" in second.stderr
    store.unlock()
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_default_sweep_runs_each_cell_in_its_own_process_with_roofline(tiny_sweep):
    latency = [r for r in tiny_sweep.records if r["scenario"] == "latency"]
    assert {r["isolation"] for r in tiny_sweep.records if r.get("cell_id")} == {"process"}
    for r in latency:
        assert len(r["latency_samples_ms"]) == r["latency_count"]
        assert np.median(r["latency_samples_ms"]) == pytest.approx(r["latency_ms_p50"], rel=1e-3)
        assert r["achieved_tflops"] > 0 and r["bound"] in ("compute", "memory") and r["percent_of_peak"] > 0
        assert r["flops_per_forward"] > 0 and r["energy_j_per_sample"] is None and "CPU" in r["energy_note"]
    memory = [r for r in tiny_sweep.records if r["scenario"] == "memory"]
    assert all(r["weight_bytes_in_memory"] > 0 for r in memory)
    # One process per cell: the three cells' RSS baselines are their own, not one growing process's.
    assert len({round(r["rss_before_mb"]) for r in memory}) >= 2


def test_sigterm_ends_the_run_like_ctrl_c_and_leaves_no_cell_process(tiny_config, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil
    import tomli_w

    config = tmp_path / "sweep.toml"
    data = tiny_config(tmp_path / "runs", tmp_path / "cache",
                       measure={"backends": ["eager"], "isolation": "process", "min_time_s": 600.0, "min_iters": 10**9,
                                "max_time_s": 600.0})
    config.write_text(tomli_w.dumps(data))
    bench = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    parent = psutil.Process(bench.pid)
    deadline = time.monotonic() + 120
    while not [c for c in parent.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]:
        assert time.monotonic() < deadline and bench.poll() is None, "no cell process started"
        time.sleep(0.2)
    cells = [c for c in parent.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
    time.sleep(3)  # the cell is measuring (its latency run lasts 600 s)
    bench.send_signal(signal.SIGTERM)
    _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 130 and "interrupted" in stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "incomplete"
    psutil.wait_procs(cells, timeout=10)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in cells)
