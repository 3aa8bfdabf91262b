"""The project's pytest-benchmark suite: every backend on the tiny preset, for the dense classifier at two shapes,
a random 16-token prefix (the inference cost of a folded P-tuning v2 prompt), and the prompt and sparse methods
(a method that is not registered fails here, it is not skipped).

`pytest tests` runs every benchmark with few rounds and checks each runner's parity with eager fp32, gating on no
absolute time (CI machines are shared). Dedicated runners time longer and compare against a stored baseline:
`pytest tests/benchmarks --benchmark-only --xglm-bench-rounds 200 ...` (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.pytest_plugin import ModelSpec, XglmBench

MODEL = "random:tiny"
BACKENDS = [
    pytest.param("eager"),
    pytest.param("compile", marks=pytest.mark.slow),
    pytest.param("onnxruntime", marks=pytest.mark.slow),
]
SHAPES = [pytest.param(1, 32, id="b1xs32"), pytest.param(8, 64, id="b8xs64")]
# Variants other than dense run at one shape: each costs another compile and ONNX export.
VARIANT_SHAPE = (8, 64)
# Method names as docs/methods.md lists them, options as VariantConfig fields. P = 16 matches the random prefix, so
# compile reuses its cached graph; unstructured 50% is the masked-dense control of the sparsity study.
METHOD_VARIANTS = [
    pytest.param("prompt", {"prompt_length": 16}, id="prompt16"),
    pytest.param("unstructured", {"sparsity": 0.5}, id="unstructured50"),
]
PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "bf16": 1e-1}  # max |logit diff| vs eager fp32


def bench_and_check(xglm_bench: XglmBench, benchmark: Any, spec: ModelSpec, backend: str, batch_size: int, seq_len: int) -> None:
    runner, batch = xglm_bench.runner(spec, backend, batch_size=batch_size, seq_len=seq_len)
    info = xglm_bench.run(benchmark, runner, batch)
    assert info["max_abs_logit_diff"] < PARITY_TOLERANCE[info["dtype"]], info["max_abs_logit_diff"]
    assert info["throughput_samples_per_s"] > 0 and info["peak_memory_mb"] > 0


@pytest.mark.parametrize("batch_size,seq_len", SHAPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense(xglm_bench, benchmark, backend, batch_size, seq_len):
    bench_and_check(xglm_bench, benchmark, ModelSpec(MODEL), backend, batch_size, seq_len)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix16(xglm_bench, benchmark, backend):
    bench_and_check(xglm_bench, benchmark, ModelSpec(MODEL, prefix_length=16), backend, *VARIANT_SHAPE)


@pytest.mark.parametrize("method,options", METHOD_VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_method(xglm_bench, benchmark, backend, method, options):
    bench_and_check(xglm_bench, benchmark, ModelSpec(MODEL, method=method, options=options), backend, *VARIANT_SHAPE)
