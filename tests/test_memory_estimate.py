"""The memory estimate (bench.run.memory_estimate): exact parameter counts, the largest batch that fits, and the
estimate within 2x of the measured peak on random:tiny (every backend, from the session's sweep) and random:small
(eager and ONNX Runtime, batch 1 and 8)."""

from __future__ import annotations

import json

import pytest
import tomli_w
import torch
from typer.testing import CliRunner
from transformers import XGLMModel

from bench.cli import app
from bench.model.source import PRESETS, preset_config
from bench.run import memory_estimate as me
from bench.run.store import RunStore
from tinydata import tiny_sweep as sweep_config


@pytest.mark.parametrize("preset", list(PRESETS))
def test_parameter_count_is_xglm_counted_on_the_meta_device(preset):
    config = preset_config(preset)
    with torch.device("meta"):
        model = XGLMModel(config)
    counted = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    assert me.parameter_count(config) == counted + 3 * (config.d_model + 1)


def test_the_largest_batch_that_fits_fits_and_one_more_does_not():
    shape = me.Shape.of(preset_config("small"))
    free = 8 * me.GiB
    est = me.estimate(shape, [(10**6, 128)], "fp32", "eager", runtime=300 * me.MB)
    fits = est.largest_batch(free)
    assert fits > 0
    at = lambda b: me.estimate(shape, [(b, 128)], "fp32", "eager", runtime=300 * me.MB).total  # noqa: E731
    assert at(fits) <= me.HEADROOM * free < at(fits + 1)


def test_a_prefix_and_ort_cost_more_and_half_precision_less():
    shape = me.Shape.of(preset_config("small"))
    plain = me.estimate(shape, [(8, 128)], "fp32", "eager", runtime=0).total
    assert me.estimate(shape, [(8, 128)], "fp32", "eager", runtime=0, prefix=16).total > plain
    assert me.estimate(shape, [(8, 128)], "fp32", "onnxruntime", runtime=0).total > plain
    assert me.estimate(shape, [(8, 128)], "bf16", "eager", runtime=0).total == pytest.approx(plain / 2, rel=1e-6)


def test_oom_is_recognised_and_worded():
    assert me.is_oom(MemoryError()) and not me.is_oom(ValueError("x"))
    assert me.oom_message(8, 128, 1.5 * me.GiB, 2 * me.GiB) == "out of memory at batch 8 x 128 (estimated 1.50 GiB, free 2.00 GiB)"


def _assert_within_2x(memory: list[dict]) -> None:
    for record in memory:
        ratio = record["estimated_peak_memory_mb"] / record["peak_memory_mb"]
        assert 0.5 <= ratio <= 2.0, json.dumps({k: record[k] for k in ("backend", "batch_size", "peak_memory_mb",
                                                                       "estimated_peak_memory_mb")})


def test_the_estimate_is_within_2x_of_the_measured_peak_on_tiny(tiny_sweep):
    """Every backend, compile's fixed cost included, read from the session's sweep (random:tiny, cell processes)."""
    memory = [r for r in tiny_sweep.records if r["scenario"] == "memory"]
    assert {r["backend"] for r in memory} == {"eager", "compile", "onnxruntime"}
    _assert_within_2x(memory)


@pytest.mark.slow
def test_the_estimate_is_within_2x_of_the_measured_peak_on_small(tmp_path, bench_env, generated_data_dir):
    """From batch 1 to 8 on random:small (compile is left to tiny: its compilation here took half a minute)."""
    config = sweep_config(tmp_path / "runs", tmp_path / "cache", generated_data_dir, model={"source": "random:small"},
                        measure={"backends": ["eager", "onnxruntime"], "scenarios": ["memory", "throughput"],
                                 "batch_sizes": [1, 8], "seq_lens": [32], "isolation": "process"})
    path = tmp_path / "sweep.toml"
    path.write_text(tomli_w.dumps(config))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    memory = [r for r in RunStore(run).records() if r["scenario"] == "memory"]
    assert len(memory) == 4
    _assert_within_2x(memory)
