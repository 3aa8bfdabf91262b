"""FLOPs and bytes from real shapes; roofline classification; calibration cache; energy where there is a counter."""

from __future__ import annotations

import pytest
import torch

from bench.measure import calibrate
from bench.measure.calibrate import roofline_fields
from bench.measure.energy import EnergyCounter, energy_fields
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone
from bench.measure.roofline import forward_cost, weight_bytes


@pytest.fixture()
def tiny() -> XGLMClassifier:
    return XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), num_labels=3).eval()


def test_dense_flops_match_the_formula(tiny):
    b, t, d, f, layers = 4, 32, 64, 128, 2
    cost = forward_cost(tiny, b, t)
    linear = layers * 2 * b * t * (4 * d * d + 2 * d * f)
    attention = layers * 4 * b * t * t * d
    assert cost.flops_linear_executed == linear and cost.flops_attention == attention
    assert cost.flops_executed == linear + attention + 2 * b * d * 3 == cost.flops_nonzero
    assert 0 < cost.linear_share < 1


def test_prefix_widens_attention_only(tiny):
    before = forward_cost(tiny, 2, 16)
    heads, head_dim = tiny.attentions[0].num_heads, tiny.attentions[0].head_dim
    for attn in tiny.attentions:
        attn.set_prefix(torch.zeros(1, heads, 16, head_dim), torch.zeros(1, heads, 16, head_dim))
    after = forward_cost(tiny, 2, 16)
    assert after.flops_attention == 2 * before.flops_attention  # T x (T + P) with P = T
    assert after.flops_linear_executed == before.flops_linear_executed
    assert after.min_bytes - before.min_bytes == 2 * 2 * 16 * 64 * 4  # the prefix is read once per layer


def test_zeros_are_executed_but_not_nonzero(tiny):
    with torch.no_grad():
        for layer in tiny.backbone.layers:
            layer.fc1.weight[:, ::2] = 0  # half of fc1
    cost = forward_cost(tiny, 2, 8)
    layers, tokens, zeros_per_layer = 2, 2 * 8, 64 * 128 // 2
    removed = layers * 2 * tokens * zeros_per_layer  # 2 FLOPs per multiply-add by a zero weight
    assert cost.flops_executed - cost.flops_nonzero == removed


def test_weight_bytes_follow_the_dtype(tiny):
    fp32 = weight_bytes(tiny)
    assert weight_bytes(tiny, torch.bfloat16) * 2 == fp32


def test_roofline_classifies_compute_and_memory_bound(tiny):
    cost = forward_cost(tiny, 8, 64)
    peaks = {"peak_tflops_fp32": 1.0, "peak_gbps": 100.0}  # ridge at 10 FLOPs per byte
    fields = roofline_fields(cost, latency_s=cost.flops_executed / 0.5e12, dtype="fp32", peaks=peaks)
    assert fields["achieved_tflops"] == pytest.approx(0.5)
    if cost.intensity >= 10:
        assert fields["bound"] == "compute" and fields["percent_of_peak"] == pytest.approx(50.0)
    else:
        assert fields["bound"] == "memory"
    beaten = roofline_fields(cost, latency_s=cost.flops_executed / 2e12, dtype="fp32", peaks=peaks)
    assert beaten["percent_of_peak"] > 100 and "recalibrate" in beaten["peak_note"]
    starved = roofline_fields(cost, 1.0, "fp32", {"peak_tflops_fp32": 1.0, "peak_gbps": 1e-3})
    assert starved["bound"] == "memory"
    none = roofline_fields(cost, 1.0, "fp16", peaks)  # no fp16 peak measured
    assert none["percent_of_peak"] is None and none["achieved_tflops"] > 0


def test_calibration_is_cached_per_environment(tmp_path, monkeypatch):
    calls = []
    whole = {"peak_gbps": 1.0, **{f"peak_tflops_{name}": 1.0 for name in calibrate.TORCH_DTYPES}}  # what a cache needs
    monkeypatch.setattr(calibrate, "measure", lambda device, threads: calls.append(1) or whole)
    first = calibrate.load_or_measure(tmp_path, "cpu", 2)
    again = calibrate.load_or_measure(tmp_path, "cpu", 2)
    assert len(calls) == 1 and first == again and first["threads"] == 2
    calibrate.load_or_measure(tmp_path, "cpu", 1)  # other thread count, other key
    calibrate.load_or_measure(tmp_path, "cpu", 2, refresh=True)
    assert len(calls) == 3


def test_gemm_sizing_keeps_slow_dtypes_cheap():
    assert 256 <= calibrate._gemm_size("cpu", torch.float32, target_s=0.001) <= calibrate.GEMM_SIZE["cpu"]


def test_energy_is_null_with_a_reason_on_cpu():
    counter = EnergyCounter.open("cpu")
    assert counter.read_mj() is None
    fields = energy_fields(counter.read_mj(), counter.read_mj(), 100, counter)
    assert fields["energy_j_per_sample"] is None and "CPU" in fields["energy_note"]
    assert energy_fields(1000, 3000, 4, EnergyCounter(None, None))["energy_j_per_sample"] == 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_energy_counter_advances_on_gpu():
    counter = EnergyCounter.open("cuda")
    if counter.handle is None:
        pytest.skip(counter.reason)
    start = counter.read_mj()
    a = torch.randn(4096, 4096, device="cuda")
    for _ in range(50):
        a = a @ a / 64
    torch.cuda.synchronize()
    assert counter.read_mj() > start
