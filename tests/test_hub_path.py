"""The hub path, without a hub: a Hugging Face cache seeded in the cache's own layout with a tiny XGLM laid out as
facebook/xglm-564M is (config.json, fp16 pytorch_model.bin of XGLMForCausalLM, tokenizer.json with
tokenizer_class XGLMTokenizer), loaded by its hub id, offline, through exactly the code a user of
facebook/xglm-564M runs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bench.data.tokenization import encode_pairs, load_tokenizer, trained_tokenizer
from bench.errors import BenchError
from bench.model.source import ModelSource, backbone_config, load_backbone

HUB_ID = "test-org/xglm-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "el gato se sentó", "paka aliketi juu ya mkeka"] * 20


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """models--test-org--xglm-tiny/{refs/main, snapshots/<commit>/...}, as huggingface_hub writes it."""
    from transformers import XGLMConfig, XGLMForCausalLM

    root = tmp_path_factory.mktemp("hf-cache")
    snapshot = root / "models--test-org--xglm-tiny" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "models--test-org--xglm-tiny" / "refs").mkdir()
    (root / "models--test-org--xglm-tiny" / "refs" / "main").write_text(COMMIT)
    torch.manual_seed(0)
    config = XGLMConfig(d_model=32, num_layers=2, attention_heads=4, ffn_dim=64, vocab_size=512,
                        max_position_embeddings=128)
    model = XGLMForCausalLM(config).eval()
    config.save_pretrained(snapshot)
    # The real checkpoint is an fp16 pickle of XGLMForCausalLM's state dict (no safetensors on its main branch).
    torch.save({k: v.half() for k, v in model.state_dict().items()}, snapshot / "pytorch_model.bin")
    tokenizer, _ = trained_tokenizer(TEXTS, vocab_size=512, cache_dir=root / "trained")
    tokenizer.backend_tokenizer.save(str(snapshot / "tokenizer.json"))
    (snapshot / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XGLMTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>"}))
    return root, model


def _use_cache(monkeypatch, root) -> None:
    """As a user's HF_HUB_CACHE would (huggingface_hub reads it once, at import), and no hub."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable: the code must fall back to the cache


@pytest.fixture
def offline_hub(hub_cache, monkeypatch):
    root, model = hub_cache
    _use_cache(monkeypatch, root)
    return model


def test_a_hub_id_loads_from_the_local_cache_when_the_hub_is_unreachable(offline_hub, tmp_path):
    source = ModelSource.parse(HUB_ID)
    assert source.kind == "hub" and not source.random_weights
    assert backbone_config(source).d_model == 32
    backbone = load_backbone(source)
    reference = {k.removeprefix("model."): v for k, v in offline_hub.state_dict().items()}
    for name, tensor in backbone.state_dict().items():  # the checkpoint's weights, via fp16 as stored
        if name in reference:
            assert torch.equal(tensor, reference[name].half().float()), name
    assert backbone.embed_tokens.weight.dtype == torch.float32


def test_its_own_tokenizer_loads_without_a_conversion_step(offline_hub, tmp_path):
    tokenizer, note = load_tokenizer(ModelSource.parse(HUB_ID), texts=[], cache_dir=tmp_path)
    assert type(tokenizer).__name__ == "XGLMTokenizer" and "the model's own" in note
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    (ids,) = encode_pairs(tokenizer, ["the cat"], ["a dog"], max_length=32)
    assert ids[0] == 2 and ids.count(2) == 3  # XGLM's pair format: </s> A </s></s> B


@pytest.mark.slow
def test_the_whole_sweep_runs_on_the_hub_id(offline_hub, tmp_path):
    from rich.console import Console

    from bench.config import parse_config
    from bench.run.sweep import run_sweep

    cfg = parse_config({
        "name": "hub", "output_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"),
        "model": {"source": HUB_ID, "max_length": 32},
        "data": {"source": "synthetic", "languages": ["en"], "max_train_samples": 16, "max_eval_per_language": 8},
        "train": {"steps": 1, "batch_size": 8},
        "measure": {"backends": ["eager"], "batch_sizes": [2], "seq_lens": [16], "isolation": "none", "peaks": "off",
                    "min_rounds": 2, "min_iters": 2, "min_time_s": 0, "warmup_iters": 1},
    })
    records = run_sweep(cfg, Console(file=open("/dev/null", "w"))).records()
    assert {r["status"] for r in records} == {"ok"}
    assert {r["model"] for r in records} == {HUB_ID} and not any(r["random_weights"] for r in records)
    assert all("the model's own" in r["tokenizer"] for r in records)


def test_a_hub_id_missing_from_the_cache_says_so_in_one_line(offline_hub, tmp_path):
    with pytest.raises(BenchError, match=r"could not load model 'test-org/absent' from the hub: the hub is "
                                         r"unreachable .* and it is not in the local cache"):
        backbone_config(ModelSource.parse("test-org/absent"))


def test_weights_that_do_not_fit_the_config_are_refused(hub_cache, monkeypatch, tmp_path):
    root, _ = hub_cache
    broken = tmp_path / "cache"
    shutil.copytree(root, broken)
    snapshot = broken / "models--test-org--xglm-tiny" / "snapshots" / COMMIT
    state = torch.load(snapshot / "pytorch_model.bin", weights_only=True)
    del state["model.layers.1.fc2.weight"]
    torch.save(state, snapshot / "pytorch_model.bin")
    _use_cache(monkeypatch, broken)
    with pytest.raises(BenchError, match=r"its weights do not fit its config.json \(missing model\.layers\.1\.fc2"
                                         r"\.weight|missing layers\.1\.fc2\.weight"):
        load_backbone(ModelSource.parse(HUB_ID))
