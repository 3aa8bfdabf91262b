"""P-tuning v2: PEFT's prefix is the reference; the folded model, its positions, its training and its artifact."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from transformers import XGLMConfig, XGLMForCausalLM, XGLMModel

from bench.backends import Target, prepare
from bench.config import BackendOptions, TrainConfig, make_variant, parse_config
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier
from bench.model.source import PRESETS, ModelSource, load_backbone, preset_config
from bench.data.tasks import get_task
from bench.variants.context import BuildContext
from prompts.encoder import PrefixEncoder
from prompts.ptuning import build, load, trainable_share


def padded(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    mask = (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long()
    return torch.randint(4, 1024, (len(lengths), seq), generator=g).masked_fill(mask == 0, 1), mask


@pytest.fixture(params=[False, True], ids=["table", "mlp"])
def peft_pair(request):
    """A PEFT prefix-tuned XGLM (the reference) and our classifier with an encoder holding PEFT's weights."""
    mlp = request.param
    torch.manual_seed(0)
    lm = XGLMForCausalLM(XGLMConfig(**PRESETS["tiny"])).eval()
    cfg = lm.config
    ours = XGLMClassifier(copy.deepcopy(lm.model), num_labels=3).eval()
    peft_cfg = PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=6, num_layers=cfg.num_layers, token_dim=cfg.d_model,
        num_attention_heads=cfg.attention_heads, prefix_projection=mlp, encoder_hidden_size=32,
    )
    reference = get_peft_model(lm, peft_cfg).eval()
    peft_encoder = reference.prompt_encoder["default"]
    with torch.no_grad():
        for p in peft_encoder.parameters():
            p.normal_()
    encoder = PrefixEncoder.for_model(ours, 6, mlp_hidden=32 if mlp else None)
    peft_state = peft_encoder.state_dict()
    encoder.load_state_dict({
        "embedding.weight": peft_state["embedding.weight"],
        **({f"transform.{i}.{k}": peft_state[f"transform.{i}.{k}"] for i in (0, 2) for k in ("weight", "bias")} if mlp else {}),
    })
    for attn, (k, v) in zip(ours.attentions, encoder.fold()):
        attn.set_prefix(k, v)
    return ours, reference, lm


def test_encoder_layout_is_pefts(peft_pair):
    ours, reference, _ = peft_pair
    cache = reference.get_prompt(batch_size=1)
    for layer, attn in enumerate(ours.attentions):
        assert torch.allclose(attn.prefix_k, cache.layers[layer].keys, atol=1e-6)
        assert torch.allclose(attn.prefix_v, cache.layers[layer].values, atol=1e-6)


def test_folded_model_equals_peft_on_padded_batches(peft_pair, monkeypatch):
    ours, reference, lm = peft_pair
    ids, mask = padded([10, 7, 3])
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits  # [B, T, vocab]
        got = lm.lm_head(ours.hidden_states(ids, mask))
    real = mask.bool()
    assert (got - expected)[real].abs().max().item() <= 1e-5
    # Numbering real tokens from 0 instead of P is what the offset prevents: it changes the result by far more.
    monkeypatch.setattr(XGLMClassifier, "position_offset", property(lambda self: 0))
    with torch.no_grad():
        unshifted = lm.lm_head(ours.hidden_states(ids, mask))
    assert (unshifted - expected)[real].abs().max().item() > 1e-2


@pytest.mark.parametrize(("prefix", "share"), [(15, 0.131), (16, 0.140)])
def test_trainable_share_of_the_564m_architecture(prefix, share):
    """Counted from the real modules (on the meta device: no memory), XNLI head included."""
    with torch.device("meta"):
        model = XGLMClassifier(XGLMModel(preset_config("564M")), num_labels=3)
        encoder = PrefixEncoder.for_model(model, prefix)
    assert sum(p.numel() for p in encoder.parameters()) == prefix * 2 * 24 * 1024
    assert round(100 * trainable_share(model, encoder), 3) == share


