"""The xglm_bench pytest plugin: the batch and model it builds, what a benchmark records, capability skips, usage
errors, and the regression workflow of docs/benchmarks.md (autosave a baseline, compare, and fail on
a deliberate slowdown). Inner pytest runs use `pytester` in-process, on the tiny preset and the eager backend.
"""

from __future__ import annotations

import importlib
import json
import re

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.pytest_plugin import MACHINE_KEYS, ModelSpec, Settings, XglmBench

pytest_plugins = ["pytester"]

# pytester's in-process runs forget the modules first imported inside them, and torch refuses to register an
# operator library twice when one comes back: what the plugin imports lazily is imported once, out here.
HARNESS_MODULES = (
    "onnxruntime", "bench.model.source", "bench.model.classifier", "bench.backends.eager.runner",
    "bench.backends.onnxruntime.runner", "bench.variants.artifacts", "bench.variants.registry", "bench.run.env",
    "bench.measure.passes", "bench.measure.memory", "bench.measure.timing", "bench.data.tokenization",
)

TINY_BENCH = """
def test_tiny(xglm_bench, benchmark):
    runner, batch = xglm_bench.runner("random:tiny", "eager", batch_size=2, seq_len=16, threads=1)
    xglm_bench.run(benchmark, runner, batch)
"""


@pytest.fixture(autouse=True, scope="module")
def _harness_imported_outside_inner_runs() -> None:
    for name in HARNESS_MODULES:
        importlib.import_module(name)


@pytest.fixture
def helper(tmp_path) -> XglmBench:
    return XglmBench(Settings(rounds=2, warmup_rounds=1, device="cpu", dtype="fp32", threads=1), tmp_path)


def test_batch_is_exactly_the_shape_right_padded_with_its_eager_reference(helper):
    runner, batch = helper.runner("random:tiny", "eager", batch_size=4, seq_len=12)
    assert tuple(batch.input_ids.shape) == tuple(batch.attention_mask.shape) == (4, 12)
    lengths = batch.attention_mask.sum(1)
    assert lengths[0] == 12 and (lengths >= 6).all()
    # Right padding: ones then zeros in every row, pad ids exactly where the mask is 0.
    assert torch.equal(batch.attention_mask, (torch.arange(12)[None, :] < lengths[:, None]).long())
    assert ((batch.input_ids == 1) == (batch.attention_mask == 0)).all()
    assert batch.reference_logits.shape == (4, 3) and "random token ids" in batch.info["input"]
    logits = runner.logits(runner(runner.inputs(batch.input_ids, batch.attention_mask)))
    assert np.abs(logits - batch.reference_logits).max() < 1e-5


def test_runners_are_shared_per_model_backend_and_target(helper):
    first, _ = helper.runner("random:tiny", "eager", batch_size=1, seq_len=8)
    again, _ = helper.runner(ModelSpec("random:tiny"), "eager", batch_size=2, seq_len=16)
    other_dtype, _ = helper.runner("random:tiny", "eager", batch_size=1, seq_len=8, dtype="bf16")
    other_model, _ = helper.runner(ModelSpec("random:tiny", prefix_length=4), "eager", batch_size=1, seq_len=8)
    assert first is again
    assert other_dtype is not first and other_dtype.target.dtype == "bf16"
    assert other_model is not first


def test_prefix_fills_every_layer_and_changes_the_logits(helper):
    plain, _ = helper.model("random:tiny")
    model, info = helper.model(ModelSpec("random:tiny", prefix_length=16))
    assert [a.prefix_length for a in model.attentions] == [16] * len(model.attentions)
    assert plain.prefix_length == 0  # the prefixed model is a model of its own, not the cached plain one
    assert info["variant"] == "dense+prefix16" and info["prompt_length"] == 16
    _, with_prefix = helper.runner(ModelSpec("random:tiny", prefix_length=16), batch_size=2, seq_len=8)
    _, without = helper.runner("random:tiny", batch_size=2, seq_len=8)
    assert np.abs(with_prefix.reference_logits - without.reference_logits).max() > 1e-4


