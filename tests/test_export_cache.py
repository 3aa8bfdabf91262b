"""The export cache: an ONNX export is made once per key, checked before every use, reused across runs, never kept
in a run directory unless asked for, and survives damage and concurrent writers."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch
from rich.console import Console
from typer.testing import CliRunner

import bench.backends.onnxruntime.runner
from bench.backends import Target, prepare
from bench.backends.onnxruntime.export_cache import EXPORTS, cached_export, export_problem, verify_exports
from bench.backends.onnxruntime.export_key import export_key
from bench.cli import app
from bench.config import BackendOptions, parse_config
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone
from bench.run.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPU = Target("cpu", "fp32", 1)
SETTINGS = dict(opset=23, graph_optimization="all", skip_layer_norm=False, attention_path="causal")


def example(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    return torch.randint(4, 1000, (2, 16), generator=g).masked_fill(mask == 0, 1), mask


def logits(runner, inputs) -> np.ndarray:
    return runner.logits(runner(runner.inputs(*inputs)))


@pytest.fixture(scope="module")
def model() -> XGLMClassifier:
    return XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), num_labels=3).eval()


@pytest.fixture(scope="module")
def cached(model, tmp_path_factory):
    """One export of the tiny model into a cache, shared by the tests here (an ONNX export takes seconds)."""
    cache = tmp_path_factory.mktemp("export-cache")
    runner = prepare("onnxruntime", model, CPU, example(), BackendOptions(), tmp_path_factory.mktemp("scratch"),
                     export_cache=cache)
    return cache, runner


def _no_export(*args, **kwargs):
    raise AssertionError("exported although the cache holds this export")


def test_a_first_prepare_exports_into_the_cache(cached):
    cache, runner = cached
    entry = Path(runner.info["export_dir"])
    assert runner.info["export_cache_hit"] is False and runner.build_seconds["export_s"] > 0
    assert entry == cache / EXPORTS / runner.info["export_cache_key"] and export_problem(entry) is None
    manifest = json.loads((entry / "export.json").read_text())
    assert manifest["key"] == entry.name and manifest["key_inputs"]["dtype"] == "fp32"
    assert set(manifest["files"]) == {"model.onnx", "model.onnx.data", "model.ort.onnx", "model.ort.onnx.data"}


def test_a_second_prepare_hits_the_cache_without_exporting(cached, model, tmp_path, monkeypatch):
    cache, first = cached
    monkeypatch.setattr(bench.backends.onnxruntime.runner, "export_for_ort", _no_export)
    again = prepare("onnxruntime", model, CPU, example(), BackendOptions(), tmp_path, export_cache=cache)
    assert again.info["export_cache_hit"] is True
    assert again.info["export_cache_key"] == first.info["export_cache_key"]
    # export_s on a hit is the time the export took when it was made; session_s is this prepare's own.
    assert again.build_seconds["export_s"] == first.build_seconds["export_s"]
    assert again.info["ort_fused_ops"] == first.info["ort_fused_ops"]
    inputs = example(seed=5)
    np.testing.assert_array_equal(logits(again, inputs), logits(first, inputs))


def test_every_setting_and_the_weights_change_the_key(model):
    key = export_key(model, example(), CPU, **SETTINGS)[0]
    assert export_key(model, example(seed=9), CPU, **SETTINGS)[0] == key  # same shapes, other tokens: same export
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1e-3  # another artifact's weights
    others = [
        export_key(model, example(), Target("cpu", "fp16", 1), **SETTINGS)[0],
        export_key(model, example(), CPU, **(SETTINGS | {"opset": 18}))[0],
        export_key(model, example(), CPU, **(SETTINGS | {"attention_path": "masked"}))[0],
        export_key(model, example(), CPU, **(SETTINGS | {"graph_optimization": "basic"}))[0],
        export_key(model, example(), CPU, **(SETTINGS | {"skip_layer_norm": True}))[0],
        export_key(changed, example(), CPU, **SETTINGS)[0],
    ]
    assert len({key, *others}) == 1 + len(others)
    assert others[0].startswith("ort-fp16-") and key.startswith("ort-fp32-")


def test_another_attention_path_misses_and_exports(cached, model, tmp_path):
    cache, first = cached
    cache = shutil.copytree(cache, tmp_path / "cache")
    masked = prepare("onnxruntime", model, CPU, example(), BackendOptions(attention="masked"), tmp_path / "s",
                     export_cache=cache)
    assert masked.info["export_cache_hit"] is False and masked.info["attention_path"] == "masked"
    assert masked.info["export_cache_key"] != first.info["export_cache_key"]
    assert len([p for p in (cache / EXPORTS).iterdir() if not p.name.startswith(".")]) == 2


def test_a_damaged_export_is_detected_and_exported_again(cached, model, tmp_path):
    cache, first = cached
    cache = shutil.copytree(cache, tmp_path / "cache")
    entry = cache / EXPORTS / first.info["export_cache_key"]
    data = entry / "model.ort.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: same size, other weights
    data.write_bytes(bytes(raw))
    assert "model.ort.onnx.data does not match the sha256" in export_problem(entry)
    again = prepare("onnxruntime", model, CPU, example(), BackendOptions(), tmp_path / "s", export_cache=cache)
    assert again.info["export_cache_hit"] is False and "damaged" in again.info["export_cache_note"]
    assert export_problem(entry) is None
    inputs = example(seed=3)
    np.testing.assert_array_equal(logits(again, inputs), logits(first, inputs))


def _fake_export(directory: Path, key: str, payload: bytes = b"graph") -> None:
    """What export_for_ort leaves: files, then export.json with their sizes and hashes (written last)."""
    import hashlib

    directory.mkdir(parents=True)
    (directory / "model.ort.onnx").write_bytes(payload)
    files = {"model.ort.onnx": {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}
    (directory / "export.json").write_text(json.dumps({"key": key, "files": files, "spec": {}, "fused_ops": {},
                                                       "seconds": {}}))


def test_a_half_written_export_is_never_used(tmp_path):
    entry = tmp_path / EXPORTS / "ort-fp32-k"
    entry.mkdir(parents=True)
    (entry / "model.ort.onnx").write_bytes(b"half")  # no export.json: interrupted before the end
    (tmp_path / EXPORTS / ".ort-fp32-k.tmp-1-2").mkdir()  # an interrupted writer's leftover
    problems = dict(verify_exports(tmp_path))
    assert "interrupted" in problems[entry] and "leftover" in problems[tmp_path / EXPORTS / ".ort-fp32-k.tmp-1-2"]
    made = []
    use = cached_export(tmp_path, "ort-fp32-k", lambda d: made.append(_fake_export(d, "ort-fp32-k")))
    assert made and use.hit is False and "damaged" in use.note and export_problem(entry) is None
    assert cached_export(tmp_path, "ort-fp32-k", lambda d: pytest.fail("exported again")).hit is True


_WRITER = """
import hashlib, json, sys, time
from pathlib import Path
import bench.backends.onnxruntime.export_cache as cache
if sys.argv[2] == "nolock":  # a filesystem without locks: only the rename decides
    import contextlib
    cache._locked = lambda path: contextlib.nullcontext()