def tiny_context(tmp_path, variant, *, steps: int, rows: int = 32, seed: int = 0) -> BuildContext:
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(4, 1024, (int(n),), generator=g).tolist() for n in torch.randint(6, 20, (rows,), generator=g)]
    labels = [i % 3 for i in range(rows)]
    return BuildContext(
        variant=variant, task=get_task("xnli"), source=ModelSource.parse("random:tiny"),
        train=TrainConfig(steps=steps, batch_size=16, lr=3e-2, weight_decay=0.0, log_every=5), seed=seed,
        backbone_seed=0, train_ids=ids, train_labels=labels, pad_id=1, device=torch.device("cpu"),
    )


def test_training_moves_only_prefix_and_head_and_fits(tmp_path):
    ctx = tiny_context(tmp_path, make_variant(name="pt", method="prompt", prompt_length=8, prompt_dropout=0.0), steps=60)
    frozen = load_backbone(ctx.source, seed=0).state_dict()
    built = build(ctx)
    for name, tensor in built.model.backbone.state_dict().items():
        if not name.endswith(("prefix_k", "prefix_v")):
            assert torch.equal(tensor, frozen[name]), f"{name} changed"
    assert built.model.prefix_length == 8
    losses = [loss for _, loss in built.train.losses]
    assert losses[-1] < 0.8 * losses[0]
    x = [torch.tensor(i) for i in ctx.train_ids]
    ids = torch.nn.utils.rnn.pad_sequence(x, batch_first=True, padding_value=1)
    mask = (torch.arange(ids.shape[1])[None, :] < torch.tensor([len(i) for i in x])[:, None]).long()
    with torch.no_grad():
        fitted = (built.model(ids, mask).argmax(1) == torch.tensor(ctx.train_labels)).float().mean().item()
    assert fitted > 0.6  # chance is 1/3
    assert built.extra["params_trainable"] == 8 * 2 * 2 * 64 + 64 * 3 + 3
    assert set(built.state_dict) == {f"backbone.layers.{i}.self_attn.prefix_{kv}" for i in range(2) for kv in "kv"} | {"head.weight", "head.bias"}


def test_mlp_is_folded_away(tmp_path):
    ctx = tiny_context(tmp_path, make_variant(name="pt", method="prompt", prompt_length=4, prompt_mlp=True, prompt_mlp_hidden=16), steps=2)
    built = build(ctx)
    assert built.extra["params_trainable"] > built.extra["params_prefix"] == 4 * 2 * 2 * 64
    assert not any("transform" in k for k in built.state_dict)


@pytest.fixture(scope="module")
def prompt_artifact(tmp_path_factory):
    from bench.variants import artifacts
    from bench.data.tokenization import trained_tokenizer

    tmp = tmp_path_factory.mktemp("prompt")
    ctx = tiny_context(tmp, make_variant(name="pt", method="prompt", prompt_length=5), steps=3)
    built = build(ctx)
    tok, _ = trained_tokenizer(["a b c d"] * 4, vocab_size=30, cache_dir=tmp)
    meta = {"architecture": built.architecture, "params_trainable": 1, "extra": {}, "train": None}
    recipe = {"variant": "pt", "task": "xnli", "seed": 0}
    return artifacts.save(tmp, recipe, built.model, tok, meta, built.state_dict), built.model


def test_prompt_artifact_stores_only_what_was_learned_and_reloads_exactly(prompt_artifact):
    artifact, model = prompt_artifact
    assert artifact.disk_bytes() < 20_000  # prefix (2 x 2 x 5 x 64 floats) + head, not the backbone
    ids, mask = padded([9, 4])
    with torch.no_grad():
        assert torch.equal(artifact.load_model()(ids, mask), model(ids, mask))


def test_prefix_for_another_backbone_shape_is_refused(prompt_artifact):
    artifact, _ = prompt_artifact
    other = dict(artifact.meta["architecture"], backbone="random:small")
    with pytest.raises(BenchError, match="another shape .*d_model 64 vs 512"):
        load(artifact.path / "model.safetensors", other)


def test_prefix_for_other_backbone_weights_is_refused(prompt_artifact):
    artifact, _ = prompt_artifact
    other = dict(artifact.meta["architecture"], backbone_seed=1)  # same shape, other weights
    with pytest.raises(BenchError, match="other backbone weights"):
        load(artifact.path / "model.safetensors", other)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "compile"])
