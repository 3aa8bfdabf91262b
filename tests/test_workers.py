"""Cell workers: long-lived processes that fail into records, sleep between blocks, and die with their run;
--resume finishes a cut-off run; one writer per run directory."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from processes import cell_processes
from rich.console import Console

from bench.backends import Target
from bench.config import BackendOptions, MeasureConfig, parse_config
from bench.data.evalset import EvalSet
from bench.run.cell import CellTask
from bench.run.group import GroupSink, run_group
from bench.run.store import RunStore
from bench.run.sweep import run_sweep
from bench.run.worker import ProcessWorker

SHAPE = (2, 8)


class _DiesOnArrival:
    """Unpickling this in the child process calls os._exit(3): a cell that crashes hard."""

    def __reduce__(self):
        return (os._exit, (3,))


def _task(tmp_path, artifact=None, backend="eager", scenarios=("latency",), **base) -> CellTask:
    evalset = EvalSet([[2, 5, 6, 7, 8, 9], [2, 7, 9]], np.array([0, 1]), np.array(["en", "en"]), pad_id=1)
    return CellTask(
        cell_id=f"v/t/0/{backend}/fp32/cpu", artifact_path=str(artifact or tmp_path / "missing"),
        base={"variant": "v", "task": "t", "method": "dense", "backend": backend, "dtype": "fp32", **base},
        target=Target("cpu", "fp32", 1), options=BackendOptions(),
        measure=MeasureConfig(scenarios=list(scenarios), batch_sizes=[SHAPE[0]], seq_lens=[SHAPE[1]], min_rounds=2,
                              min_iters=2, min_time_s=0.0, warmup_iters=1, cell_timeout_s=120, peaks="off"),
        evalset=evalset, reference=np.zeros((2, 3), dtype=np.float32), workdir=str(tmp_path / backend), max_length=16,
    )


def _group(tasks):
    records = []
    sink = GroupSink(prepared=lambda task, prepared: records.extend(prepared.records),
                     measured=lambda task, latency: records.extend(latency), announce=lambda line: None)
    run_group(tasks, "v", tasks[0].measure, max_live=4, peaks=None, sink=sink, done=set())
    return records


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    """A dense random:tiny classifier saved as an artifact, as a sweep would (the tokenizer trained on a few words)."""
    import torch

    from bench.variants import artifacts
    from bench.variants.dense import classifier_architecture
    from bench.data.tokenization import trained_tokenizer
    from bench.model.classifier import XGLMClassifier, count_parameters
    from bench.model.source import ModelSource, load_backbone

    root = tmp_path_factory.mktemp("worker-artifact")
    torch.manual_seed(0)
    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny")), 3).eval()
    tokenizer, _ = trained_tokenizer(["a b c d e f g h", "i j k l m n o p"] * 20, vocab_size=64, cache_dir=root)
    meta = {"architecture": classifier_architecture(model), "params_trainable": count_parameters(model)[1],
            "extra": {}, "train": None}
    recipe = {"variant": "v", "task": "t", "model": "random:tiny"}
    return artifacts.save(root / "cache", recipe, model, tokenizer, meta).path


def test_a_cell_that_dies_becomes_failed_records_that_resume_retries(tmp_path):
    (record,) = _group([_task(tmp_path, poison=_DiesOnArrival())])
    assert record["status"] == "failed" and "cell process died (exit code 3)" in record["error"]
    assert (record["scenario"], record["batch_size"], record["seq_len"]) == ("latency", *SHAPE)
    assert record["failure_retryable"] is True


def test_a_cell_past_its_time_limit_is_killed(tmp_path):
    worker = ProcessWorker(_task(tmp_path), timeout_s=0.01)
    prepared = worker.prepare()
    worker.close()
    assert prepared.status == "failed" and "exceeded its time limit" in prepared.error and prepared.retryable
    assert not worker.process.is_alive()


def test_an_error_in_the_cell_is_a_failed_record_not_a_crash(tmp_path):
    (record,) = _group([_task(tmp_path)])  # the artifact does not exist
    assert record["status"] == "failed" and "realize" in record["error"] and "missing" in record["error"]
    assert record["failure_retryable"] is False  # the cell's own error: retrying would fail the same way


@pytest.mark.slow
def test_an_idle_worker_takes_no_cpu(tmp_path, tiny_artifact):
    """Between blocks a worker sleeps on its pipe: ORT's intra-op threads do not spin (session option) and
    OpenMP's spin-wait ends within milliseconds. Measured over 2 s after a block: under 2% of one core."""
    for backend in ("eager", "onnxruntime"):
        task = _task(tmp_path, tiny_artifact, backend=backend)
        task.target = Target("cpu", "fp32", 2)
        worker = ProcessWorker(task, timeout_s=300)
        try:
            assert worker.prepare().status == "ok"
            worker.block(SHAPE, 50, 0.2)
            time.sleep(0.2)  # spin-waits that end on their own are not idleness
            process = psutil.Process(worker.pid)
            before = sum(process.cpu_times()[:2])
            time.sleep(2.0)
            idle = sum(process.cpu_times()[:2]) - before
            assert idle < 0.04, f"{backend} worker used {idle:.2f} s of CPU in 2 s idle"
            assert len(worker.block(SHAPE, 3, 0.0).samples_ns) >= 3  # and it still answers
        finally:
            worker.close()


