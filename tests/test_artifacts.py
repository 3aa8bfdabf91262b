"""Artifacts: saved as safetensors + JSON, reloaded to identical logits; the cache is keyed by the recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


class _Interrupted(Exception):
    pass


class _TokenizerCutOff:
    """A tokenizer whose save is cut off after it wrote a file: the weights are on disk, meta.json is not."""

    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text("{")
        raise _Interrupted


def _tiny():
    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=1), num_labels=3).eval()
    return model, {"architecture": classifier_architecture(model), "params_trainable": 1, "extra": {}, "train": {}}


def test_an_interrupted_save_leaves_no_artifact_and_no_leftover(tmp_path):
    model, meta = _tiny()
    with pytest.raises(_Interrupted):
        artifacts.save(tmp_path, RECIPE, model, _TokenizerCutOff(), meta)
    assert list((tmp_path / "artifacts").iterdir()) == []  # nothing at the final path, nothing beside it
    assert artifacts.lookup(tmp_path, RECIPE) is None


def test_a_killed_save_leaves_only_a_leftover_that_is_never_found(tmp_path, monkeypatch):
    """kill -9 mid-save: no clean-up runs (rmtree does nothing here). The half-written files must sit under the
    temporary name, never at the artifact's path, and `bench cache verify` names them."""
    model, meta = _tiny()
    monkeypatch.setattr(artifacts.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(_Interrupted):
        artifacts.save(tmp_path, RECIPE, model, _TokenizerCutOff(), meta)
    monkeypatch.undo()
    path = artifacts.artifact_path(tmp_path, RECIPE)
    assert not path.exists()
    (leftover,) = (tmp_path / "artifacts").iterdir()
    assert (leftover / "model.safetensors").is_file() and not (leftover / "meta.json").exists()
    assert artifacts.lookup(tmp_path, RECIPE) is None
    assert artifacts.verify_cache(tmp_path) == [(leftover, "the leftover of an interrupted save")]


def test_a_complete_looking_leftover_is_not_found(tmp_path):
    """A save killed between its last write and its rename: every file, hashes that match, under the temporary
    name. lookup must not take it for the artifact, nor remove it (its writer may be about to rename it)."""
    model, meta = _tiny()
    tok, _ = trained_tokenizer(["a b c", "d e f"] * 10, vocab_size=40, cache_dir=tmp_path / "tokenizer")
    saved = artifacts.save(tmp_path, RECIPE, model, tok, meta)
    leftover = saved.path.parent / f".{saved.path.name}.tmp-123"
    saved.path.rename(leftover)
    assert artifacts.Artifact.open(leftover).problem() is None  # as complete as a finished one
    assert artifacts.lookup(tmp_path, RECIPE) is None
    assert leftover.is_dir()
    assert artifacts.verify_cache(tmp_path) == [(leftover, "the leftover of an interrupted save")]
