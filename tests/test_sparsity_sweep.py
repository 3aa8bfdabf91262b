"""Sparse variants in a sweep: accounting and realisation in every record, speedups with intervals against dense."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.config import parse_config
from bench.run.sweep import run_sweep

SPARSE = [
    {"name": "unstructured-50", "method": "unstructured", "sparsity": 0.5},
    {"name": "semi24", "method": "semi24"},
    {"name": "structured-50", "method": "structured", "sparsity": 0.5},
]


@pytest.fixture(scope="module")
def sparse_records(tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("sparse-sweep")
    config = tiny_config(root / "runs", root / "cache", variants=[{"name": "dense-ft", "method": "dense"}, *SPARSE],
                         measure={"backends": ["eager"], "scenarios": ["latency", "accuracy"]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("BENCH_DATA_DIR", raising=False)
        store = run_sweep(parse_config(config), Console(file=io.StringIO(), width=200))
    assert store.manifest()["status"] == "complete"
    return {(r["variant"], r["scenario"]): r for r in store.records()}


def test_every_record_carries_sparsity_accounting(sparse_records):
    for (variant, scenario), r in sparse_records.items():
        assert r["status"] == "ok", r["error"]
        for key in ("sparsity", "density_linear", "density_all", "macs_per_token", "macs_per_token_nonzero",
                    "linear_mac_share", "speedup_mechanism", "speedup_mechanism_reason", "speedup_ideal"):
            assert r[key] is not None, (variant, scenario, key)
    dense = sparse_records[("dense-ft", "latency")]
    assert dense["sparsity"] == 0.0 and dense["density_linear"] == 1.0
    assert dense["speedup_mechanism"] == "none" and dense["speedup_ideal"] == 1.0
    assert dense["macs_seq_len"] == dense["seq_len"] == 32


def test_mechanism_and_ideal_speedup_per_method(sparse_records):
    unstructured = sparse_records[("unstructured-50", "latency")]
    semi24 = sparse_records[("semi24", "latency")]
    pruned = sparse_records[("structured-50", "latency")]
    assert unstructured["speedup_mechanism"] == "none" and unstructured["speedup_ideal"] == 1.0
    assert semi24["speedup_mechanism"] == "none" and "CUDA-only" in semi24["speedup_mechanism_reason"]  # on the CPU
    assert pruned["speedup_mechanism"] == "smaller_gemm" and pruned["speedup_ideal"] == pytest.approx(2.0)
    for r in (unstructured, semi24, pruned):
        assert r["density_linear"] == 0.5 and r["sparsity"] == 0.5
    assert unstructured["macs_per_token"] == sparse_records[("dense-ft", "latency")]["macs_per_token"]
    assert pruned["macs_per_token"] == sparse_records[("dense-ft", "latency")]["macs_per_token"] // 2
    assert pruned["heads_per_layer"] == [2, 2] and pruned["params_total"] < unstructured["params_total"]


def test_speedup_vs_dense_comes_with_a_bootstrap_interval(sparse_records):
    assert sparse_records[("dense-ft", "latency")].get("speedup_vs_dense_ci95_low") is None
    for spec in SPARSE:
        r = sparse_records[(spec["name"], "latency")]
        assert r["speedup_vs_dense_ci95_low"] <= r["speedup_vs_dense"] <= r["speedup_vs_dense_ci95_high"]
