"""Every backend agrees with eager fp32 at shapes other than the one it was traced or compiled with."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench.backends import SkipCell, Target, prepare
from bench.config import BackendOptions
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone

CUDA = torch.cuda.is_available()


def batch(bsz: int, seq: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq + 1, (bsz,), generator=g)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    return torch.randint(4, 1024, (bsz, seq), generator=g).masked_fill(mask == 0, 1), mask


@pytest.fixture(scope="module")
def model() -> XGLMClassifier:
    torch.manual_seed(0)
    return XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), num_labels=3).eval()


def reference(model: XGLMClassifier, inputs) -> np.ndarray:
    """Eager fp32 on the masked attention path: the runners take the mask-free path by default, and must agree."""
    masked = copy.copy(model)
    masked.attention_path = "masked"
    with torch.no_grad():
        return masked(*inputs).numpy()


def run(runner, inputs) -> np.ndarray:
    return runner.logits(runner(runner.inputs(*inputs)))


SHAPES = [(5, 23, 1), (1, 7, 2), (8, 64, 3)]  # none is the (2, 16) example the runners are built with


def test_eager_fp32_is_the_model(model, tmp_path):
    runner = prepare("eager", model, Target("cpu", "fp32", 2), None, BackendOptions(), tmp_path)
    for bsz, seq, seed in SHAPES:
        inputs = batch(bsz, seq, seed)
        np.testing.assert_array_equal(run(runner, inputs), reference(model, inputs))
    assert next(model.parameters()).dtype == torch.float32  # the runner works on its own copy


def test_eager_bf16_runs_on_cpu_close_to_fp32(model, tmp_path):
    runner = prepare("eager", model, Target("cpu", "bf16", 2), None, BackendOptions(), tmp_path)
    inputs = batch(4, 16, 0)
    out = run(runner, inputs)
    assert out.dtype == np.float32 and np.abs(out - reference(model, inputs)).max() < 0.1


@pytest.mark.slow
def test_onnxruntime_matches_eager_at_untraced_shapes(model, tmp_path):
    example = batch(2, 16, 0)
    runner = prepare("onnxruntime", model, Target("cpu", "fp32", 2), example, BackendOptions(), tmp_path)
    assert runner.build_seconds["export_s"] > 0 and runner.info["ort_providers"] == ["CPUExecutionProvider"]
    assert (tmp_path / "model.onnx").is_file() and runner.info["onnx_bytes"] > 0
    for bsz, seq, seed in SHAPES:
        inputs = batch(bsz, seq, seed)
        got, want = run(runner, inputs), reference(model, inputs)
        assert np.abs(got - want).max() < 1e-5
        assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.slow
def test_compile_matches_eager_and_records_compile_time(model, tmp_path):
    runner = prepare("compile", model, Target("cpu", "fp32", 2), batch(2, 16, 0), BackendOptions(), tmp_path)
    assert runner.build_seconds["compile_s"] > 0 and runner.info["compile_mode"] == "default"
    for bsz, seq, seed in SHAPES:
        inputs = batch(bsz, seq, seed)
        assert np.abs(run(runner, inputs) - reference(model, inputs)).max() < 1e-5


def test_onnxruntime_cpu_refuses_half_precision(model, tmp_path):
    with pytest.raises(SkipCell, match="fp16"):
        prepare("onnxruntime", model, Target("cpu", "fp16", 2), batch(2, 16, 0), BackendOptions(), tmp_path)


@pytest.mark.skipif(CUDA, reason="checks the behaviour of a machine without CUDA")
@pytest.mark.parametrize("backend", ["eager", "compile"])
def test_cuda_target_without_cuda_is_skipped(model, tmp_path, backend):
    with pytest.raises(SkipCell, match="CUDA is not available"):
        prepare(backend, model, Target("cuda", "fp16", 2), batch(2, 16, 0), BackendOptions(), tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_eager_on_cuda_matches_cpu(model, tmp_path, dtype):
    runner = prepare("eager", model, Target("cuda", dtype, 2), None, BackendOptions(), tmp_path)
    assert runner.cuda_events
    inputs = batch(4, 32, 0)
    tolerance = 1e-4 if dtype == "fp32" else 5e-2
    assert np.abs(run(runner, inputs) - reference(model, inputs)).max() < tolerance


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_onnxruntime_cuda_with_io_binding(model, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider here (needs onnxruntime-gpu)")
    runner = prepare("onnxruntime", model, Target("cuda", "fp32", 2), batch(2, 16, 0), BackendOptions(), tmp_path)
    inputs = batch(5, 23, 1)
    assert np.abs(run(runner, inputs) - reference(model, inputs)).max() < 1e-4