start = Path(sys.argv[1]) / "go"
while not start.exists():
    time.sleep(0.01)
def make(d):  # as _fake_export above, with a second's delay for the other writer to arrive meanwhile
    payload = b"x" * 1_000_000
    d.mkdir(parents=True)
    (d / "model.ort.onnx").write_bytes(payload)
    time.sleep(1.0)
    files = {"model.ort.onnx": {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}
    (d / "export.json").write_text(json.dumps({"key": "ort-fp32-k", "files": files}))
use = cache.cached_export(Path(sys.argv[1]), "ort-fp32-k", make)
print(use.hit, use.note)
"""


@pytest.mark.parametrize("locking", ["lock", "nolock"])
def test_two_processes_exporting_one_key_leave_one_sound_export(tmp_path, locking):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), locking], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    (tmp_path / "go").touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    assert [p.name for p in (tmp_path / EXPORTS).iterdir() if not p.name.endswith(".lock")] == ["ort-fp32-k"]
    assert export_problem(tmp_path / EXPORTS / "ort-fp32-k") is None
    lines = sorted(out.strip() for out, _ in outputs)
    if locking == "lock":  # the second writer waited, then found the first one's export
        assert lines == ["False None", "True None"]
    else:  # both exported; the loser of the rename uses the winner's copy
        assert lines == ["False None", "False another process stored this export meanwhile; its copy is used"]


# ------------------------------------------------------------------------------------------------ runs


@pytest.fixture
def ort_runs(tiny_config, tmp_path, monkeypatch):
    """Factory: a tiny sweep on ONNX Runtime only, sharing one cache; returns (run directory, records, output)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(name: str, *flags: str):
        config = tiny_config(tmp_path / "runs", tmp_path / "cache", name=name,
                             measure={"backends": ["onnxruntime"], "scenarios": ["throughput"]})
        if flags:  # through the command line
            path = tmp_path / f"{name}.toml"
            path.write_text(tomli_w.dumps(config))
            result = CliRunner().invoke(app, ["run", str(path), *flags])
            assert result.exit_code == 0, result.output
            (run_dir,) = (tmp_path / "runs").glob(f"*-{name}")
            return run_dir, [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()], \
                result.output
        buffer = io.StringIO()
        store = run_sweep(parse_config(config), Console(file=buffer, width=200))
        return store.path, store.records(), buffer.getvalue()

    return run


def test_runs_share_the_cache_and_keep_exports_only_when_asked(ort_runs, tmp_path, monkeypatch):
    first, records, _ = ort_runs("first")
    assert not (first / "exports").exists()  # the run directory holds no export
    (record,) = records
    assert record["status"] == "ok" and record["export_cache_hit"] is False
    assert Path(record["export_dir"]).is_dir() and "export_kept" not in record

    monkeypatch.setattr(bench.backends.onnxruntime.runner, "export_for_ort", _no_export)
    second, records, output = ort_runs("second", "--keep-exports")
    (again,) = records
    assert again["status"] == "ok" and again["export_cache_hit"] is True, again["error"]
    assert again["export_cache_key"] == record["export_cache_key"] and "(export cached)" in output
    kept = second / again["export_kept"]
    cached = Path(again["export_dir"])
    assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in cached.iterdir())
    for file in kept.iterdir():  # hard links here (one filesystem): the same bytes, no second copy
        assert file.read_bytes() == (cached / file.name).read_bytes()
        assert file.stat().st_ino == (cached / file.name).stat().st_ino


