"""Artifacts: saved as safetensors + JSON, reloaded to identical logits; the cache is keyed by the recipe."""

from __future__ import annotations

import json

import torch

from bench.variants import artifacts
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone
from bench.data.tokenization import trained_tokenizer
from bench.variants.dense import classifier_architecture

RECIPE = {"variant": "dense-ft", "task": "xnli", "method": "dense", "train": {"lr": 1e-4}, "seed": 0}


def test_recipe_key_is_canonical():
    shuffled = dict(reversed(list(RECIPE.items())))
    assert artifacts.recipe_key(RECIPE) == artifacts.recipe_key(shuffled)
    assert artifacts.recipe_key(RECIPE) != artifacts.recipe_key({**RECIPE, "seed": 1})


def test_save_then_load_gives_identical_logits(tmp_path):
    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=1), num_labels=3).eval()
    tok, _ = trained_tokenizer(["a b c", "d e f"] * 10, vocab_size=40, cache_dir=tmp_path)
    meta = {"architecture": classifier_architecture(model), "params_trainable": 1, "extra": {}, "train": {}}
    assert artifacts.lookup(tmp_path, RECIPE) is None
    saved = artifacts.save(tmp_path, RECIPE, model, tok, meta)
    found = artifacts.lookup(tmp_path, RECIPE)
    assert found is not None and found.path == saved.path and found.key == artifacts.recipe_key(RECIPE)
    ids = torch.randint(4, 1024, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(found.load_model()(ids, mask), model(ids, mask))
    assert found.load_tokenizer()("a b")["input_ids"] == tok("a b")["input_ids"]
    on_disk = json.loads((saved.path / "meta.json").read_text())
    assert on_disk["recipe"] == RECIPE and found.disk_bytes() > 0


def test_a_half_written_artifact_is_not_found(tmp_path):
    path = artifacts.artifact_path(tmp_path, RECIPE)
    path.parent.mkdir(parents=True)
    (path.parent / f".{path.name}.tmp-123").mkdir()  # what an interrupted save leaves
    assert artifacts.lookup(tmp_path, RECIPE) is None
