"""Sparse fine-tuning: exact masks, zeros that survive training and export, structured pruning equal to masking,
artifacts that reload exactly, honest accounting and realisation, and clear refusals."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from transformers import XGLMConfig, XGLMModel

from capabilities import sparse_tensor_cores_missing
from helpers import padded, tiny_context
from bench.variants import artifacts
from bench.backends import Target
from sparsify.kernels import KernelSkipped
from bench.config import make_variant, parse_config
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier
from bench.model.source import PRESETS, ModelSource, load_backbone, preset_config
from bench.variants.registry import builder, realize
from sparsify import structured
from sparsify.accounting import count
from sparsify.masks import MaskKeeper, is_semi24, semi24_masks, unstructured_masks
from sparsify.variants import GradualPruner, SparseOptions
from sparsify.realize import kernel_shape_problems
from sparsify.schedule import CubicSchedule, cubic_sparsity
from sparsify.scores import magnitude
from sparsify.targets import decoder_linears, sparse_targets


def tiny_model(seed: int = 0) -> XGLMClassifier:
    torch.manual_seed(seed)
    return XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=seed), num_labels=3).eval()


# Sparse fine-tuning's context: 48 rows, a gentler rate than the prompt tests, weight decay, no warmup.
sparse_context = partial(tiny_context, rows=48, lr=1e-2, weight_decay=0.01, warmup_ratio=0.0)


# ---------------------------------------------------------------------------------------------------- masks


def test_semi24_masks_keep_the_two_largest_of_every_four():
    weights = sparse_targets(tiny_model())
    masks = semi24_masks(magnitude(weights))
    for name, w in weights.items():
        groups = masks[name].reshape(w.shape[0], -1, 4)  # [out, in/4, 4]
        assert (groups.sum(-1) == 2).all(), name  # exactly two zeros in every group of four
        size = w.detach().abs().reshape(groups.shape)
        kept = size.masked_fill(~groups, float("inf")).amin(-1)  # smallest kept |w| per group
        dropped = size.masked_fill(groups, -1.0).amax(-1)  # largest dropped |w| per group
        assert (dropped <= kept).all(), name
        assert is_semi24(w.detach() * masks[name])


def test_semi24_refuses_an_input_dimension_that_is_not_a_multiple_of_4():
    with pytest.raises(BenchError, match=r"multiple of 4; w is \[8, 6\]"):
        semi24_masks({"w": torch.rand(8, 6)})


@pytest.mark.parametrize("level", [0.0, 0.3, 0.5, 0.9])
def test_unstructured_masks_remove_exactly_the_asked_share(level):
    scores = magnitude(sparse_targets(tiny_model()))
    layer = unstructured_masks(scores, level, "layer")
    for name, s in scores.items():
        assert int((~layer[name]).sum()) == round(level * s.numel())
        if 0 < level:  # the lowest scores go
            assert s[~layer[name]].max() <= s[layer[name]].min()
    ties = {name: s.round(decimals=2) for name, s in scores.items()}  # many equal scores at the threshold
    for table in (scores, ties):
        glob = unstructured_masks(table, level, "global")
        assert sum(int((~m).sum()) for m in glob.values()) == round(level * sum(s.numel() for s in table.values()))
    with pytest.raises(BenchError, match=r"sparsity must be in \[0, 1\)"):
        unstructured_masks(scores, 1.0)


def test_cubic_schedule_of_zhu_and_gupta():
    schedule = CubicSchedule(final=0.8, total_steps=100, fraction=0.5)
    assert schedule.ramp_steps == 50
    assert schedule.update_steps[-1] == 50 and len(schedule.update_steps) <= 17
    assert schedule.level(0) == 0.0 and schedule.level(50) == schedule.level(99) == 0.8
    assert schedule.level(25) == pytest.approx(0.8 * (1 - 0.5**3))  # cubic: fast early, slow near the target
    levels = [schedule.level(t) for t in range(101)]
    assert levels == sorted(levels)
    assert cubic_sparsity(10, 0.5, ramp_steps=0) == 0.5


def test_gradual_pruner_follows_the_schedule():
    model = tiny_model()
    keeper = MaskKeeper(sparse_targets(model))
    schedule = CubicSchedule(final=0.7, total_steps=40, fraction=0.5)
    pruner = GradualPruner(keeper, schedule, SparseOptions(level=0.7, schedule="gradual"))
    seen = []
    for step in range(1, 41):
        pruner(step)
        zeros = sum(int((w == 0).sum()) for w in keeper.params.values()) / sum(w.numel() for w in keeper.params.values())
        seen.append(zeros)
        if step in schedule.update_steps:
            assert zeros == pytest.approx(schedule.level(step), abs=1e-3)
    assert seen == sorted(seen) and pruner.reached and seen[-1] == pytest.approx(0.7, abs=1e-4)


# ------------------------------------------------------------------------------------------ sparse fine-tuning


@pytest.mark.parametrize("options", [
    {"method": "unstructured", "sparsity": 0.6},
    {"method": "unstructured", "sparsity": 0.6, "schedule": "gradual", "gradual_fraction": 0.5, "importance": "taylor"},
    {"method": "semi24"},
], ids=["oneshot", "gradual-taylor", "semi24"])
def test_fine_tuning_keeps_pruned_weights_and_their_optimizer_state_at_zero(options):
    optimizers = []
    handle = register_optimizer_step_post_hook(lambda opt, *_: optimizers.append(opt))
    try:
        built = builder(options["method"])(sparse_context(make_variant(name="s", **options), steps=12))
    finally:
        handle.remove()
    model, optimizer = built.model, optimizers[-1]
    assert built.train.steps == 12
    weights = sparse_targets(model)
    for name, w in weights.items():
        pruned = w == 0
        assert int(pruned.sum()) == round(0.6 * w.numel() if options["method"] == "unstructured" else w.numel() / 2), name
        state = optimizer.state[w]
        # No momentum left that could move a pruned weight: Adam's moments are exactly zero there.
        assert (state["exp_avg"][pruned] == 0).all() and (state["exp_avg_sq"][pruned] == 0).all(), name
        if options["method"] == "semi24":
            assert is_semi24(w)
    # More steps with no keeper at all, gradients zero where pruned: the optimiser alone keeps them at zero.
    before = {name: w.detach() == 0 for name, w in weights.items()}
    for _ in range(3):
        for name, w in weights.items():
            w.grad = torch.randn_like(w) * ~before[name]
        optimizer.step()
    for name, w in weights.items():
        assert (w[before[name]] == 0).all(), name
    losses = [loss for _, loss in built.train.losses]
    assert np.isfinite(losses).all()


# ------------------------------------------------------------------------------------------------ structured


def test_structurally_pruned_model_equals_the_dense_model_with_those_units_masked():
    model = tiny_model()
    dense = copy.deepcopy(model)
    kept = structured.prune_to(model, structured.KeptUnits.full(model.config), 0.5, "layer",
                               magnitude(structured.scored_params(model)))
    assert [len(h) for h in kept.heads] == [2, 2] and [len(c) for c in kept.channels] == [64, 64]
    for layer in model.backbone.layers:
        attn = layer.self_attn
        assert attn.num_heads == 2 and attn.q_proj.out_features == attn.k_proj.out_features == 2 * attn.head_dim
        assert attn.out_proj.in_features == 2 * attn.head_dim and attn.out_proj.out_features == 64  # d_model kept
        assert layer.fc1.out_features == layer.fc2.in_features == 64 and layer.fc2.out_features == 64
    ids, mask = padded([12, 7, 3])
    masked = copy.deepcopy(dense)
    structured.zero_units(masked, kept)
    with torch.no_grad():
        got, want, original = model(ids, mask), masked(ids, mask), dense(ids, mask)
    assert (got - want).abs().max().item() <= 1e-5
    assert (got - original).abs().max().item() > 1e-3  # the pruning did change the function


def test_structured_levels_that_would_remove_every_head_are_refused():
    tiny = preset_config("tiny")  # 4 heads
    structured.check_level(tiny, 0.6)  # round(2.4) = 2 of 4
    with pytest.raises(BenchError, match=r"would remove every head of each layer \(round\(0.9 x 4 heads\) = 4\)"):
        structured.check_level(tiny, 0.9)
    model = tiny_model()
    scores = magnitude(structured.scored_params(model))
    for key in scores:  # layer 0's heads are the least important of the model
        if key.startswith("0.self_attn"):
            scores[key] = torch.zeros_like(scores[key])
    with pytest.raises(BenchError, match="would remove every head of layer 0; lower the level or use sparsity_scope = 'layer'"):
        structured.prune_to(model, structured.KeptUnits.full(model.config), 0.5, "global", scores)


# ------------------------------------------------------------------------------------------------- artifacts


@pytest.mark.parametrize("options", [
    {"method": "unstructured", "sparsity": 0.5},
    {"method": "structured", "sparsity": 0.5, "importance": "taylor", "structured_iterative_steps": 2},
], ids=["masked", "structured-iterative-taylor"])
def test_artifacts_reload_to_identical_logits(options, tokenizer, tmp_path):
    built = builder(options["method"])(sparse_context(make_variant(name="s", **options), steps=4))
    meta = {"architecture": built.architecture, "params_trainable": 1, "extra": {}, "train": None}
    saved = artifacts.save(tmp_path, {"variant": "s", "task": "xnli", "seed": 0}, built.model, tokenizer, meta)
    reloaded = artifacts.Artifact.open(saved.path).load_model()
    ids, mask = padded([11, 4, 8])
    with torch.no_grad():
        assert torch.equal(reloaded(ids, mask), built.model(ids, mask))
    for (name, w), (_, v) in zip(sparse_targets(built.model).items(), sparse_targets(reloaded).items()):
        assert torch.equal(w == 0, v == 0), name
    if options["method"] == "structured":
        assert saved.meta["architecture"]["kind"] == "structured"
        assert [len(h) for h in saved.meta["architecture"]["kept_heads"]] == [2, 2]
        assert built.train.steps == 4 and count(reloaded).density_linear == 0.5


@pytest.mark.slow
def test_a_masked_models_onnx_export_keeps_its_zeros(tmp_path):
    import onnx
    from onnx import numpy_helper

    from bench.backends.onnxruntime.export import export_onnx

    model = tiny_model()
    weights = sparse_targets(model)
    MaskKeeper(weights).set(unstructured_masks(magnitude(weights), 0.6))
    export_onnx(model, padded([9, 5]), tmp_path / "model.onnx", opset=18, device=torch.device("cpu"))
    graph = onnx.load(str(tmp_path / "model.onnx"), load_external_data=True).graph
    stored = [numpy_helper.to_array(init) for init in graph.initializer]
    zeros = total = 0
    for w in weights.values():
        w = w.detach().numpy()
        # The exporter folds the weight (often transposed) into an initializer of its own name.
        (found,) = [a for a in stored if (a.shape == w.shape and np.array_equal(a, w)) or (a.shape == w.T.shape and np.array_equal(a, w.T))]
        zeros, total = zeros + int((found == 0).sum()), total + found.size
    assert zeros / total == pytest.approx(0.6, abs=1e-4)


# ---------------------------------------------------------------------------------------- accounting, realize


def test_accounting_from_real_shapes_and_nonzeros():
    seq = 100
    dense = count(tiny_model())
    linear = 2 * (4 * 64 * 64 + 2 * 64 * 128)  # 2 layers: q, k, v, out (d x d) and fc1, fc2 (d x 2d)
    attention = 2 * (2 * 64 * seq)  # per layer 2 H Dh T
    assert dense.macs_per_token(seq) == linear + attention == dense.dense_macs_per_token(seq)
    assert dense.density_linear == 1.0 and dense.speedup_ideal(seq, "none") == 1.0
    share = linear / (linear + attention)
    assert dense.fields(seq)["linear_mac_share"] == pytest.approx(share)
    # 2:4 on sparse tensor cores: Amdahl with half the linear work.
    assert dense.speedup_ideal(seq, "sparse_tensor_cores") == pytest.approx(1 / ((1 - share) + share / 2))

    model = tiny_model()
    structured.prune_to(model, structured.KeptUnits.full(model.config), 0.5, "layer", magnitude(structured.scored_params(model)))
    pruned = count(model)
    assert pruned.density_linear == 0.5 and pruned.heads == (2, 2) and pruned.ffn == (64, 64)
    assert pruned.macs_per_token(seq) == (linear + attention) // 2
    assert pruned.speedup_ideal(seq, "smaller_gemm") == pytest.approx(2.0)
    assert pruned.base_params == dense.params  # what was removed is accounted back

    masked = tiny_model()
    weights = sparse_targets(masked)
    MaskKeeper(weights).set(unstructured_masks(magnitude(weights), 0.5))
    sparse = count(masked)
    assert sparse.density_linear == 0.5 and sparse.macs_per_token(seq) == dense.macs_per_token(seq)
    assert sparse.macs_per_token_nonzero(seq) == linear // 2 + attention
    assert sparse.speedup_ideal(seq, "none") == 1.0  # zeros in dense kernels buy nothing


def test_realisation_per_backend_on_the_cpu():
    model = tiny_model()
    cpu = Target("cpu", "fp32", 1)
    for backend in ("eager", "compile", "onnxruntime"):
        same, fields = realize(model, "unstructured", cpu, backend)
        assert same is model and fields["speedup_mechanism"] == "none"
        same, fields = realize(model, "structured", cpu, backend)
        assert same is model and fields["speedup_mechanism"] == "smaller_gemm"
        same, fields = realize(model, "semi24", cpu, backend)  # the masked-dense control
        assert same is model and fields["speedup_mechanism"] == "none" and fields["sparse_kernel"] == "dense"
        with pytest.raises(KernelSkipped, match="ONNX Runtime has no 2:4" if backend == "onnxruntime" else "CUDA-only"):
            realize(model, "semi24", cpu, backend, {"kernel": "2:4"})
        _, fields = realize(model, "dense", cpu, backend)
        assert fields["speedup_mechanism"] == "none"
    with pytest.raises(KernelSkipped, match="fp16 or bf16"):
        realize(model, "semi24", Target("cuda", "fp32", 1), "eager", {"kernel": "2:4"})


def test_2to4_kernel_shapes_are_checked_against_torchs_table():
    assert kernel_shape_problems(tiny_model(), torch.bfloat16) == []
    odd = XGLMClassifier(XGLMModel(XGLMConfig(**{**PRESETS["tiny"], "d_model": 72, "ffn_dim": 144})), 3)  # 4 heads of 18
    problems = kernel_shape_problems(odd, torch.bfloat16)
    assert len(problems) == 12 and "backbone.layers.0.self_attn.q_proj.weight is [72, 72]" in problems[0]
    assert "fp32" not in problems[0] and kernel_shape_problems(odd, torch.float32)  # fp32 has no 2:4 kernel at all


@pytest.mark.gpu
@pytest.mark.skipif(sparse_tensor_cores_missing() is not None, reason=str(sparse_tensor_cores_missing()))
@pytest.mark.parametrize("backend", ["eager", "compile"])
def test_semi24_runs_on_sparse_tensor_cores(backend, tmp_path):
    from bench.backends import prepare
    from bench.config import BackendOptions

    model = tiny_model()
    weights = sparse_targets(model)
    MaskKeeper(weights).set(semi24_masks(magnitude(weights)))
    target = Target("cuda", "bf16", 1)
    realized, fields = realize(model, "semi24", target, backend, {"kernel": "2:4"})
    assert fields["speedup_mechanism"] == "sparse_tensor_cores"
    _, auto = realize(copy.deepcopy(model), "semi24", target, backend, {"kernel": "auto"})
    assert auto["speedup_mechanism"] == "sparse_tensor_cores" and auto["sparse_kernel_linears"] == {"2:4": 12}
    example = padded([16, 9])
    runner = prepare(backend, realized, target, example, BackendOptions(), tmp_path)
    module = getattr(runner.module, "_orig_mod", runner.module)
    assert all(isinstance(lin.weight, torch.sparse.SparseSemiStructuredTensor) for lin in decoder_linears(module).values())
    dense = prepare("eager", model, target, example, BackendOptions(), tmp_path)
    ids, mask = padded([32, 17, 5, 30], seed=1)
    got = runner.logits(runner(runner.inputs(ids, mask)))
    want = dense.logits(dense(dense.inputs(ids, mask)))
    assert np.abs(got - want).max() < 5e-2


# ---------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(("variant", "message"), [
    ({"method": "unstructured", "sparsity": 1.0}, r"variants\[0\].sparsity': sparsity must be in \[0, 1\)"),
    ({"method": "unstructured", "sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
    ({"method": "unstructured"}, "method 'unstructured' needs sparsity"),
    ({"method": "structured"}, "method 'structured' needs sparsity"),
    ({"method": "semi24", "sparsity": 0.7}, "keeps 2 of every 4 weights, so sparsity is 0.5"),
    ({"method": "semi24", "sparsity_scope": "global"}, "sparsity_scope applies to methods unstructured, structured, block, not 'semi24'"),
    ({"method": "structured", "sparsity": 0.5, "schedule": "gradual"}, "schedule applies to method"),
    ({"method": "structured", "sparsity": 0.5, "sparsity_include": ["head"]}, "sparsity_include applies to"),
    ({"method": "unstructured", "sparsity": 0.5, "structured_iterative_steps": 2}, "structured_iterative_steps applies to method structured"),
    ({"method": "unstructured", "sparsity": 0.5, "gradual_fraction": 0.3}, "gradual_fraction applies to schedule 'gradual'"),
    ({"method": "dense", "sparsity": 0.5}, "sparsity applies to methods unstructured, semi24, structured, block, not 'dense'"),
    ({"method": "unstructured", "sparsity": 0.5, "importance": "movement"}, "importance"),
    ({"method": "prunning", "sparsity": 0.5}, "unknown method 'prunning'; available: dense, prompt, soft_prompt, lora, unstructured, semi24, structured"),
])
def test_bad_sparsity_options_name_the_field(variant, message):
    with pytest.raises(BenchError, match=message):
        parse_config({"variants": [{"name": "v", **variant}]})


def test_sparse_variants_round_trip_and_dense_recipes_are_unchanged():
    import tomllib

    cfg = parse_config({"variants": [
        {"name": "d", "method": "dense"},
        {"name": "u", "method": "unstructured", "sparsity": 0.5, "schedule": "gradual", "gradual_fraction": 0.25,
         "sparsity_scope": "global", "importance": "taylor", "sparsity_include": ["embedding"]},
        {"name": "s", "method": "structured", "sparsity": 0.25, "structured_iterative_steps": 3},
        {"name": "t", "method": "semi24"},
    ]})
    assert parse_config(tomllib.loads(cfg.to_toml())) == cfg
    assert not set(cfg.variants[0].recipe_options()) & {"sparsity", "schedule", "importance"}
    assert cfg.variants[1].recipe_options()["gradual_fraction"] == 0.25


def test_structured_level_is_refused_before_the_run_exists(tmp_path):
    from io import StringIO

    from rich.console import Console

    from bench.run.sweep import run_sweep

    cfg = parse_config({"output_dir": str(tmp_path / "runs"), "model": {"source": "random:tiny"},
                        "variants": [{"name": "st", "method": "structured", "sparsity": 0.9}]})
    with pytest.raises(BenchError, match="would remove every head"):
        run_sweep(cfg, Console(file=StringIO()))
    assert not (tmp_path / "runs").exists()


def test_2to4_on_a_backbone_whose_input_dims_are_not_multiples_of_4_is_refused():
    from sparsify.variants import check

    variant = make_variant(name="t", method="semi24")
    check(variant, preset_config("tiny"))
    odd = XGLMConfig(**{**PRESETS["tiny"], "d_model": 66, "attention_heads": 2})
    with pytest.raises(BenchError, match=r"variant 't': 2:4 sparsity needs input dimensions that are multiples of 4; "
                                         r"the decoder linears \(d_model\) input is 66"):
        check(variant, odd)


def test_study_configs_cover_the_whole_matrix():
    from bench.config import load_config, packaged_config

    cfg = load_config(packaged_config("sparsity-study"))
    levels = {(v.method, getattr(v, "sparsity", None)) for v in cfg.variants}
    assert levels == {("dense", None), ("semi24", None)} | {("unstructured", s) for s in (0.3, 0.5, 0.7, 0.9)} | {
        ("structured", s) for s in (0.25, 0.5, 0.75)}
    # The CPU study: the levels where kernels win, each through its kernels beside its masked-dense control, and
    # what users would do instead: dense, unstructured 90 % and structured 50 % in int8.
    cpu = load_config(packaged_config("sparsity-cpu"))
    assert {(v.method, getattr(v, "sparsity", None)) for v in cpu.variants} == {("dense", None), ("structured", 0.5)} | {
        ("unstructured", s) for s in (0.5, 0.7, 0.8, 0.9, 0.95)} | {("block", s) for s in (0.5, 0.8, 0.9, 0.95)}
    assert all(v.kernels for v in cpu.variants if v.method in ("unstructured", "block"))
    assert {v.name for v in cpu.variants if v.precisions == ["int8"]} == {"dense-ft", "unstructured-90", "structured-50"}
    assert {v.name for v in cfg.variants if v.precisions == ["int8"]} == {"dense-ft", "unstructured-90", "structured-50"}
