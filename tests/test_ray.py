"""The Ray executor on a real local Ray cluster (`ray.init(num_cpus=2)`), never a mock: a tiny sweep gives the same
cells and statuses as the local executor, a worker killed mid-group fails that group only (after its retry), and
a run cut off mid-way is finished by --resume.

Tiny on purpose (random:tiny, synthetic data, eager only, peaks off, cells in the Ray worker itself): the four
sweeps and the cluster's start take about a minute here. The cluster tests are skipped, with the reason, where Ray
is not installed; the config and command-line checks at the end run everywhere.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import tomllib
from rich.console import Console
from typer.testing import CliRunner

from bench.cli import app
from bench.config import parse_config
from bench.errors import BenchError
from bench.run.store import RunStore
from bench.run.sweep import Interrupted, run_sweep

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install '.[ray]')")

CELL_KEYS = ("variant", "task", "seed", "backend", "dtype", "scenario", "batch_size", "seq_len", "status")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def cluster(root):
    if ray is None:
        pytest.skip("Ray is not installed (pip install '.[ray]')")
    """A local Ray cluster of 2 CPUs for this module; its workers inherit this environment (offline, caches in tmp)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("BENCH_CACHE_DIR", str(root / "env-cache"))
        mp.delenv("BENCH_DATA_DIR", raising=False)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"\nray.init(num_cpus=2): {time.perf_counter() - started:.1f} s")
        yield
        ray.shutdown()


def config(root: Path, name: str, **executor) -> dict:
    """Two groups (fp32, bf16) of two variants on eager; every run shares one cache, so only the first builds."""
    return {
        "name": name, "seed": 0, "output_dir": str(root / "runs" / name), "cache_dir": str(root / "cache"),
        "model": {"source": "random:tiny", "max_length": 32},
        "data": {"tasks": ["xnli"], "source": "synthetic", "languages": ["en", "sw"], "max_train_samples": 32,
                 "max_eval_per_language": 8},
        "train": {"steps": 2, "batch_size": 16},
        "variants": [{"name": "dense-ft", "method": "dense"},
                     {"name": "unstructured-50", "method": "unstructured", "sparsity": 0.5,
                      "kernels": []}],  # its masked-dense control alone: this file is about Ray
        "measure": {"device": "cpu", "dtypes": ["fp32", "bf16"], "backends": ["eager"], "batch_sizes": [2],
                    "seq_lens": [16], "throughput_batch_size": 8, "warmup_iters": 1, "min_rounds": 2, "min_iters": 2,
                    "min_time_s": 0.0, "peaks": "off", "threads": 1, "isolation": "none"},
        "executor": executor,
    }


class Watch(io.StringIO):
    """A console's file that calls `react(line)` on every line the sweep prints, as it prints it."""

    def __init__(self, react) -> None:
        super().__init__()
        self.react, self.partial = react, ""

    def write(self, text: str) -> int:
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            self.react(line)
        return super().write(text)


def sweep(data: dict, react=lambda line: None, resume: Path | None = None) -> tuple[RunStore, str]:
    out = Watch(react)
    started = time.perf_counter()
    store = run_sweep(parse_config(data), Console(file=out, width=250, soft_wrap=True), resume=resume)
    print(f"{data['name']}{' (resumed)' if resume else ''}: {time.perf_counter() - started:.1f} s")
    return store, out.getvalue()


def cells(records: list[dict]) -> list[tuple]:
    return sorted(tuple(str(r.get(k)) for k in CELL_KEYS) for r in records)


@pytest.fixture(scope="module")
def local_run(cluster, root):
    store, _ = sweep(config(root, "local"))
    return store


@needs_ray
def test_ray_groups_export_into_the_node_cache_and_a_second_run_hits_it(cluster, root):
    """One ONNX Runtime cell per run: the group exports into its node's cache (here the driver's machine), the next
    run's group finds it there, and --keep-exports links it into the run directory from the driver."""
    data = config(root, "ray-ort", kind="ray") | {"keep_exports": True}
    data["variants"] = data["variants"][:1]
    data["measure"] |= {"dtypes": ["fp32"], "backends": ["onnxruntime"], "scenarios": ["throughput"]}
    first, _ = sweep(data)
    (made,) = first.records()
    data["name"] = "ray-ort-again"
    second, _ = sweep(data)
    (again,) = second.records()
    assert made["status"] == again["status"] == "ok" and made["executor"] == "ray"
    assert made["export_cache_hit"] is False and again["export_cache_hit"] is True
    assert again["export_dir"] == made["export_dir"] and Path(made["export_dir"]).parent == root / "cache" / "exports"
    for store, record in ((first, made), (second, again)):
        kept = store.path / record["export_kept"]
        assert (kept / "model.ort.onnx").stat().st_ino == (Path(record["export_dir"]) / "model.ort.onnx").stat().st_ino


