"""The classifier's backbone equals transformers' XGLM; the prefix slot equals a DynamicCache prefix; loading paths."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import DynamicCache, XGLMConfig, XGLMForCausalLM, XGLMModel

from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier, attention_bias, count_parameters
from bench.model.source import PRESETS, ModelSource, load_backbone, preset_config
from helpers import padded


@pytest.fixture()
def pair() -> tuple[XGLMClassifier, XGLMModel]:
    """Our classifier and an untouched copy of the same transformers backbone."""
    backbone = load_backbone(ModelSource.parse("random:tiny"), seed=3)
    reference = copy.deepcopy(backbone).eval()
    return XGLMClassifier(backbone, num_labels=3).eval(), reference


@pytest.mark.parametrize("lengths", [[11, 7, 3], [16, 16], [1, 9, 5, 2]])
def test_sdpa_backbone_equals_transformers_on_padded_batches(pair, lengths):
    ours, reference = pair
    ids, mask = padded(lengths)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours.hidden_states(ids, mask)
    # Every position, padding included: padded queries see the same real keys in both.
    assert (got - expected).abs().max().item() <= 1e-5


def test_attention_modules_are_replaced_and_share_weights(pair):
    ours, reference = pair
    from bench.model.attention import SdpaAttention

    assert all(isinstance(a, SdpaAttention) for a in ours.attentions)
    assert set(ours.backbone.state_dict()) == set(reference.state_dict())


def test_prefix_slot_equals_transformers_dynamic_cache_prefix(pair):
    ours, reference = pair
    cfg = reference.config
    heads, head_dim, prefix = cfg.attention_heads, cfg.d_model // cfg.attention_heads, 5
    g = torch.Generator().manual_seed(1)
    kv = [(torch.randn(1, heads, prefix, head_dim, generator=g), torch.randn(1, heads, prefix, head_dim, generator=g))
          for _ in range(cfg.num_layers)]
    for attn, (k, v) in zip(ours.attentions, kv):
        attn.set_prefix(k, v)
    ids, mask = padded([9, 6, 2])
    cache = DynamicCache(config=cfg)
    for layer, (k, v) in enumerate(kv):
        cache.update(k.expand(3, -1, -1, -1).clone(), v.expand(3, -1, -1, -1).clone(), layer)
    full_mask = torch.cat([torch.ones(3, prefix, dtype=torch.long), mask], dim=1)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=full_mask, past_key_values=cache, use_cache=True).last_hidden_state
        got = ours.hidden_states(ids, mask)
    assert ours.prefix_length == prefix
    assert (got - expected)[mask.bool()].abs().max().item() <= 1e-5


def test_prefix_shape_is_validated(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match="prefix K/V must both have shape"):
        ours.attentions[0].set_prefix(torch.zeros(1, 3, 4, 16), torch.zeros(1, 3, 4, 16))


def test_folded_prefix_is_a_saved_buffer_and_a_live_one_keeps_its_graph(pair):
    ours, _ = pair
    attn = ours.attentions[0]
    shape = (1, attn.num_heads, 2, attn.head_dim)
    live = torch.zeros(shape, requires_grad=True)
    attn.set_prefix(live * 2, live * 3, persistent=False)
    assert attn.prefix_k.grad_fn is not None and "backbone.layers.0.self_attn.prefix_k" not in ours.state_dict()
    attn.set_prefix(torch.ones(shape), torch.ones(shape))
    assert torch.equal(ours.state_dict()["backbone.layers.0.self_attn.prefix_k"], torch.ones(shape))
    assert not ours.state_dict()["backbone.layers.0.self_attn.prefix_k"].requires_grad
    attn.set_prefix(None, None)
    assert attn.prefix_length == 0 and "backbone.layers.0.self_attn.prefix_k" not in ours.state_dict()


def test_classifier_pools_the_last_real_token(pair):
    """A row's logits do not depend on how much padding follows it."""
    ours, _ = pair
    ids, mask = padded([12, 5])
    with torch.no_grad():
        batched = ours(ids, mask)
        alone = ours(ids[1:, :5], mask[1:, :5])
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


def test_attention_bias_layout():
    mask = attention_bias(torch.tensor([[1, 1, 0]]), prefix_length=2)
    assert mask.shape == (1, 1, 3, 5)
    assert mask[0, 0, :, :2].all()  # prefix visible to every query
    assert mask[0, 0].tolist()[1] == [True, True, True, True, False]  # causal over real keys
    assert not mask[0, 0, :, 4].any()  # padding key hidden from every query


def test_564m_preset_has_the_published_parameter_count():
    with torch.device("meta"):
        backbone = XGLMModel(preset_config("564M"))
    assert count_parameters(backbone) == (564_463_616, 564_463_616)
    cfg = backbone.config
    assert (cfg.num_layers, cfg.d_model, cfg.attention_heads, cfg.ffn_dim, cfg.vocab_size) == (24, 1024, 16, 4096, 256008)


def test_random_presets_are_seeded():
    """The seed alone decides the weights: the same seed rebuilds them whatever the global RNG holds, another seed
    gives others (a loader that ignored its seed, or drew from the global RNG, fails here)."""
    source = ModelSource.parse("random:tiny")

    def weights(seed: int, global_seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(global_seed)
        return load_backbone(source, seed=seed).state_dict()

    a, b, other = weights(7, global_seed=1), weights(7, global_seed=2), weights(8, global_seed=1)
    assert a.keys() == b.keys() == other.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Every initialised matrix differs (LayerNorms start at ones and zeros, positions are sinusoidal, under any seed).
    matrices = [k for k in a if k.endswith("weight") and a[k].dim() == 2]
    assert "embed_tokens.weight" in matrices and len(matrices) > 10
    assert not [k for k in matrices if torch.equal(a[k], other[k])]


def test_local_directory_loads_a_causal_lm_checkpoint(tmp_path):
    """The from_pretrained path used for facebook/xglm-564M, exercised on a tiny checkpoint saved here."""
    torch.manual_seed(0)
    lm = XGLMForCausalLM(XGLMConfig(**PRESETS["tiny"]))
    lm.save_pretrained(tmp_path)
    source = ModelSource.parse(str(tmp_path))
    assert source.kind == "local" and not source.random_weights
    backbone = load_backbone(source)
    for name, tensor in lm.model.state_dict().items():
        assert torch.equal(backbone.state_dict()[name], tensor), name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("random:tinyy", "did you mean 'tiny'"),
        ("./no/such/dir", "neither a directory nor a hub id"),
        ("random:", "unknown model preset"),
    ],
)
def test_bad_model_sources(spec, message):
    with pytest.raises(BenchError, match=message):
        ModelSource.parse(spec)


def test_directory_without_config(tmp_path):
    with pytest.raises(BenchError, match="no config.json"):
        ModelSource.parse(str(tmp_path))


def test_hub_id_is_real_code_and_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = ModelSource.parse("facebook/xglm-564M")
    assert source.kind == "hub"
    with pytest.raises(BenchError, match="could not load model 'facebook/xglm-564M' from the hub"):
        load_backbone(source)
