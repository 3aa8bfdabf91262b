"""Integration: whole sweeps of the tiny random XGLM on real XNLI rows, from config to records to summary.

The full three-backend sweep runs once per session (fixture `tiny_sweep` in conftest.py: torch.compile and
ONNX export dominate its cost); the other sweeps here measure eager only, or make backends fail or skip.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench import plugins
import bench.measure.passes
import bench.run.sweep
import bench.variants.registry
from bench.config import load_config, parse_config
from bench.model.classifier import XGLMClassifier, count_parameters
from bench.model.source import ModelSource, load_backbone
from bench.records import REQUIRED_KEYS, SCHEMA_VERSION
from bench.run.store import RunStore
from bench.run.sweep import Interrupted, run_sweep
from bench.data.tasks import TASKS
from reports.summary import RANDOM_WARNING, render_run

BACKENDS = ("eager", "compile", "onnxruntime")


def _replace_spec(monkeypatch, registry: dict, name: str, **hooks: str) -> None:
    """Swap one hook of a declared method or backend for this test (the declaration is frozen data)."""
    import dataclasses

    monkeypatch.setitem(registry, name, dataclasses.replace(registry[name], **hooks))
SCENARIOS = ("latency", "throughput", "memory", "accuracy")
LANGUAGES = ["en", "sw"]


@pytest.fixture(autouse=True)
def _offline(bench_env):
    """Every test here runs offline with its caches in tmp dirs."""


def _by(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def _one(records, **match):
    found = _by(records, **match)
    assert len(found) == 1, f"expected one record matching {match}, found {len(found)}"
    return found[0]


def _sweep(config: dict):
    """Run a sweep of `config` (a dict) and return (store, records, console text)."""
    buffer = io.StringIO()
    store = run_sweep(parse_config(config), Console(file=buffer, width=200))
    return store, store.records(), buffer.getvalue()


# ------------------------------------------------------------------------------------ the full sweep


def test_run_directory_layout(tiny_sweep):
    path = tiny_sweep.path
    assert path.parent == tiny_sweep.root / "runs"
    assert path.name.endswith("-tiny")
    for name in ("results.jsonl", "env.json", "config.toml", "run.json"):
        assert (path / name).is_file(), f"{name} missing from the run directory"
    manifest = json.loads((path / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["run_id"] == path.name
    assert manifest["records"] == len(tiny_sweep.records)
    assert manifest["started"] and manifest["finished"]
    env = json.loads((path / "env.json").read_text())
    assert env["torch_version"]
    # Every line of results.jsonl is a JSON object on its own.
    lines = (path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(tiny_sweep.records)
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_written_config_round_trips(tiny_sweep):
    loaded = load_config(tiny_sweep.path / "config.toml")
    assert loaded == tiny_sweep.cfg
    assert loaded.model_dump() == tiny_sweep.cfg.model_dump()


def test_every_record_carries_the_promised_keys(tiny_sweep):
    records = tiny_sweep.records
    assert records
    for r in records:
        missing = [k for k in REQUIRED_KEYS if k not in r]
        assert not missing, f"{r['scenario']}/{r['backend']} lacks {missing}"
        assert r["schema_version"] == SCHEMA_VERSION == 1
        assert r["status"] == "ok", r["error"]
        assert r["error"] is None
        assert r["random_weights"] is True
        assert r["run_id"] == tiny_sweep.path.name
        assert r["variant"] == "dense-ft" and r["method"] == "dense" and r["task"] == "xnli"
        assert r["device"] == "cpu" and r["dtype"] == "fp32"
        assert r["model"] == "random:tiny"
        assert r["data_source"] == "local"
        assert r["sparsity"] == 0.0 and r["prompt_length"] == 0


def test_one_record_per_scenario_and_backend(tiny_sweep):
    records = tiny_sweep.records
    for backend in BACKENDS:
        for scenario in SCENARIOS:
            _one(records, backend=backend, scenario=scenario)
    assert len(records) == len(BACKENDS) * len(SCENARIOS)
    for r in _by(records, scenario="latency") + _by(records, scenario="memory"):
        assert (r["batch_size"], r["seq_len"]) == (4, 32)
    for r in _by(records, scenario="throughput"):
        assert r["batch_size"] == 8


@pytest.mark.parametrize("backend", BACKENDS)
def test_latency_statistics_are_ordered(tiny_sweep, backend):
    r = _one(tiny_sweep.records, backend=backend, scenario="latency")
    assert r["latency_count"] >= 3  # min_iters
    assert 0 < r["latency_ms_min"] <= r["latency_ms_p50"] <= r["latency_ms_max"]
    # A handful of samples: no tail percentiles, and a note saying how many they need.
    assert r["latency_count"] < 64 and r["latency_ms_p90"] is None and r["latency_ms_p99"] is None
    assert r["latency_ms_p99_note"] == f"p99 needs at least 662 samples, have {r['latency_count']}"
    assert r["latency_ms_ci95_low"] <= r["latency_ms_p50"] <= r["latency_ms_ci95_high"]
    assert r["latency_cv"] >= 0
    # Throughput at the fixed shape follows from p50: batch / p50.
    assert r["throughput_samples_per_s"] == pytest.approx(4 / (r["latency_ms_p50"] / 1e3))
    assert r["real_tokens"] <= r["padded_tokens"] == 4 * 32


@pytest.mark.parametrize("backend", BACKENDS)
def test_throughput_over_the_eval_set(tiny_sweep, backend):
    r = _one(tiny_sweep.records, backend=backend, scenario="throughput")
    assert r["throughput_samples"] == 16 * len(LANGUAGES)
    assert r["throughput_samples_per_s"] > 0
    assert r["throughput_padded_tokens_per_s"] >= r["throughput_tokens_per_s"] > 0
    assert 0 <= r["throughput_padding_share"] < 1
    assert r["throughput_samples_per_s"] == pytest.approx(r["throughput_samples"] / r["measured_s"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_has_a_peak_and_says_where_from(tiny_sweep, backend):
    r = _one(tiny_sweep.records, backend=backend, scenario="memory")
    assert r["peak_memory_mb"] > 0
    assert isinstance(r["memory_source"], str) and r["memory_source"]
    assert r["peak_rss_mb"] >= r["rss_before_mb"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_accuracy_per_requested_language(tiny_sweep, backend):
    r = _one(tiny_sweep.records, backend=backend, scenario="accuracy")
    by_lang = r["accuracy_by_language"]
    assert list(by_lang) == LANGUAGES
    assert all(0.0 <= v <= 1.0 for v in by_lang.values())
    # 16 rows per language: every per-language accuracy is a multiple of 1/16.
    assert all(math.isclose(v * 16, round(v * 16)) for v in by_lang.values())
    assert r["accuracy"] == pytest.approx(float(np.mean(list(by_lang.values()))))
    assert r["eval_samples"] == 16 * len(LANGUAGES)


def test_parity_with_eager_fp32(tiny_sweep):
    for r in tiny_sweep.records:
        if r["backend"] == "eager":
            assert r["agreement_vs_eager_fp32"] == 1.0
        else:
            assert r["agreement_vs_eager_fp32"] >= 0.99, r["backend"]
        assert 0 <= r["max_abs_logit_diff"] < 1e-4, r["backend"]
    accuracies = {r["backend"]: r["accuracy_by_language"] for r in _by(tiny_sweep.records, scenario="accuracy")}
    assert accuracies["compile"] == accuracies["eager"] == accuracies["onnxruntime"]


def test_build_costs_are_recorded_apart(tiny_sweep):
    for r in tiny_sweep.records:
        if r["backend"] == "compile":
            assert r["compile_s"] > 0
            assert r["compile_mode"] == "default"
        elif r["backend"] == "onnxruntime":
            assert r["export_s"] > 0
            assert r["onnx_bytes"] > 0
            assert "CPUExecutionProvider" in r["ort_providers"]
        else:
            assert r.get("compile_s") is None and r.get("export_s") is None
    # The export lives in the cache, not in the run directory (bench run --keep-exports links it in).
    assert not (tiny_sweep.path / "exports").exists()
    ort = _by(tiny_sweep.records, backend="onnxruntime")
    assert {r["export_cache_hit"] for r in ort} == {False} and len({r["export_dir"] for r in ort}) == 1
    assert Path(ort[0]["export_dir"]).parent == tiny_sweep.cache_dir / "exports"
    assert list((tiny_sweep.cache_dir / "exports").rglob("model.onnx")) == [Path(ort[0]["export_dir"]) / "model.onnx"]


def test_params_match_an_independently_built_classifier(tiny_sweep):
    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny")), TASKS["xnli"].num_labels)
    total, trainable = count_parameters(model)
    for r in tiny_sweep.records:
        assert r["params_total"] == total
        assert r["params_trainable"] == trainable == total  # dense fine-tuning trains everything
        assert r["trainable_share"] == 1.0


def test_dense_variant_is_its_own_reference(tiny_sweep):
    for r in _by(tiny_sweep.records, scenario="latency"):
        assert r["speedup_vs_dense"] == pytest.approx(1.0, abs=1e-12), r["backend"]


def test_training_provenance_is_recorded_and_said(tiny_sweep):
    first = tiny_sweep.records[0]
    assert first["artifact_built_this_run"] is True
    assert first["train_steps"] == 4
    assert first["train_split"] == "dev"  # the shared folder has no training split
    assert len({r["artifact_key"] for r in tiny_sweep.records}) == 1
    out = " ".join(tiny_sweep.output.split())
    assert "training on the English dev split" in out
    assert "4 steps in" in out and "final loss" in out


def test_summary_renders_from_the_files_alone(tiny_sweep):
    store = RunStore.open(tiny_sweep.path)
    console = Console(record=True, width=200)
    render_run(store.records(), store.read_json("env.json"), store.manifest(), console)
    text = console.export_text()
    for backend in BACKENDS:
        assert backend in text
    eager = _one(store.records(), backend="eager", scenario="latency")
    assert f"{eager['latency_ms_p50']:.2f}" in text
    assert tiny_sweep.path.name in text and "complete" in text
    assert RANDOM_WARNING in text
    assert "Cells not measured" not in text  # nothing failed or skipped


# ------------------------------------------------------------------------------------ artifact cache


def test_same_recipe_loads_the_cached_artifact(tiny_sweep, tiny_config, tmp_path):
    config = tiny_config(tmp_path / "runs", tiny_sweep.cache_dir, measure={"backends": ["eager"]})
    _, records, output = _sweep(config)
    first_eager = _one(tiny_sweep.records, backend="eager", scenario="accuracy")
    again = _one(records, backend="eager", scenario="accuracy")
    assert all(r["artifact_built_this_run"] is False for r in records)
    assert {r["artifact_key"] for r in records} == {first_eager["artifact_key"]}
    assert "cached artifact" in output and "trained in" not in output
    # The same weights: the same predictions on the same rows.
    assert again["accuracy_by_language"] == first_eager["accuracy_by_language"]
    assert again["accuracy"] == first_eager["accuracy"]
    assert again["train_final_loss"] == first_eager["train_final_loss"]
    assert again["params_total"] == first_eager["params_total"]


def test_changed_recipe_gets_a_new_artifact(tiny_sweep, tiny_config, tmp_path):
    config = tiny_config(tmp_path / "runs", tiny_sweep.cache_dir, train={"steps": 5},
                         measure={"backends": ["eager"], "scenarios": ["accuracy"]})
    _, records, _ = _sweep(config)
    r = _one(records, backend="eager", scenario="accuracy")
    assert r["artifact_built_this_run"] is True
    assert r["train_steps"] == 5
    assert r["artifact_key"] != tiny_sweep.records[0]["artifact_key"]
    artifacts = sorted(p.name for p in (tiny_sweep.cache_dir / "artifacts").iterdir() if not p.name.startswith("."))
    assert any(r["artifact_key"] in name for name in artifacts)
    assert any(tiny_sweep.records[0]["artifact_key"] in name for name in artifacts)


# ------------------------------------------------------------------------------ failed and skipped cells


def _raising_prepare(model, target, example, options, workdir, export_cache=None):
    raise RuntimeError("boom")


def test_failing_backend_becomes_failed_records(monkeypatch, tiny_config, tmp_path):
    _replace_spec(monkeypatch, plugins.backends(), "onnxruntime", prepare=f"{__name__}:_raising_prepare")
    config = tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["eager", "onnxruntime"]})
    store, records, output = _sweep(config)

    assert store.manifest()["status"] == "complete_with_failures"  # some records failed: exit 3
    failed = _by(records, backend="onnxruntime")
    assert sorted(r["scenario"] for r in failed) == sorted(SCENARIOS)
    for r in failed:
        assert r["status"] == "failed"
        assert "RuntimeError" in r["error"] and "boom" in r["error"]
        assert all(k in r for k in REQUIRED_KEYS)
        assert r["latency_ms_p50"] is None and r["accuracy"] is None
    ok = _by(records, backend="eager")
    assert sorted(r["scenario"] for r in ok) == sorted(SCENARIOS)
    assert all(r["status"] == "ok" for r in ok)
    assert "boom" in output

    console = Console(record=True, width=200)
    render_run(store.records(), store.read_json("env.json"), store.manifest(), console)
    text = console.export_text()
    assert "Cells not measured" in text and "boom" in text


def _raising_builder(ctx):
    raise ValueError("cannot build this one")


def test_variant_that_cannot_be_built_fails_its_cells(monkeypatch, tiny_config, tmp_path):
    _replace_spec(monkeypatch, plugins.methods(), "dense", build=f"{__name__}:_raising_builder")
    config = tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["eager", "onnxruntime"]})
    store, records, _ = _sweep(config)
    assert store.manifest()["status"] == "failed"  # nothing was measured: exit 1
    assert sorted((r["backend"], r["scenario"]) for r in records) == sorted(
        (b, s) for b in ("eager", "onnxruntime") for s in SCENARIOS
    )
    for r in records:
        assert r["status"] == "failed"
        assert r["error"].startswith("build: ValueError") and "cannot build this one" in r["error"]
    assert not (tmp_path / "cache" / "artifacts").exists() or not any((tmp_path / "cache" / "artifacts").iterdir())


def test_failing_measurement_fails_only_its_record(monkeypatch, tiny_config, tmp_path):
    def broken_memory(runner, batch):
        raise MemoryError("sampler broke")

    monkeypatch.setattr(bench.measure.passes, "memory", broken_memory)
    config = tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["eager"]})
    store, records, _ = _sweep(config)
    assert store.manifest()["status"] == "complete_with_failures"
    failed = _one(records, scenario="memory")
    assert failed["status"] == "failed" and "MemoryError: sampler broke" in failed["error"]
    assert failed["peak_memory_mb"] is None
    assert (failed["batch_size"], failed["seq_len"]) == (4, 32)
    for scenario in ("latency", "throughput", "accuracy"):
        assert _one(records, scenario=scenario)["status"] == "ok"


def test_fp16_onnxruntime_on_cpu_is_skipped_with_a_reason(tiny_config, tmp_path):
    config = tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["onnxruntime"], "dtypes": ["fp16"]})
    store, records, _ = _sweep(config)
    assert store.manifest()["status"] == "failed"  # every cell skipped: nothing was measured
    assert sorted(r["scenario"] for r in records) == sorted(SCENARIOS)
    for r in records:
        assert r["status"] == "skipped"
        assert r["backend"] == "onnxruntime" and r["dtype"] == "fp16"
        assert "fp16" in r["error"]
    assert not list(store.path.rglob("model.onnx"))  # skipped before any export


# ------------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_keeps_finished_records_and_marks_the_run_incomplete(monkeypatch, tiny_config, tmp_path):
    # Two cheap cells: "compile" is served by the eager backend here. Both are prepared (their throughput, accuracy
    # and memory records are written at once); the interrupt comes in the rounds, so no latency record exists and
    # no cell is done: --resume measures both again.
    _replace_spec(monkeypatch, plugins.backends(), "compile", prepare="bench.backends.eager.runner:prepare")
    real_block = bench.measure.passes.time_block
    calls = []

    def time_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_block(*args, **kwargs)

    monkeypatch.setattr(bench.measure.passes, "time_block", time_block)
    config = tiny_config(tmp_path / "runs", tmp_path / "cache", measure={"backends": ["eager", "compile"]})
    with pytest.raises(Interrupted) as info:
        run_sweep(parse_config(config), Console(file=io.StringIO()))

    (path,) = (tmp_path / "runs").iterdir()
    assert info.value.run_dir == path
    manifest = json.loads((path / "run.json").read_text())
    assert manifest["status"] == "incomplete"
    assert "interrupt" in manifest["reason"].lower()
    records = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    for backend in ("eager", "compile"):
        written = _by(records, backend=backend)
        assert sorted(r["scenario"] for r in written) == sorted(set(SCENARIOS) - {"latency"})
        assert all(r["status"] == "ok" for r in written)
    assert not (path / "cells.done").exists() or not (path / "cells.done").read_text().split()
    assert RunStore.open(path).records() == records