def test_an_artifact_directory_is_loaded_with_its_weights(helper, tmp_path):
    from safetensors.torch import save_model

    from bench.variants.artifacts import META_FILE, MODEL_FILE
    from bench.model.classifier import XGLMClassifier
    from bench.model.source import ModelSource, load_backbone
    from bench.variants.dense import classifier_architecture

    torch.manual_seed(7)
    trained = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=7), num_labels=2).eval()
    path = tmp_path / "artifact"
    path.mkdir()
    save_model(trained, str(path / MODEL_FILE))
    recipe = {"variant": "dense-ft", "method": "dense", "model": "random:tiny", "task": "pawsx"}
    meta = {"key": "k", "recipe": recipe, "architecture": classifier_architecture(trained)}
    (path / META_FILE).write_text(json.dumps(meta))

    _, batch = helper.runner(str(path), "eager", batch_size=2, seq_len=8)
    with torch.no_grad():
        expected = trained(batch.input_ids, batch.attention_mask).numpy()
    np.testing.assert_allclose(batch.reference_logits, expected, atol=1e-6)
    assert batch.info["variant"] == "dense-ft" and batch.info["random_weights"] is True


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"backend": "onnxrt"}, "unknown backend 'onnxrt'; did you mean 'onnxruntime'?"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"dtype": "fp8"}, "unknown dtype 'fp8'"),
    ],
)
def test_a_misspelt_name_is_an_error_not_a_skip(helper, kwargs, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        helper.runner("random:tiny", **kwargs)


def test_benchmark_records_shape_throughput_memory_parity_and_machine(pytester):
    pytester.makepyfile(TINY_BENCH)
    result = pytester.runpytest("--benchmark-json=out.json", "--xglm-bench-rounds=3", "--xglm-bench-warmup=1")
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    (bench,) = data["benchmarks"]
    info, stats = bench["extra_info"], bench["stats"]
    assert stats["rounds"] == 3 and bench["group"] == "dense 2x16"
    assert (info["backend"], info["device"], info["dtype"], info["threads"]) == ("eager", "cpu", "fp32", 1)
    assert (info["batch_size"], info["seq_len"], info["method"], info["random_weights"]) == (2, 16, "dense", True)
    assert info["latency_source"] == "pytest-benchmark median"
    assert info["throughput_samples_per_s"] == pytest.approx(2 / stats["median"])
    assert info["throughput_padded_tokens_per_s"] == pytest.approx(32 / stats["median"])
    assert 0 < info["throughput_tokens_per_s"] <= info["throughput_padded_tokens_per_s"]
    assert info["max_abs_logit_diff"] < 1e-5 and info["agreement_vs_eager_fp32"] == 1.0
    assert info["peak_memory_mb"] > 0 and info["memory_source"].startswith("process peak RSS")
    assert info["params_total"] > 0
    machine = data["machine_info"]["xglm_bench"]
    assert set(machine) == set(MACHINE_KEYS) and machine["torch_version"] == torch.__version__
    assert "CPUExecutionProvider" in machine["onnxruntime_providers"]


def test_with_benchmark_disabled_throughput_comes_from_a_short_measurement(pytester):
    pytester.makepyfile("""
        def test_tiny(xglm_bench, benchmark):
            runner, batch = xglm_bench.runner("random:tiny", "eager", batch_size=2, seq_len=16, threads=1)
            info = xglm_bench.run(benchmark, runner, batch)
            assert info["latency_source"].startswith("bench.measure.timing") and info["throughput_samples_per_s"] > 0
    """)
    pytester.runpytest("--benchmark-disable").assert_outcomes(passed=1)


def test_a_backend_the_machine_cannot_serve_is_skipped_with_the_reason(pytester):
    pytester.makepyfile("""
        def test_ort_fp16(xglm_bench, benchmark):
            runner, batch = xglm_bench.runner("random:tiny", "onnxruntime", batch_size=1, seq_len=8, dtype="fp16")
            xglm_bench.run(benchmark, runner, batch)
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*onnxruntime on cpu fp16: ONNX Runtime's CPU provider has no fp16 kernels*"])


def test_cuda_runs_where_present_and_is_skipped_with_the_reason_elsewhere(pytester):
    pytester.makepyfile(TINY_BENCH.replace(", threads=1", ", device='cuda', threads=1"))
    result = pytester.runpytest("-rs", "--xglm-bench-rounds=2")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*SKIPPED*eager on cuda: CUDA is not available on this machine*"])


def test_the_default_device_comes_from_the_command_line(pytester):
    pytester.makepyfile(TINY_BENCH.replace(", threads=1", ""))
    result = pytester.runpytest("-rs", "--xglm-bench-device=cuda", "--xglm-bench-rounds=2")
    outcome = {"passed": 1} if torch.cuda.is_available() else {"skipped": 1}
    result.assert_outcomes(**outcome)


@pytest.mark.parametrize("option", ["--xglm-bench-rounds=0", "--xglm-bench-dtype=fp8", "--xglm-bench-threads=many"])
def test_a_bad_option_stops_the_run_as_a_usage_error(pytester, option):
    pytester.makepyfile(TINY_BENCH)
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--xglm-bench-*"])


# A test-only runner: every call also sleeps. 20 ms keeps the median steady on a loaded, shared machine, so the
# 20% threshold sees the injected slowdown and not the neighbours' load.
SLOWED_BENCH = """
import os
import time


class Slowed:
    def __init__(self, runner, seconds):
        self.runner, self.seconds = runner, seconds

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def __call__(self, inputs):
        time.sleep(self.seconds)
        return self.runner(inputs)


def test_tiny(xglm_bench, benchmark):
    runner, batch = xglm_bench.runner("random:tiny", "eager", batch_size=2, seq_len=16, threads=1)
    seconds = 0.020 + float(os.environ.get("INJECTED_SLOWDOWN_MS", "0")) / 1e3
    xglm_bench.run(benchmark, Slowed(runner, seconds), batch)
"""


def test_compare_fail_catches_a_deliberate_slowdown(pytester, monkeypatch, tmp_path):
    pytester.makepyfile(SLOWED_BENCH)
    storage = f"--benchmark-storage=file://{tmp_path / 'benchmarks' / 'this-machine'}"
    common = [storage, "--xglm-bench-rounds=7", "--xglm-bench-warmup=1"]
    compare = ["--benchmark-compare", "--benchmark-compare-fail=median:20%"]

    pytester.runpytest(*common, "--benchmark-autosave").assert_outcomes(passed=1)
    assert len(list((tmp_path / "benchmarks" / "this-machine").rglob("0001_*.json"))) == 1

    unchanged = pytester.runpytest(*common, *compare)
    assert unchanged.ret == pytest.ExitCode.OK, unchanged.stdout.str()

    monkeypatch.setenv("INJECTED_SLOWDOWN_MS", "20")  # about +100%
    slowed = pytester.runpytest(*common, *compare)
    assert slowed.ret != pytest.ExitCode.OK
    output = slowed.stdout.str() + slowed.stderr.str()
    assert "Performance has regressed" in output
    assert "Field 'median' has failed PercentageRegressionCheck" in output


def test_the_interval_gate_is_the_compare_gate():
    from bench.pytest_plugin import regression_line

    base = [20.0 + 0.1 * (i % 5) for i in range(9)]
    assert regression_line("t", [2 * x for x in base], base, 20).startswith("regression: t: 2.000x")
    assert regression_line("t", [1.1 * x for x in base], base, 20) is None  # +10 %: below the threshold
    assert regression_line("t", [x * (1.3 if i % 2 else 0.9) for i, x in enumerate(base)], base, 20) is None  # unclear


def test_fail_on_regression_gates_on_the_interval_against_a_saved_baseline(pytester, monkeypatch, tmp_path):
    pytester.makepyfile(SLOWED_BENCH)
    saved = tmp_path / "baseline.json"
    # 15 rounds: each median's interval drops the two slowest and fastest rounds (7 would be [min, max], and one
    # round disturbed by the shared machine then hides any regression).
    common = ["--xglm-bench-rounds=15", "--xglm-bench-warmup=1"]
    pytester.runpytest(*common, f"--benchmark-json={saved}").assert_outcomes(passed=1)
    gate = [f"--xglm-bench-baseline={saved}", "--xglm-bench-fail-on-regression=20"]
    assert pytester.runpytest(*common, *gate).ret == pytest.ExitCode.OK
    recorded = json.loads(saved.read_text())  # a baseline measured with other threads: said, not silently compared
    recorded["benchmarks"][0]["extra_info"]["threads"] = 7
    (tmp_path / "other-threads.json").write_text(json.dumps(recorded))
    other = pytester.runpytest(*common, f"--xglm-bench-baseline={tmp_path / 'other-threads.json'}")
    other.assert_outcomes(passed=1, warnings=1)
    said = " ".join(other.stdout.str().split())
    assert "ran with 1 thread(s), the baseline with 7" in said and "not comparable" in said
    monkeypatch.setenv("INJECTED_SLOWDOWN_MS", "30")  # about +150%
    slowed = pytester.runpytest(*common, *gate)
    assert slowed.ret != pytest.ExitCode.OK
    output = slowed.stdout.str()
    assert "regression: test_fail_on_regression_gates_on_the_interval_against_a_saved_baseline.py::test_tiny" in output
    assert "order statistics) beyond +20%" in output and "Traceback" not in output