def test_a_worker_dies_with_its_parent(tmp_path):
    """kill -9 of the process that started a worker leaves no orphan (PR_SET_PDEATHSIG)."""
    code = (f"import pickle, sys, time; from bench.run.worker import ProcessWorker; "
            f"task = pickle.loads(bytes.fromhex({__import__('pickle').dumps(_task(tmp_path)).hex()!r})); "
            f"w = ProcessWorker(task, 120); w.prepare(); print(w.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = psutil.Process(int(parent.stdout.readline()))  # prepared: the worker is up, waiting for commands
    assert worker.is_running()
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    gone, _ = psutil.wait_procs([worker], timeout=30)
    assert gone, "the worker outlived its parent"


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
    # The cut-off cell's ratio against eager is paired again: the finished eager cell was measured beside it.
    onnx = [r for r in after if r["cell_id"] == done[1] and r["scenario"] == "latency"][0]
    assert onnx["speedup_vs_eager"] > 0 and onnx["speedup_vs_eager_ci95_low"] <= onnx["speedup_vs_eager_ci95_high"]


def test_a_run_directory_has_one_writer(tmp_path):
    """flock is per open file: a second bench process cannot take a run directory that one is writing."""
    store = RunStore.create(tmp_path, "locked")
    code = f"from bench.run.store import RunStore; from pathlib import Path; RunStore.open(Path({str(store.path)!r})).lock()"
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert second.returncode != 0 and f"being written by bench process {os.getpid()}" in second.stderr
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
        assert r["measure_scheme"] == "interleaved rounds" and r["rounds"] >= tiny_sweep.cfg.measure.min_rounds
    memory = [r for r in tiny_sweep.records if r["scenario"] == "memory"]
    assert all(r["weight_bytes_in_memory"] > 0 for r in memory)
    # One process per cell: the three cells' RSS baselines are their own, not one growing process's.
    assert len({round(r["rss_before_mb"]) for r in memory}) >= 2


def _start_long_run(tiny_config, tmp_path):
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
    while not cell_processes(parent):
        assert time.monotonic() < deadline and bench.poll() is None, "no cell process started"
        time.sleep(0.2)
    time.sleep(3)  # the cell is measuring (its rounds last 600 s)
    return bench, cell_processes(parent)


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie waiting for its parent to reap it (a process gone while we ask is not running)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_sigterm_ends_the_run_like_ctrl_c_and_leaves_no_cell_process(tiny_config, tmp_path):
    bench, cells = _start_long_run(tiny_config, tmp_path)
    bench.send_signal(signal.SIGTERM)
    _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 130 and "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["reason"].startswith("terminated (SIGTERM)")
    _, alive = psutil.wait_procs(cells, timeout=10)
    assert not [c for c in alive if _running(c)], "cell processes outlived SIGTERM of their run"


def test_kill_9_of_the_run_leaves_no_cell_process(tiny_config, tmp_path):
    bench, cells = _start_long_run(tiny_config, tmp_path)
    bench.send_signal(signal.SIGKILL)
    bench.communicate(timeout=60)
    gone, alive = psutil.wait_procs(cells, timeout=10)
    assert not alive, "cell processes outlived a kill -9 of their run"