def test_bench_cache_shows_sizes_verifies_and_clears_exports(ort_runs, tmp_path):
    ort_runs("sized")
    cache, cli = tmp_path / "cache", CliRunner()
    entry = next(p for p in (cache / EXPORTS).iterdir() if not p.name.startswith("."))
    export_bytes = sum(f.stat().st_size for f in entry.iterdir())
    shown = cli.invoke(app, ["cache", "size", "--cache-dir", str(cache)])
    assert shown.exit_code == 0, shown.output
    cells = [[c.strip() for c in line.split("│")[1:-1]]
             for line in shown.output.splitlines() if line.startswith("│")]
    rows = {part: rest for part, *rest in cells}
    assert rows["exports"] == ["1", f"{export_bytes / 1e6:.1f}"] and rows["artifacts"][0] == "1"

    (entry / "model.ort.onnx").write_bytes(b"truncated")
    verified = cli.invoke(app, ["cache", "verify", "--cache-dir", str(cache)])
    assert verified.exit_code == 1 and "model.ort.onnx has 9 bytes" in verified.output

    cleared = cli.invoke(app, ["cache", "clear", "--exports", "--cache-dir", str(cache)])
    assert cleared.exit_code == 0 and "cleared exports" in cleared.output
    assert not any((cache / EXPORTS).iterdir()) and any((cache / "artifacts").iterdir())
