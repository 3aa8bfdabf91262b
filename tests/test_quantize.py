"""Quantized precisions: int8 (dynamic) and weight-only int8 on eager, compile and ONNX Runtime agree with fp32 on
the same rows, replace exactly the decoder linears, hold a quarter of their bytes and say how; the cells a variant
is measured as, the refusals, the Findings' sentence, and fp8 where a GPU can run it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from test_sparsify import padded, tiny_model
from bench.backends import Target, prepare
from bench.config import BackendOptions, make_variant
from bench.measure.weight_bytes import weight_bytes
from bench.plugins.precision import SCHEMES, cpu_refusal, unavailable
from bench.run.group import plan_batches
from quantize.onnx_graph import INTEGER_OPS, linear_nodes
from quantize.realize import PrecisionSkipped, library_for, linear_paths, realize_precision
from reports.claims import ClaimRule
from reports.precision_findings import precision_sentences
from sparsify.targets import decoder_linears

CPU = Target("cpu", "fp32", 1)


def logits(model, lengths=(32, 17, 5, 30)):
    ids, mask = padded(list(lengths), seed=1)
    with torch.inference_mode():
        return model(ids, mask)


def linear_bytes(model) -> int:
    return sum(lin.weight.numel() * 4 for lin in decoder_linears(model).values())


# -------------------------------------------------------------------------------------------- eager, compile


@pytest.mark.parametrize("precision, library", [("int8", "torch.ao"), ("int8-weight", "torchao")])
def test_eager_quantizes_exactly_the_decoder_linears_and_agrees_with_fp32(precision, library):
    model = tiny_model()
    reference, fp32_bytes, linears = logits(model), weight_bytes(model, torch.float32), linear_bytes(model)
    quantized, fields = realize_precision(copy.deepcopy(model), precision, CPU, "eager")
    assert fields["quant_library"] == library and fields["quant_linears"] == len(decoder_linears(model))
    assert fields["quant_library_version"] and fields["quant_weights"].startswith("int8")
    assert isinstance(quantized.head, torch.nn.Linear) and type(quantized.head.weight) is torch.nn.Parameter  # head kept
    got = logits(quantized)
    assert (got.argmax(1) == reference.argmax(1)).float().mean() >= 0.75
    assert torch.allclose(got, reference, atol=0.1) and not torch.equal(got, reference)  # quantized, and close
    # a quarter of the linears' fp32 bytes, plus a scale (and zero point) per output channel
    saved = fp32_bytes - weight_bytes(quantized, torch.float32)
    assert 0.70 * linears <= saved <= 0.75 * linears


@pytest.mark.parametrize("has_vnni", [True, False])
def test_torch_ao_uses_the_full_activation_range_only_where_vnni_accumulates_in_32_bits(monkeypatch, has_vnni):
    import quantize.torch_linears as torch_linears

    monkeypatch.setattr(torch_linears, "vnni", lambda: has_vnni)
    model = tiny_model()
    reference = logits(model)
    quantized, fields = realize_precision(copy.deepcopy(model), "int8", CPU, "eager")
    kinds = {type(lin) for lin in decoder_linears(quantized).values()}
    assert (kinds == {torch_linears.FullRangeDynamicLinear}) is has_vnni
    assert ("8-bit range" if has_vnni else "7-bit range") in fields["quant_engine"]
    assert torch.allclose(logits(quantized), reference, atol=0.1)


def test_torch_ao_and_torchao_count_the_same_int8_bytes():
    ao, _ = realize_precision(tiny_model(), "int8", CPU, "eager")
    tao, _ = realize_precision(tiny_model(), "int8", CPU, "compile")  # torchao: the compile path
    assert abs(weight_bytes(ao, torch.float32) - weight_bytes(tao, torch.float32)) <= 8 * 1024


@pytest.mark.slow
def test_compiled_int8_runs_without_eager_frames_and_agrees(tmp_path):
    model = tiny_model()
    quantized, fields = realize_precision(copy.deepcopy(model), "int8", CPU, "compile")
    assert fields["quant_library"] == "torchao"
    ids, mask = padded([16, 9], seed=2)
    runner = prepare("compile", quantized, CPU, (ids, mask), BackendOptions(), tmp_path)
    out = runner.logits(runner(runner.inputs(ids, mask)))
    runner.verify()  # no frame ran eagerly: torchao's tensors trace (torch.ao's packed weights would break)
    with torch.inference_mode():
        np.testing.assert_allclose(out, model(ids, mask).numpy(), atol=0.1)


def test_lora_unmerged_quantizes_the_base_layer_and_keeps_the_adapter():
    from prompts.lora import LoraOptions, add_lora

    model = tiny_model()
    add_lora(model, LoraOptions(4, 8.0, 0.0, ("q_proj", "v_proj"), False))
    paths = linear_paths(model)
    assert any(p.endswith("q_proj.base_layer") for p in paths) and len(paths) == len(decoder_linears(model))
    quantized, _ = realize_precision(model, "int8", CPU, "eager")
    q = quantized.backbone.layers[0].self_attn.q_proj
    assert isinstance(q.base_layer, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(q.lora_A, torch.nn.Parameter)


# ---------------------------------------------------------------------------------------------- onnxruntime


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "int8-weight"])
def test_onnxruntime_quantizes_the_graphs_decoder_matmuls_and_agrees(precision, tmp_path):
    import onnx

    model = tiny_model()
    same, fields = realize_precision(model, precision, CPU, "onnxruntime")
    assert same is model and model.quantization.scheme == precision  # the export applies it
    ids, mask = padded([16, 9, 12], seed=3)
    runner = prepare("onnxruntime", model, CPU, (ids, mask), BackendOptions(), tmp_path, export_cache=tmp_path / "c")
    graph = onnx.load(str(next((tmp_path / "c").rglob("model.ort.onnx"))), load_external_data=False).graph
    assert sum(n.op_type in INTEGER_OPS for n in graph.node) == len(decoder_linears(model))  # the head stays fp32
    assert sum(runner.info["ort_fused_ops"].get(op, 0) for op in INTEGER_OPS) == len(decoder_linears(model))
    out = runner.logits(runner(runner.inputs(ids, mask)))
    del model.quantization
    with torch.inference_mode():
        reference = model(ids, mask).numpy()
    np.testing.assert_allclose(out, reference, atol=0.1)
    assert not np.array_equal(out, reference)
    fp32 = prepare("onnxruntime", model, CPU, (ids, mask), BackendOptions(), tmp_path / "fp32", export_cache=tmp_path / "c")
    assert fp32.info["export_cache_hit"] is False  # another key: the fp32 graph is not the quantized one
    assert runner.info["onnx_initializer_bytes"] < fp32.info["onnx_initializer_bytes"] - 0.6 * linear_bytes(model)


def test_graph_nodes_are_found_by_the_scopes_torch_onnx_records_and_a_missing_one_is_an_error():
    from onnx import helper

    def node(name, scope):
        made = helper.make_node("MatMul", ["a", "b"], ["c"], name=name)
        made.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=str(["", "backbone.layers.0", scope, "linear"]))
        return made

    graph = helper.make_graph([node("m0", "backbone.layers.0.fc1"), node("m1", "head")], "g", [], [])
    assert linear_nodes(graph, ("backbone.layers.0.fc1",)) == ["m0"]
    with pytest.raises(ValueError, match="no MatMul recorded for 1 of 2 linears"):
        linear_nodes(graph, ("backbone.layers.0.fc1", "backbone.layers.0.fc2"))


# ---------------------------------------------------------------------------------------- cells and refusals


def test_a_variant_with_precisions_is_itself_then_one_cell_each_from_one_recipe():
    plain = make_variant(name="d", method="dense")
    quantized = make_variant(name="d", method="dense", precisions=["int8", "int8-weight"])
    assert [(c.name, c.precision) for c in quantized.cells()] == [("d", None), ("d@int8", "int8"), ("d@int8-weight", "int8-weight")]
    assert plain.recipe_options() == quantized.recipe_options()  # the artifact is shared
    masked = make_variant(name="u", method="unstructured", sparsity=0.9, kernels=["csr"], precisions=["int8"])
    cells = masked.cells()
    assert [(c.name, c.kernel, c.precision) for c in cells] == [("u", "dense", None), ("u@csr", "csr", None),
                                                                 ("u@int8", "dense", "int8")]
    assert cells[2].fields("u") == {"variant": "u@int8", "sparse_kernel": "dense", "quantization": "int8",
                                    "quant_control": "u"}
    with pytest.raises(ValueError, match="repeated precisions"):
        make_variant(name="d", precisions=["int8", "int8"])


def test_a_family_too_large_for_one_batch_stays_together_per_backend():
    cells = [(v, b) for v in ("dense", "u", "u@csr", "u@int8") for b in ("eager", "compile")]
    batches = plan_batches(cells, "dense", 4, family={"u": "u", "u@csr": "u", "u@int8": "u"})
    for backend in ("eager", "compile"):
        assert any({(v, backend) for v in ("dense", "u", "u@csr", "u@int8")} <= set(b) for b in batches)


def test_precisions_that_cannot_run_are_skipped_or_refused_naming_what_would():
    assert cpu_refusal("fp8", ["eager", "onnxruntime"]) == (
        "precision fp8 needs a CUDA GPU of compute capability 8.9 or newer; on the CPU int8 or int8-weight can run here")
    assert cpu_refusal("int8", ["onnxruntime"]) is None
    with pytest.raises(PrecisionSkipped, match="has no quantizer for eager on cpu$"):
        library_for("fp8", CPU, "eager")
    assert unavailable("fp8", "eager", "cuda", (8, 0)) == (
        "precision fp8 needs compute capability 8.9 or newer; this GPU has 8.0 (int8 runs there)")
    assert unavailable("fp8", "compile", "cuda", (9, 0)) is None
    with pytest.raises(PrecisionSkipped, match="quantizes an fp32 model, not bf16"):
        realize_precision(tiny_model(), "int8", Target("cpu", "bf16", 1), "eager")
    assert SCHEMES["int8-weight"].library("onnxruntime", "cuda") is None  # not declared: skipped there, not run


def test_a_cell_that_cannot_quantize_is_skipped_with_the_reason_not_run_in_fp32(monkeypatch):
    import bench.plugins.precision as precision

    def absent(name):
        raise precision.PackageNotFoundError(name)

    monkeypatch.setattr(precision, "version", absent)
    with pytest.raises(PrecisionSkipped, match=r"needs torchao, which is not installed \(pip install torchao\)"):
        realize_precision(tiny_model(), "int8", CPU, "compile")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="fp8 needs a CUDA GPU of compute capability 8.9 or newer")
def test_fp8_on_a_gpu_agrees_with_bf16():
    target = Target("cuda", "bf16", 1)
    model = tiny_model().to("cuda", torch.bfloat16)
    ids, mask = padded([32, 17], seed=1)
    with torch.inference_mode():
        reference = model(ids.cuda(), mask.cuda()).float()
    quantized, fields = realize_precision(copy.deepcopy(model), "fp8", target, "eager")
    with torch.inference_mode():
        got = quantized(ids.cuda(), mask.cuda()).float()
    assert fields["quant_library"] == "torchao" and torch.allclose(got, reference, atol=0.2)


# ------------------------------------------------------------------------------------------------ the findings


def test_the_findings_give_the_gain_over_the_unquantized_cell_with_the_accuracy_change():
    def latency(variant, backend, ratio, **extra):
        return {"variant": variant, "backend": backend, "method": "dense", "batch_size": 8, "seq_len": 64,
                "speedup_vs_control": ratio, "speedup_vs_control_ci95_low": ratio * 0.95,
                "speedup_vs_control_ci95_high": ratio * 1.02, "speedup_vs_control_p_value": 0.001,
                "quant_library": "onnxruntime.quantization", **extra}

    rows = [latency("d@int8", "onnxruntime", 2.4, quantization="int8", quant_control="d")]
    accuracy = {("d@int8", "onnxruntime"): {"accuracy": 0.797, "eval_samples": 1000, "agreement_vs_eager_fp32": 0.98,
                                            "max_abs_logit_diff": 0.02},
                ("d", "onnxruntime"): {"accuracy": 0.800, "eval_samples": 1000, "agreement_vs_eager_fp32": 1.0}}
    [sentence] = precision_sentences(rows, accuracy, ClaimRule.of(rows))
    # 20 of 1000 predictions changed: the change lies within -0.3 +- 1.96 sqrt(20) / 1000 points
    assert "int8 on d runs faster than its unquantized cell: 2.40x" in sentence
    assert "at -0.3 points (-1.2 to +0.6)" in sentence and "98.0% and 2.0e-02 on onnxruntime" in sentence
    random = {k: v | {"random_weights": True} for k, v in accuracy.items()}
    assert "points" not in precision_sentences(rows, random, ClaimRule.of(rows))[0]  # meaningless, not given


@pytest.mark.parametrize("flags, native", [("fpu avx512f avx512_bf16", True), ("fpu avx2 fma", False)])
def test_a_cpu_bf16_cell_says_whether_the_cpu_computes_bf16_natively(monkeypatch, flags, native):
    from bench.measure import cpu_info

    monkeypatch.setattr(cpu_info, "_cpuinfo_value", lambda key: flags)
    fields = cpu_info.bf16_fields("bf16", "cpu")
    assert bool(fields["cpu_bf16_instructions"]) is native
    assert ("no native bf16" in fields["cpu_bf16_note"]) is not native
    assert cpu_info.bf16_fields("fp32", "cpu") == {} and cpu_info.bf16_fields("bf16", "cuda") == {}