@needs_ray
def test_ray_sweep_gives_the_local_cells_and_statuses(local_run, root):
    """Artifacts through the object store here, as on a cluster without a shared cache directory."""
    store, output = sweep(config(root, "ray", kind="ray", artifacts="object-store"))
    local, remote = local_run.records(), store.records()
    assert cells(remote) == cells(local) and len(remote) == 16
    assert all(r["status"] == "ok" for r in remote), [r["error"] for r in remote if r["error"]]
    assert store.done_cells() == local_run.done_cells()
    assert store.manifest()["status"] == "complete"
    env = json.loads((store.path / "env.json").read_text())
    assert "object store" in env["ray"]["artifacts"] and env["ray"]["ray_version"] == ray.__version__
    (node_id, node), = env["nodes"].items()
    assert node["fingerprint"]["torch_version"] and node["resources"]["CPU"] == 2
    for record in remote:  # each names the node and device it ran on (builds' records too, for every group)
        if record.get("cell_id"):
            assert record["node_id"] == node_id and record["node_hostname"] == node["node_hostname"]
            assert record["device_name"] and record["executor"] == "ray" and record["ray_attempt"] == 1
    # The groups unpacked the shipped artifacts into their node's cache, apart from the ones built there.
    received = sorted(p.name for p in (root / "cache" / "artifacts-received").iterdir())
    assert [name.rsplit("-", 1)[0] for name in received] == ["dense-ft-xnli", "unstructured-50-xnli"]
    assert not (store.path / "exports").exists()  # the driver is the one writer of the run directory
    assert "[xnli fp32] started on" in output and "[xnli bf16] started on" in output


@needs_ray
def test_a_worker_killed_mid_group_fails_that_group_and_the_others_complete(local_run, root):
    """The bf16 group's worker is killed in its timing rounds, twice: once it runs again (max_retries = 1), then
    its cells fail with the reason; the fp32 group completes."""
    kills: list[int] = []
    pid = {}

    def react(line: str) -> None:
        if found := re.search(r"\[xnli bf16\] started on .* worker pid (\d+)", line):
            pid["bf16"] = int(found.group(1))
        if "[xnli bf16] timing" in line:
            os.kill(pid["bf16"], signal.SIGKILL)
            kills.append(pid["bf16"])

    data = config(root, "killed", kind="ray", max_retries=1)
    data["measure"]["min_time_s"] = 2.0  # long rounds: the kill lands mid-group
    store, output = sweep(data, react)
    print("\n".join(line for line in output.splitlines() if "[xnli bf16]" in line))
    assert len(kills) == 2 and kills[0] != kills[1]
    assert "running the group again (attempt 2 of 2)" in output
    records = store.records()
    assert cells([dict(r, status="ok") for r in records]) == cells(local_run.records())  # every cell accounted for
    failed = [r for r in records if r["dtype"] == "bf16" and r.get("cell_id")]
    assert len(failed) == 8 and all(r["status"] == "failed" for r in failed)
    for record in failed:
        assert record["error"].startswith("ray worker lost: WorkerCrashedError")
        assert "the group ran 2 time(s) (executor.max_retries = 1)" in record["error"]
        assert record["failure_retryable"] is True and record["ray_attempt"] == 2 and record["node_id"]
    print(f"failed record error: {failed[0]['error']}")
    assert all(r["status"] == "ok" for r in records if r["dtype"] == "fp32")
    assert store.manifest()["status"] == "complete_with_failures"  # the others completed; the lost group failed


@needs_ray
def test_resume_finishes_a_ray_run_cut_off_mid_way(local_run, root):
    """Ctrl-C when the second group starts (threads = 2: one group at a time on this 2-CPU cluster) cancels it and
    marks the run incomplete; --resume measures exactly what is missing."""
    def react(line: str) -> None:
        if re.search(r"\[xnli bf16\] started on", line):
            signal.raise_signal(signal.SIGINT)

    data = config(root, "cut", kind="ray")
    data["measure"]["threads"] = 2
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, also when the
    try:                                                                 # suite runs as a background job
        with pytest.raises(Interrupted) as cut:
            sweep(data, react)
    finally:
        signal.signal(signal.SIGINT, previous)
    path = cut.value.run_dir
    first = RunStore.open(path)
    assert first.manifest()["status"] == "incomplete"
    done_before = first.done_cells()
    assert done_before and all("/fp32/" in cell for cell in done_before)
    store, output = sweep(data, resume=path)
    assert store.manifest()["status"] == "complete"
    assert "[xnli fp32]" not in output  # the finished group is not measured again
    assert cells(store.records()) == cells(local_run.records())
    assert store.done_cells() == local_run.done_cells()


@needs_ray
def test_a_group_no_node_can_hold_is_refused_before_anything_runs(cluster, root):
    data = config(root, "too-wide", kind="ray")
    data["measure"]["threads"] = 3
    with pytest.raises(BenchError, match=r"no node of the Ray cluster has 3 CPUs for one group \(measure.threads = 3\)"):
        sweep(data)


@needs_ray
def test_one_named_gpu_is_refused_on_ray():
    from bench.run.executors.ray import check_config

    with pytest.raises(BenchError, match=r"measure.device 'cuda:1' names one GPU.*use device 'cuda'"):
        check_config(parse_config({"executor": {"kind": "ray"}, "measure": {"device": "cuda:1"}}))


# ------------------------------------------------------------------------------- config and command line


def test_executor_section_round_trips_and_is_validated(tmp_path):
    cfg = parse_config({"executor": {"kind": "ray", "address": "auto", "max_retries": 2, "artifacts": "shared"}})
    assert parse_config(tomllib.loads(cfg.to_toml())).executor == cfg.executor
    assert parse_config({}).executor.kind == "local"
    with pytest.raises(BenchError, match=r"field 'executor': address applies to kind 'ray'"):
        parse_config({"executor": {"address": "auto"}})
    with pytest.raises(BenchError, match=r"field 'executor.kind'"):
        parse_config({"executor": {"kind": "slurm"}})


def test_resume_accepts_the_executor_options_and_no_others(tmp_path):
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path), "--executor", "ray", "--ray-address", "auto"])
    assert result.exit_code == 2 and "is not a run directory" in result.output
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path), "--model", "random:tiny"])
    assert result.exit_code == 2 and "no overrides but --isolation, --executor, --ray-address and --keep-exports" in result.output