def test_folded_prefix_exports_with_dynamic_shapes(prompt_artifact, tmp_path, backend):
    _, model = prompt_artifact
    example = padded([16, 9])
    runner = prepare(backend, model, Target("cpu", "fp32", 2), example, BackendOptions(), tmp_path)
    masked = copy.copy(model)  # the reference keeps the padding mask; the runner takes the mask-free path
    masked.attention_path = "masked"
    assert runner.info["attention_path"] == "causal"
    for lengths in ([23, 5, 11, 2, 7], [3]):
        ids, mask = padded(lengths, seed=len(lengths))
        with torch.no_grad():
            want = masked(ids, mask).numpy()
        got = runner.logits(runner(runner.inputs(ids, mask)))
        assert np.abs(got - want).max() < 1e-5 and (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"name": "p", "method": "prompt", "prompt_length": 0}, "prompt_length"),
        ({"name": "p", "method": "prompt", "prompt_length": 129}, "less than or equal to 128"),
        ({"name": "p", "method": "prompt"}, "needs prompt_length"),
        ({"name": "d", "method": "dense", "prompt_length": 8}, "applies to methods prompt, soft_prompt, not 'dense'"),
    ],
)
def test_bad_prompt_options(variant, message):
    with pytest.raises(BenchError, match=message):
        parse_config({"variants": [variant]})


def test_prompt_training_policy_sits_between_train_and_variant():
    cfg = parse_config({"train": {"lr": 1e-5, "epochs": 1},
                        "variants": [{"name": "p", "method": "prompt", "prompt_length": 4},
                                     {"name": "q", "method": "prompt", "prompt_length": 4, "train": {"lr": 1e-2}}]})
    assert cfg.train_for(cfg.variants[0]).lr == 5e-3 and cfg.train_for(cfg.variants[0]).epochs == 3.0
    assert cfg.train_for(cfg.variants[1]).lr == 1e-2


def test_seeds_give_per_seed_records_and_a_mean_std_aggregate(tmp_path, generated_data_dir, monkeypatch):
    import io
    import json

    from rich.console import Console

    from bench.run.sweep import run_sweep

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = parse_config({
        "output_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"),
        "model": {"source": "random:tiny", "max_length": 48},
        "data": {"source": "local", "data_dir": str(generated_data_dir), "languages": ["en", "sw"],
                 "max_train_samples": 32, "max_eval_per_language": 16},
        "method_train": {"prompt": {"steps": 2, "lr": 1e-2}},
        "variants": [{"name": "pt", "method": "prompt", "prompt_length": 4, "seeds": [0, 1, 2]}],
        "measure": {"backends": ["eager"], "scenarios": ["accuracy"], "batch_sizes": [2], "seq_lens": [16]},
    })
    store = run_sweep(cfg, Console(file=io.StringIO()))
    records = [json.loads(line) for line in (store.path / "results.jsonl").read_text().splitlines()]
    per_seed = [r for r in records if r["seed"] is not None]
    (aggregate,) = [r for r in records if r.get("aggregate") == "mean_over_seeds"]
    assert sorted(r["seed"] for r in per_seed) == [0, 1, 2] and aggregate["seeds"] == [0, 1, 2]
    assert len({r["artifact_key"] for r in per_seed}) == 3  # one trained artifact per seed
    for lang in ("en", "sw"):
        values = [r["accuracy_by_language"][lang] for r in per_seed]
        assert aggregate["accuracy_by_language"][lang] == pytest.approx(np.mean(values))
        assert aggregate["accuracy_by_language_std"][lang] == pytest.approx(np.std(values, ddof=1))
    assert aggregate["language_groups"] == {"high": ["en"], "low": ["sw"]}
    assert all(r["prompt_length"] == 4 and r["method"] == "prompt" for r in records)


def test_prefix_plus_sequence_must_fit_the_position_table(tmp_path):
    from io import StringIO

    from rich.console import Console

    from bench.run.sweep import run_sweep

    cfg = parse_config({"output_dir": str(tmp_path / "runs"), "model": {"source": "random:tiny"},
                        "variants": [{"name": "p", "method": "prompt", "prompt_length": 100}],
                        "measure": {"seq_lens": [450]}})
    with pytest.raises(BenchError, match="prompt_length 100 \\+ sequence length 450 exceeds the model's 512 positions"):
        run_sweep(cfg, Console(file=StringIO()))
    assert not (tmp_path / "runs").exists()
