"""Configs round-trip through TOML; bad values name the field, what is allowed and what was given."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.config import SweepConfig, load_config, packaged_config, parse_config
from bench.errors import BenchError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert load_config(again) == cfg


def test_default_config_is_packaged_and_cpu_only():
    cfg = load_config(packaged_config("default"))
    assert cfg.measure.device == "cpu" and cfg.model.source == "random:small"
    assert set(cfg.measure.backends) == {"eager", "compile", "onnxruntime"}


def test_overrides_apply_before_validation(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nsource = "random:tiny"\n')
    cfg = load_config(path, {"measure.device": "cpu", "measure.backends": ["eager"], "model.source": "random:small"})
    assert cfg.model.source == "random:small" and cfg.measure.backends == ["eager"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"measure": {"device": "tpu"}}, ["field 'measure.device'", "cpu|cuda|cuda:\\d+", "got 'tpu'"]),
        ({"measure": {"backends": ["eager", "tensorrt"]}}, ["measure.backends[1]", "got 'tensorrt'"]),
        ({"measure": {"batch_sizes": [0]}}, ["measure.batch_sizes", ">= 1"]),
        ({"train": {"lr": -1}}, ["train.lr", "greater than 0"]),
        ({"variants": [{"name": "x", "method": "prunning"}]}, ["unknown method 'prunning'", "available: dense"]),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, ["unique", "a"]),
        ({"variants": [{"name": "a", "train": {"lr": 0}}]}, ["lr"]),
        ({"modle": {}}, ["field 'modle'", "not permitted", "did you mean 'model'"]),
        ({"data": {"eval_split": "validation"}}, ["data.eval_split", "'test' or 'dev'"]),
    ],
)
def test_bad_values_are_reported_with_field_allowed_and_given(data, expected):
    with pytest.raises(BenchError) as info:
        parse_config(data, origin="sweep.toml")
    message = str(info.value)
    assert message.startswith("sweep.toml: ") and "\n" not in message
    for part in expected:
        assert part in message


def test_variant_train_overrides_merge_over_the_defaults():
    cfg = SweepConfig.model_validate({"train": {"lr": 1e-3, "batch_size": 4}, "variants": [{"name": "v", "train": {"lr": 5e-3}}]})
    merged = cfg.train_for(cfg.variants[0])
    assert merged.lr == 5e-3 and merged.batch_size == 4


def test_toml_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nsource = 1")
    with pytest.raises(BenchError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(BenchError, match="not found"):
        load_config(tmp_path / "missing.toml")
    assert tomllib.loads(SweepConfig().to_toml())["measure"]["device"] == "cpu"


def test_repeated_measure_entries_are_rejected():
    with pytest.raises(BenchError, match="repeated entries: eager"):
        parse_config({"measure": {"backends": ["eager", "eager"]}})
