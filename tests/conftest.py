"""Shared pytest fixtures, and the one list of fixtures that make a test slow. Shared plain helpers (padded batches,
a tiny build context, the CLI and its bad-input check) are in tests/helpers.py."""

import copy
import io
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest


# Fixtures that cost tens of seconds on 2 cores (a sweep with compile, ONNX export or a process per cell, a Ray
# cluster, a subprocess `bench run`): every test that uses one, directly or through another fixture, is marked
# `slow` at collection, so that `pytest -m "not slow"` stays a quick loop. pytest has no marks on fixtures; this list
# is where a new slow fixture is declared.
SLOW_FIXTURES = frozenset({
    "tiny_sweep",  # this file: the session's full sweep (compile, ONNX export, a process per cell)
    "default_run",  # test_default_run.py: configs/default.toml end to end, then `bench report`
    "cluster",  # test_ray.py: a local Ray cluster, and every sweep run on it
    "local_run",  # test_ray.py: the local executor's reference sweep
    "peft_sweep",  # test_peft.py: a sweep of PEFT variants on a sparse base
    "sparse_records",  # test_sparsity_sweep.py: the sparse methods' sweep
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real XNLI / PAWS-X rows: $BENCH_DATA_DIR, else ../shared/data next to the repository."""
    configured = os.environ.get("BENCH_DATA_DIR", "").strip()
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / "XNLI-1.0").is_dir():
        pytest.skip(f"real data not found at {path}; set BENCH_DATA_DIR to the shared data folder")
    return path


# ------------------------------------------------------------------------------------------------
# Integration fixtures: tiny sweeps on generated rows in the official layouts (tests/tinydata.py), offline, with
# every path in tmp dirs. Only tests about real text use shared_data_dir.


@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory) -> Path:
    """XNLI (en, sw) and PAWS-X (en, de) rows written here in the official layouts: 64 pairs per language and split."""
    from tinydata import write_layouts

    return write_layouts(tmp_path_factory.mktemp("generated-data"), rows=64)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A tokenizer trained on four words (vocabulary 30), for artifacts that must hold one; trained once a session."""
    from bench.data.tokenization import trained_tokenizer

    tok, _ = trained_tokenizer(["a b c d"] * 4, vocab_size=30, cache_dir=tmp_path_factory.mktemp("tokenizer"))
    return tok


def _deep_merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture
def bench_env(monkeypatch, tmp_path_factory):
    """Offline (no hub probe), artifacts and tokenizers in a tmp dir, no data dir from the caller's env."""
    cache = tmp_path_factory.mktemp("bench-env-cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    return cache


@pytest.fixture(scope="session")
def tiny_config(generated_data_dir):
    """Factory: a tiny sweep config as a dict (random:tiny, XNLI en+sw from generated rows, short
    training, fast measurement). Nested keyword sections are merged into the defaults."""

    def make(output_dir, cache_dir, **sections) -> dict:
        base = {
            "name": "tiny",
            "seed": 0,
            "output_dir": str(output_dir),
            "cache_dir": str(cache_dir),
            "model": {"source": "random:tiny", "max_length": 64},
            "data": {
                "tasks": ["xnli"], "source": "local", "data_dir": str(generated_data_dir),
                "languages": ["en", "sw"], "eval_split": "test",
                "max_train_samples": 64, "max_eval_per_language": 16,
            },
            "train": {"steps": 4, "batch_size": 16, "lr": 1e-3},
            "variants": [{"name": "dense-ft", "method": "dense"}],
            "measure": {
                "device": "cpu", "dtypes": ["fp32"], "backends": ["eager", "compile", "onnxruntime"],
                "scenarios": ["latency", "throughput", "memory", "accuracy"],
                "batch_sizes": [4], "seq_lens": [32], "throughput_batch_size": 8,
                "warmup_iters": 1, "min_iters": 3, "min_time_s": 0.0,
                # In-process and without calibration: quick, and monkeypatched backends reach the cells.
                # The session's full sweep (tiny_sweep) runs isolated and calibrated, the default path.
                "isolation": "none", "peaks": "off",
            },
        }
        return _deep_merge(base, sections)

    return make


@pytest.fixture(scope="session")
def tiny_sweep(tiny_config, tmp_path_factory):
    """The one full sweep of the session: eager, compile and onnxruntime on cpu fp32 (compile and ONNX
    export are the expensive parts, so every test that needs their results shares this run)."""
    from rich.console import Console

    from bench.config import parse_config
    from bench.run.sweep import run_sweep

    root = tmp_path_factory.mktemp("tiny-sweep")
    data = tiny_config(root / "runs", root / "cache", measure={"isolation": "process", "peaks": "auto"})
    cfg = parse_config(data)
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("BENCH_CACHE_DIR", str(root / "env-cache"))
        mp.delenv("BENCH_DATA_DIR", raising=False)
        started = time.perf_counter()
        store = run_sweep(cfg, Console(file=buffer, width=200))
        seconds = time.perf_counter() - started
    return SimpleNamespace(
        cfg=cfg, data=data, store=store, path=store.path, records=store.records(), output=buffer.getvalue(),
        root=root, cache_dir=root / "cache", seconds=seconds,
    )
