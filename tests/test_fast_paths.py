"""Each backend at its best: mask-free causal attention gives the masked path's logits on padded batches (with and
without a prefix), ONNX Runtime's graph gets its fusions and says so, and compile modes are backends of their own.

compile and ONNX Runtime against the masked path at P = 0 are in test_backends.py, and with a folded prefix in
test_prompts.py (their references run the masked path). Here: eager, and one export of a prefix model with every
fusion on; compile's modes are checked without compiling (inductor is not what is under test).
"""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

import bench.backends.compile.runner
from bench.backends import Target, prepare
from bench.backends.onnxruntime.export import OrtExport, fused_op_counts
from bench.config import BackendOptions, parse_config
from bench.plugins import backend_kind, backend_names
from bench.errors import BenchError
from bench.model.attention import causal_attention
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone
from helpers import padded

PREFIX = 5


BATCHES = [[23, 5, 11, 1, 7], [1], [16, 16], [64, 3, 40, 9, 64, 2, 33, 12]]


def tiny(prefix: int) -> XGLMClassifier:
    """The tiny classifier with biases and norms perturbed (random presets start them equal, which hides mistakes)
    and, with prefix > 0, a random folded prefix."""
    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), num_labels=3).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for attn in model.attentions:
            if prefix:
                shape = (1, attn.num_heads, prefix, attn.head_dim)
                attn.set_prefix(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    return model


def masked_logits(model: XGLMClassifier, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Today's reference: forward() with the [B, 1, T, P+T] padding mask."""
    reference = copy.copy(model)
    reference.attention_path = "masked"
    with torch.no_grad():
        return reference(ids, mask).numpy()


@pytest.fixture(scope="module", params=[0, PREFIX], ids=["no-prefix", "prefix"])
def model(request) -> XGLMClassifier:
    return tiny(request.param)


# ------------------------------------------------------------------------------------------ the attention paths


def test_causal_attention_is_bottom_right_with_the_prefix_visible(monkeypatch):
    """Eager gets causal_lower_right, compile and export the same mask as a tensor; both equal the explicit
    bottom-right mask. is_causal alone would align top-left with a prefix: the bug this guards against."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (6, 6 + PREFIX, 6 + PREFIX))
    keys, queries = torch.arange(6 + PREFIX)[None, :], torch.arange(6)[:, None]
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=keys <= queries + PREFIX)
    eager_mask, causal = causal_attention(6, PREFIX, q.device)
    assert not causal and type(eager_mask).__name__ == "CausalBias"
    assert torch.equal(F.scaled_dot_product_attention(q, k, v, attn_mask=eager_mask), want)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced_mask, _ = causal_attention(6, PREFIX, q.device)
    assert traced_mask.dtype == torch.bool and traced_mask.shape == (6, 6 + PREFIX)
    assert torch.equal(F.scaled_dot_product_attention(q, k, v, attn_mask=traced_mask), want)
    assert not torch.allclose(F.scaled_dot_product_attention(q, k, v, is_causal=True), want)  # top-left
    assert causal_attention(6, 0, q.device) == (None, True)


@pytest.mark.parametrize("lengths", BATCHES, ids=lambda b: f"{len(b)}x{max(b)}")
def test_eager_mask_free_logits_equal_the_masked_path(model, lengths, tmp_path):
    ids, mask = padded(lengths, seed=len(lengths))
    want = masked_logits(model, ids, mask)
    runner = prepare("eager", model, Target("cpu", "fp32", 2), None, BackendOptions(), tmp_path)
    got = runner.logits(runner(runner.inputs(ids, mask)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert runner.info["attention_path"] == "causal"
    assert runner.info["attention_mask_form"] == ("causal_lower_right" if model.prefix_length else "is_causal")
    masked = prepare("eager", model, Target("cpu", "fp32", 2), None, BackendOptions(attention="masked"), tmp_path)
    np.testing.assert_array_equal(masked.logits(masked(masked.inputs(ids, mask))), want)
    assert masked.info["attention_path"] == "masked" and model.attention_path == "causal"  # the caller's is untouched


def test_masked_path_is_kept_where_padded_positions_are_read(model):
    """hidden_states() returns padded positions too, so it keeps the padding mask unless told otherwise; without
    it only the real positions are the same."""
    ids, mask = padded([9, 4, 1], seed=3)
    with torch.no_grad():
        default, masked = model.hidden_states(ids, mask), model.hidden_states(ids, mask, padding_mask=True)
        causal = model.hidden_states(ids, mask, padding_mask=False)
    assert torch.equal(default, masked)
    real = mask.bool()
    assert (causal - masked)[real].abs().max() <= 1e-6
    assert (causal - masked)[~real].abs().max() > 1e-3


# ------------------------------------------------------------------------------------------ ONNX Runtime


@pytest.fixture(scope="module")
def ort_prefix(tmp_path_factory):
    """One ONNX export of the prefix model on the mask-free path, with SkipLayerNormalization fused."""
    model = tiny(PREFIX)
    workdir = tmp_path_factory.mktemp("ort-prefix")
    options = BackendOptions.model_validate({"onnxruntime": {"skip_layer_norm": "on"}})
    runner = prepare("onnxruntime", model, Target("cpu", "fp32", 2), padded([16, 9]), options, workdir)
    return model, runner, workdir


@pytest.mark.slow
def test_ort_mask_free_prefix_logits_equal_the_masked_path(ort_prefix):
    model, runner, _ = ort_prefix
    assert runner.info["attention_path"] == "causal" and runner.info["attention_mask_form"] == "bool [T, P+T]"
    for lengths in BATCHES:
        ids, mask = padded(lengths, seed=len(lengths))
        got, want = runner.logits(runner(runner.inputs(ids, mask))), masked_logits(model, ids, mask)
        assert np.abs(got - want).max() < 1e-5 and (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.slow
def test_ort_graph_is_fused_and_the_export_directory_is_complete(ort_prefix):
    model, runner, workdir = ort_prefix
    layers = len(model.attentions)
    ops = runner.info["ort_fused_ops"]
    # One Attention kernel and one BiasGelu per layer; no Softmax or Erf left of the decomposed SDPA and GELU.
    assert ops["Attention"] == layers and ops["BiasGelu"] == layers
    assert "Softmax" not in ops and "Erf" not in ops
    assert ops["SkipLayerNormalization"] >= 2 * layers - 1 and runner.info["ort_skip_layer_norm"] is True
    assert runner.info["onnx_opset"] == 23 and {"export_s", "fuse_s", "optimize_s", "session_s"} <= set(runner.build_seconds)
    loaded = OrtExport.load(workdir)  # what a cache would keep: the optimised graph and what made it
    assert loaded.fused_ops == ops == fused_op_counts(loaded.model_path)
    assert loaded.spec["opset"] == 23 and loaded.spec["provider"] == "CPUExecutionProvider"
    assert loaded.spec["skip_layer_norm"] is True and loaded.spec["torch"] == torch.__version__
    assert (workdir / "model.ort.onnx.data").is_file() and loaded.bytes > 0


def test_sweep_records_say_which_attention_path_and_fusions_ran(tiny_sweep):
    layers = 2  # random:tiny
    for record in tiny_sweep.records:
        if record["status"] == "ok" and record["scenario"] == "latency":
            assert record["attention_path"] == "causal" and record["attention_mask_form"] == "is_causal"
            if record["backend"] == "onnxruntime":
                assert record["ort_fused_ops"]["Attention"] == layers
                assert record["ort_skip_layer_norm"] is False  # auto: off on the CPU


# ------------------------------------------------------------------------------------------ compile modes


def test_backend_names_accept_compile_modes_and_refuse_others():
    cfg = parse_config({"measure": {"backends": ["eager", "compile", "compile:reduce-overhead", "compile:max-autotune"]}})
    assert cfg.measure.backends[2] == "compile:reduce-overhead" and backend_kind(cfg.measure.backends[3]) == "compile"
    assert set(backend_names()) >= {"eager", "compile", "onnxruntime", "compile:max-autotune"}
    with pytest.raises(BenchError, match=r"unknown backend 'compile:fast'; did you mean 'compile:default'\? available: eager, eager:onednn, compile, "):
        parse_config({"measure": {"backends": ["compile:fast"]}})
    with pytest.raises(BenchError, match="repeated entries"):
        parse_config({"measure": {"backends": ["compile:max-autotune", "compile:max-autotune"]}})


def test_compile_mode_comes_from_the_backend_name(monkeypatch, tmp_path):
    modes = []

    def compile_module(module, *, mode, dynamic, fullgraph, backend="inductor"):
        modes.append(mode)
        return module, "not compiled in this test"

    monkeypatch.setattr(bench.backends.compile.runner, "compile_module", compile_module)
    model, example = tiny(0), padded([16, 9])
    for name, mode in (("compile", "default"), ("compile:max-autotune", "max-autotune"), ("compile:reduce-overhead", "reduce-overhead")):
        runner = prepare(name, model, Target("cpu", "fp32", 2), example, BackendOptions(), tmp_path)
        assert runner.backend == name and runner.info["compile_mode"] == mode and modes[-1] == mode
        assert runner.info["compile_cudagraphs"] is False  # CUDA graphs on CUDA only
    options = BackendOptions.model_validate({"compile": {"mode": "max-autotune"}})
    assert prepare("compile", model, Target("cpu", "fp32", 2), example, options, tmp_path).info["compile_mode"] == "max-autotune"


@pytest.mark.slow
def test_a_sweep_measures_compile_modes_as_separate_backends(monkeypatch, tmp_path, bench_env):
    """Records and reports keep compile:<mode> apart from compile, each paired with eager. (The compile backend
    runs its module uncompiled here: what is tested is the naming and pairing, not inductor.)"""
    from bench.run.sweep import run_sweep
    from reports.summary import render_run

    monkeypatch.setattr(bench.backends.compile.runner, "compile_module", lambda module, **_: (module, "not compiled"))
    backends = ["eager", "compile", "compile:reduce-overhead"]
    config = {
        "name": "modes", "output_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"),
        "model": {"source": "random:tiny", "max_length": 32},
        "data": {"source": "synthetic", "languages": ["en"], "max_train_samples": 16, "max_eval_per_language": 8},
        "train": {"steps": 1, "batch_size": 8},
        "measure": {"backends": backends, "scenarios": ["latency"], "batch_sizes": [2], "seq_lens": [16],
                    "warmup_iters": 1, "min_rounds": 2, "min_iters": 2, "min_time_s": 0.0, "isolation": "none",
                    "peaks": "off"},
    }
    store = run_sweep(parse_config(config), Console(file=io.StringIO(), width=200))
    records = [r for r in store.records() if r["scenario"] == "latency"]
    assert sorted(r["backend"] for r in records) == sorted(backends) and all(r["status"] == "ok" for r in records)
    by_backend = {r["backend"]: r for r in records}
    assert by_backend["compile:reduce-overhead"]["compile_mode"] == "reduce-overhead"
    assert by_backend["compile"]["compile_mode"] == "default"
    for name in backends[1:]:
        assert by_backend[name]["speedup_vs_eager"] is not None and "compile_s" in by_backend[name]
    buffer = io.StringIO()
    render_run(store.records(), json.loads((store.path / "env.json").read_text()), store.manifest(),
               Console(file=buffer, width=250))
    text = buffer.getvalue()
    assert "compile:reduce-overhead" in text
