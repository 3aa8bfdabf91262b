"""Sparse kernels: a compressed model's logits equal its masked-dense control's (padded batches, a prompt and LoRA
on a sparse base, eager and compile), honest bytes and accounting, block masks, auto's calibration, the cells a
masked variant is measured as, and the refusals preflight makes."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

from test_sparsify import padded, tiny_context, tiny_model
from bench.backends import Target, prepare
from sparsify.kernels import KernelSkipped
from bench.variants.registry import builder, realize
from bench.config import BackendOptions, make_variant
from bench.errors import BenchError
from bench.measure.weight_bytes import weight_bytes
from bench.run.group import _pairs, plan_batches
from sparsify import kernel_calibration
from sparsify.accounting import count
from sparsify.kernels import CHUNK, CompressedLinear, Layout
from sparsify.masks import MaskKeeper, block_masks, block_norms, unstructured_masks
from sparsify.variants import check
from sparsify.realize_kernels import kernel_refusal
from sparsify.scores import magnitude
from sparsify.targets import decoder_linears, sparse_targets

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
CPU = Target("cpu", "fp32", 1)


def masked(level: float = 0.9, block: tuple[int, int] | None = None, seed: int = 0):
    model = tiny_model(seed)
    weights = sparse_targets(model)
    scores = magnitude(weights)
    MaskKeeper(weights).set(block_masks(scores, block, level) if block else unstructured_masks(scores, level))
    return model


def logits(model, lengths=(32, 17, 5, 30)):
    ids, mask = padded(list(lengths), seed=1)
    with torch.inference_mode():
        return model(ids, mask)


# ------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("kernel, block", [("csr", None), ("bsr", (16, 16)), ("csr", (16, 16))])
def test_kernel_logits_equal_the_masked_dense_control(kernel, block):
    control = masked(0.8, block)
    method = "block" if block else "unstructured"
    realized, fields = realize(copy.deepcopy(control), method, CPU, "eager", {"kernel": kernel, "block_shape": block})
    linears = decoder_linears(realized)
    assert all(isinstance(lin, CompressedLinear) and lin.kernel == kernel for lin in linears.values())
    assert all(index.dtype == torch.int32 for lin in linears.values() for index in (*lin.crows, *lin.cols))
    assert fields["speedup_mechanism"] == "sparse_kernel" and fields["sparse_kernel"] == kernel
    assert fields["sparse_kernel_linears"] == {Layout(kernel, block if kernel == "bsr" else None).label: 12}
    assert (logits(realized) - logits(control)).abs().max() < 1e-4
    # The same under no_grad (F.linear on a CSR weight fails under inference_mode; ours works under both).
    ids, mask = padded([9, 3])
    with torch.no_grad():
        assert (realized(ids, mask) - control(ids, mask)).abs().max() < 1e-4


@pytest.mark.parametrize("layout", [Layout("csr"), Layout("bsr", (16, 16))])
@pytest.mark.parametrize("bias", [True, False])
def test_a_weight_wider_than_a_chunk_is_multiplied_chunk_by_chunk_to_the_same_product(layout, bias):
    in_features = 2 * CHUNK + 48  # two whole chunks and a narrower last one
    linear = torch.nn.Linear(in_features, 64, bias=bias)
    g = torch.Generator().manual_seed(0)
    blocks = torch.rand(64 // 16, in_features // 16, generator=g) < 0.2
    linear.weight.data *= blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)
    kernel = CompressedLinear(linear, layout)
    assert len(kernel.values) == 3 and kernel.nnz >= int(torch.count_nonzero(linear.weight))
    assert torch.equal(kernel.weight, linear.weight.detach())
    x = torch.randn(3, 7, in_features, generator=g)
    for mode in (torch.inference_mode, torch.no_grad):
        with mode():
            assert (kernel(x) - linear(x)).abs().max() < 1e-4


def test_lora_and_prompt_on_a_sparse_base_run_sparse_with_the_same_logits():
    from prompts.lora import LoRALinear, LoraOptions, add_lora

    control = masked(0.9)
    add_lora(control, LoraOptions(rank=4, alpha=8.0, targets=("q_proj", "v_proj", "fc1")))
    for name, p in control.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # a trained adapter, not the zero init
    g = torch.Generator().manual_seed(3)
    for attn in control.attentions:  # a folded P-tuning v2 prefix of 5 keys and values per layer
        shape = (1, attn.num_heads, 5, attn.head_dim)
        attn.set_prefix(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    control.eval().base_method = "unstructured"  # what bench.variants.bases.load_frozen sets
    realized, fields = realize(copy.deepcopy(control), "lora", CPU, "eager", {"kernel": "csr"})
    wrapped = realized.backbone.layers[0].self_attn.q_proj
    assert isinstance(wrapped, LoRALinear) and isinstance(wrapped.base_layer, CompressedLinear)
    assert fields["sparse_kernel_linears"] == {"csr": 12}
    assert (logits(realized) - logits(control)).abs().max() < 1e-4


@pytest.mark.slow
def test_compile_runs_the_kernel_through_the_custom_op(tmp_path):
    control = masked(0.9)
    realized, fields = realize(copy.deepcopy(control), "unstructured", CPU, "compile", {"kernel": "csr"})
    assert "sparsify::compressed_mm" in fields["speedup_mechanism_reason"]
    runner = prepare("compile", realized, CPU, padded([16, 9]), BackendOptions(), tmp_path)
    ids, mask = padded([32, 17, 5, 30], seed=1)
    got = torch.from_numpy(runner.logits(runner(runner.inputs(ids, mask))))
    assert (got - logits(control)).abs().max() < 1e-4
    assert runner.runtime_info()["compile_graph_breaks"] == 0


def test_onnxruntime_kernel_cells_are_skipped_and_auto_runs_dense_there():
    model = masked(0.9)
    with pytest.raises(KernelSkipped, match="SparseToDenseMatMul"):
        realize(copy.deepcopy(model), "unstructured", CPU, "onnxruntime", {"kernel": "csr"})
    same, fields = realize(model, "unstructured", CPU, "onnxruntime", {"kernel": "auto"})
    assert same is model and fields["speedup_mechanism"] == "none" and fields["sparse_kernel_linears"] == {"dense": 12}
    _, control = realize(model, "unstructured", CPU, "eager", {"kernel": "dense"})
    assert control["sparse_kernel"] == "dense" and "masked-dense control" in control["speedup_mechanism_reason"]


# ------------------------------------------------------------------------------------------ bytes, accounting


def test_weight_bytes_count_values_and_int32_indices():
    model = masked(0.75)
    dense_bytes = weight_bytes(model)
    realized, _ = realize(copy.deepcopy(model), "unstructured", CPU, "eager", {"kernel": "csr"})
    saved = 0
    for name, linear in decoder_linears(model).items():
        nnz, rows = int(torch.count_nonzero(linear.weight)), linear.out_features
        chunks = -(-linear.in_features // CHUNK)  # each column chunk has its own row pointers
        saved += linear.weight.numel() * 4 - (nnz * 4 + nnz * 4 + chunks * (rows + 1) * 4)  # values, col, crow (int32)
    assert weight_bytes(realized) == dense_bytes - saved
    assert weight_bytes(realized, torch.float16) < weight_bytes(realized)  # values halve, indices do not


def test_ideal_speedup_counts_what_the_kernels_execute():
    seq = 64
    model = masked(0.9)
    before = count(model)
    realized, fields = realize(copy.deepcopy(model), "unstructured", CPU, "eager", {"kernel": "csr"})
    after = count(realized)
    assert after.density_linear == pytest.approx(before.density_linear)  # the dense view of the weights is the same
    assert (after.density_all, after.base_params) == (pytest.approx(before.density_all), before.base_params)
    assert sum(after.linear_executed) == sum(after.linear_nonzero)  # CSR executes exactly its nonzeros
    expected = before.dense_macs_per_token(seq) / before.macs_per_token_nonzero(seq)
    assert after.speedup_ideal(seq, "sparse_kernel") == pytest.approx(expected)
    assert before.speedup_ideal(seq, "none") == 1.0


# ------------------------------------------------------------------------------------------------- blocks


def test_block_masks_remove_whole_blocks_of_lowest_norm():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(64, 128, generator=g), "b": torch.rand(128, 64, generator=g)}
    masks = block_masks(scores, (16, 16), 0.75)
    for name, mask in masks.items():
        blocks = mask.reshape(mask.shape[0] // 16, 16, mask.shape[1] // 16, 16)
        per_block = blocks.sum((1, 3))
        assert set(per_block.unique().tolist()) <= {0, 256}  # each block kept or removed whole
        assert int((per_block == 0).sum()) == round(0.75 * per_block.numel())
        norms = block_norms(scores[name], (16, 16))
        assert norms[per_block > 0].min() >= norms[per_block == 0].max()  # the lowest norms went
    with pytest.raises(BenchError, match="does not divide"):
        block_masks({"c": torch.rand(24, 64)}, (16, 16), 0.5)


@pytest.mark.parametrize("schedule", ["oneshot", "gradual"])
def test_block_variant_keeps_its_blocks_through_fine_tuning(schedule):
    variant = make_variant(name="b", method="block", sparsity=0.75, block_shape=(16, 16), schedule=schedule)
    built = builder("block")(tiny_context(variant, steps=6))
    for name, linear in decoder_linears(built.model).items():
        w = linear.weight.detach()
        blocks = (w != 0).reshape(w.shape[0] // 16, 16, w.shape[1] // 16, 16).any(3).any(1)
        assert int((~blocks).sum()) == round(0.75 * blocks.numel()), name
    assert built.extra["sparsity_pattern"] == "block 16x16" and built.extra["block_shape"] == [16, 16]
    assert count(built.model).density_linear == pytest.approx(0.25, abs=1e-3)


# ------------------------------------------------------------------------------------------------- auto


def test_breakeven_is_the_top_of_the_run_of_wins_from_the_sparsest_end():
    run = {"0.5": {"64": 0.7, "512": 0.5}, "0.3": {"64": 1.3, "512": 1.02}, "0.2": {"64": 1.7, "512": 1.2},
           "0.1": {"64": 3.0, "512": 2.0}, "0.05": {"64": 5.0, "512": 3.0}}
    assert kernel_calibration.breakeven_density(run) == 0.2  # 0.3 loses at 512 tokens (below the 5% margin)
    assert kernel_calibration.breakeven_density({"0.1": {"64": 0.9}, "0.05": {"64": 2.0}}) == 0.05
    assert kernel_calibration.breakeven_density({"0.05": {"64": 0.9}}) == 0.0


def test_calibration_times_the_kernel_on_the_layout_it_reads(monkeypatch):
    """In the model a kernel is handed x^T contiguous (shared by q/k/v, written by attention and fc1): the
    calibration times it so, or it charges a transpose the model never makes and `auto` keeps winners dense."""
    seen, forward = [], CompressedLinear.forward
    monkeypatch.setattr(CompressedLinear, "forward", lambda self, x: seen.append(x.stride()) or forward(self, x))
    monkeypatch.setattr(kernel_calibration, "DENSITIES", (0.1,))
    monkeypatch.setattr(kernel_calibration, "TOKENS", (8,))
    entry = kernel_calibration.measure(Layout("csr"), (16, 32), "cpu", torch.float32)
    assert seen and set(seen) == {(1, 8)}  # [8 tokens, 32 features] over a contiguous [32, 8]
    assert set(entry["speedup_by_density_tokens"]) == {"0.1"}
    assert kernel_calibration.calibration_key("cpu", torch.float32, 2)["input"] == "transposed"  # old caches miss


def test_auto_picks_per_linear_from_the_cached_calibration(tmp_path, monkeypatch):
    model = masked(0.9)
    fake = {"breakeven_density": 0.15}
    calls = []
    monkeypatch.setattr(kernel_calibration, "measure", lambda *a: calls.append(a) or fake)
    realized, fields = realize(copy.deepcopy(model), "unstructured", CPU, "eager",
                               {"kernel": "auto", "cache_dir": str(tmp_path)})
    assert fields["sparse_kernel_linears"] == {"csr": 12} and fields["speedup_mechanism"] == "sparse_kernel"
    assert len(calls) == 3  # one calibration per weight shape: [64, 64], [128, 64], [64, 128]
    cached = json.loads(next((tmp_path / "calibration").glob("sparse-kernels-*.json")).read_text())
    assert cached["key"]["dtype"] == "float32" and len(cached["entries"]) == 3
    # A denser model: the same cache says no kernel wins at 50%, and nothing is measured again.
    half = masked(0.5)
    same, fields = realize(half, "unstructured", CPU, "eager", {"kernel": "auto", "cache_dir": str(tmp_path)})
    assert fields["sparse_kernel_linears"] == {"dense": 12} and fields["speedup_mechanism"] == "none"
    assert len(calls) == 3 and fields["sparse_kernel_calibration_measured"] == []
    # auto never refuses: bf16 on the CPU has no sparse kernel, so every linear runs dense.
    _, fields = realize(masked(0.9), "unstructured", Target("cpu", "bf16", 1), "eager", {"kernel": "auto", "cache_dir": str(tmp_path)})
    assert fields["sparse_kernel_linears"] == {"dense": 12}


def test_auto_runs_a_chain_sparse_only_when_every_link_wins(tmp_path, monkeypatch):
    """fc1 [128, 64] wins alone, fc2 [64, 128] loses: both stay dense (fc1's transposed output would slow what reads
    it); out_proj and q/k/v [64, 64] win together."""
    wins = {(64, 64): 0.15, (128, 64): 0.15, (64, 128): 0.0}
    monkeypatch.setattr(kernel_calibration, "measure", lambda layout, shape, *a: {"breakeven_density": wins[shape]})
    _, fields = realize(masked(0.9), "unstructured", CPU, "eager", {"kernel": "auto", "cache_dir": str(tmp_path)})
    by_linear = fields["sparse_kernel_by_linear"]
    assert {k.rsplit(".", 1)[1]: v for k, v in by_linear.items() if ".layers.0." in f".{k}"} == {
        "q_proj": "csr", "k_proj": "csr", "v_proj": "csr", "out_proj": "csr", "fc1": "dense", "fc2": "dense"}
    assert fields["sparse_kernel_linears"] == {"csr": 8, "dense": 4}


# ------------------------------------------------------------------------------------ cells and refusals


def test_a_masked_variant_is_its_control_and_one_cell_per_kernel_from_one_recipe():
    plain = make_variant(name="u90", method="unstructured", sparsity=0.9)
    with_kernels = make_variant(name="u90", method="unstructured", sparsity=0.9, kernels=["csr", "auto"])
    assert _cells(plain) == [("u90", "dense"), ("u90@auto", "auto")]
    assert _cells(with_kernels) == [("u90", "dense"), ("u90@csr", "csr"), ("u90@auto", "auto")]
    assert plain.recipe_options() == with_kernels.recipe_options()  # the artifact is shared
    assert _cells(make_variant(name="s", method="structured", sparsity=0.5)) == [("s", None)]
    cells = [("dense", "eager"), ("u90", "eager"), ("u90@csr", "eager"), ("x", "eager")]
    batches = plan_batches(cells, "dense", 3, family={"u90@csr": "u90"})
    assert [("dense", "eager"), ("u90", "eager"), ("u90@csr", "eager")] in batches


def _cells(variant) -> list[tuple[str, str | None]]:
    return [(cell.name, cell.kernel) for cell in variant.cells()]


def test_kernel_cells_are_paired_with_their_control():
    class T:
        def __init__(self, variant, control=None):
            self.cell_id = variant
            self.base = {"variant": variant, "backend": "eager", "kernel_control": control}

    pairs = _pairs([T("dense"), T("u"), T("u@csr", "u")], "dense")
    assert (("u", "u@csr"), "control") in pairs and (("dense", "u@csr"), "dense") in pairs


@pytest.mark.parametrize("variant, measure, match", [
    (dict(method="unstructured", sparsity=0.9, kernels=["csr"]), dict(dtypes=["bf16"]), "takes fp32 or fp64"),
    (dict(method="block", sparsity=0.8, block_shape=[16, 32], kernels=["bsr"]), {}, "square blocks"),
    (dict(method="semi24", kernels=["2:4"]), {}, "CUDA sparse tensor cores only"),
])
def test_kernels_that_cannot_serve_are_refused_in_one_line(variant, measure, match):
    v = make_variant(name="v", **variant)
    problem = kernel_refusal(v, "cpu", measure.get("dtypes", ["fp32"]), ["eager"])
    assert problem and match in problem and "\n" not in problem
    assert kernel_refusal(v.model_copy(update={"kernels": ["auto"]}), "cpu", ["bf16"], ["eager"]) is None
    assert kernel_refusal(v, "cpu", measure.get("dtypes", ["fp32"]), ["onnxruntime"]) is None  # skipped, not refused


def test_bad_kernel_and_block_options_are_refused_by_the_config():
    with pytest.raises(ValueError, match="kernel 2:4 serves 2:4 masks"):
        make_variant(name="v", method="unstructured", sparsity=0.9, kernels=["2:4"])
    with pytest.raises(ValueError, match="kernel bsr serves block-sparse"):
        make_variant(name="v", method="unstructured", sparsity=0.9, kernels=["bsr"])
    with pytest.raises(ValueError, match="kernels"):
        make_variant(name="v", method="structured", sparsity=0.5, kernels=["csr"])
    with pytest.raises(ValueError, match="block_shape"):
        make_variant(name="v", method="unstructured", sparsity=0.5, block_shape=[16, 16])
    config = tiny_model().config
    with pytest.raises(BenchError, match=r"block_shape \[24, 24\] does not divide"):
        check(make_variant(name="v", method="block", sparsity=0.5, block_shape=[24, 24]), config)


def test_bad_kernel_is_refused_before_the_run_directory_exists(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    config = tmp_path / "bad.toml"
    config.write_text('[model]\nsource = "random:tiny"\n[data]\nsource = "synthetic"\n[train]\nsteps = 0\n'
                      '[[variants]]\nname = "u"\nmethod = "unstructured"\nsparsity = 0.9\nkernels = ["csr"]\n'
                      '[measure]\ndtypes = ["bf16"]\nbackends = ["eager"]\n')
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(config), "--output-dir", str(out)])
    assert result.exit_code == 2 and "takes fp32 or fp64" in result.output
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.usefixtures("bench_env")
def test_a_sweep_writes_the_kernel_cell_beside_its_control_with_its_paired_gain(tmp_path):
    """Through `bench run`: the kernel cell's record passes the schema with every paired key (the kernel's own gain
    vs its control included), its accuracy is the control's (evaluated on the kernel model), the Findings give
    its curve and the report draws it."""
    import tomli_w

    from bench.run.store import RunStore
    from helpers import invoke
    from tinydata import tiny_sweep, write_layouts

    data = write_layouts(tmp_path / "data")
    config = tmp_path / "sweep.toml"
    config.write_text(tomli_w.dumps(tiny_sweep(
        tmp_path / "runs", tmp_path / "cache", data,
        variants=[{"name": "dense-ft", "method": "dense"},
                  {"name": "u90", "method": "unstructured", "sparsity": 0.9, "kernels": ["csr"]}],
        measure={"scenarios": ["latency", "accuracy"], "min_rounds": 6, "aa_control": "off"})))
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    records = RunStore(run).records()
    (kernel,) = [r for r in records if r["variant"] == "u90@csr" and r["scenario"] == "latency"]
    assert kernel["sparse_kernel"] == "csr" and kernel["kernel_control"] == "u90"
    assert kernel["speedup_vs_control"] > 0 and kernel["speedup_vs_control_ci_level"] >= 0.95
    assert kernel["speedup_vs_control_ci95_low"] <= kernel["speedup_vs_control"] <= kernel["speedup_vs_control_ci95_high"]
    assert sum(kernel["sparse_kernel_linears"].values()) == len(kernel["sparse_kernel_by_linear"])
    (control,) = [r for r in records if r["variant"] == "u90" and r["scenario"] == "latency"]
    assert control["sparse_kernel"] == "dense" and kernel["weight_bytes"] < control["weight_bytes"]
    accuracy = {r["variant"]: r["accuracy_by_language"] for r in records if r["scenario"] == "accuracy"}
    assert accuracy["u90@csr"] == accuracy["u90"]
    assert "unstructured through CSR on eager (cpu):" in " ".join(result.stdout.split())
    assert (run / "plots" / "latency_vs_sparsity.png").is_file()
    # What sparsity leaves, in the terminal: densities, MACs with and without zeros, the artifact's bytes.
    from reports.sparsity import sparsity_views

    (view,) = sparsity_views(records)
    rows = {row[0].text: dict(zip([c.name for c in view.columns], row)) for row in view.rows}
    assert set(rows) == {"dense-ft", "u90", "u90@csr"} and rows["u90"]["kernel"].text == "dense"
    assert rows["u90"]["density linears"].text == "10%" and rows["u90"]["vs dense"].text == "1.00x"
    assert float(rows["u90@csr"]["vs dense"].text.rstrip("x")) < 1  # values plus int32 indices, no zeros
    assert float(rows["u90"]["nonzero M"].text) < float(rows["u90"]["MACs/token M"].text)
    assert "What sparsity leaves" in result.stdout


# ------------------------------------------------------------------------------------------------- CUDA


def _cuda_missing() -> str | None:
    return None if torch.cuda.is_available() else "CUDA is not available"


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_missing() is not None, reason=str(_cuda_missing()))
@pytest.mark.parametrize("kernel, block, dtype", [("csr", None, "fp32"), ("bsr", (16, 16), "fp32"),
                                                  ("bsr", (16, 16), "fp16")])
def test_cuda_kernels_equal_the_masked_dense_control(kernel, block, dtype, tmp_path):
    target = Target("cuda", dtype, 1)
    control = masked(0.8, block)
    realized, fields = realize(copy.deepcopy(control), "block" if block else "unstructured", target, "eager",
                               {"kernel": kernel, "block_shape": block})
    assert fields["speedup_mechanism"] == "sparse_kernel"
    example = padded([16, 9])
    runner = prepare("eager", realized, target, example, BackendOptions(), tmp_path)
    dense = prepare("eager", control, target, example, BackendOptions(), tmp_path)
    ids, mask = padded([32, 17, 5, 30], seed=1)
    got = runner.logits(runner(runner.inputs(ids, mask)))
    want = dense.logits(dense(dense.inputs(ids, mask)))
    assert abs(got - want).max() < (1e-4 if dtype == "fp32" else 5e-2)
