"""The default run's path end to end on the CPU: configs/default.toml (what `bench run` with no argument runs), read
through the real config loading with overrides that shrink it (random:tiny, generated rows, a few steps, a tiny shape,
two rounds), every variant it names, interleaved, then `bench report`: the records, the plots the default promises and
the Findings block at the end of the terminal output and at the head of report.md.

The compile backend and process isolation are left out here: cold compilation of five variants of even the tiny model
costs minutes on two cores, and a process per cell tens of seconds; the session's tiny_sweep (tests/test_sweep.py) runs
both on the same path."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bench.cli import app
from helpers import plain
from bench.config import load_config, packaged_config, read_toml
from bench.run.sweep import run_sweep

PLOTS = ("latency_vs_sparsity", "pareto", "prefix_overhead", "accuracy_vs_sparsity")


@pytest.fixture(scope="module")
def default_run(generated_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("default-run")
    shrink = {
        "output_dir": str(root / "runs"), "cache_dir": str(root / "cache"),
        "model.source": "random:tiny", "model.max_length": 32,
        "data.source": "local", "data.data_dir": str(generated_data_dir), "data.languages": ["en", "sw"],
        "data.max_train_samples": 32, "data.max_eval_per_language": 8,
        "train.steps": 2, "method_train.prompt.steps": 2, "measure.backends": ["eager", "onnxruntime"],
        "measure.batch_sizes": [2], "measure.seq_lens": [16], "measure.throughput_batch_size": 8,
        "measure.min_rounds": 3, "measure.min_iters": 3, "measure.min_time_s": 0.0, "measure.peaks": "off",
        "measure.isolation": "none",  # cells in this process: the process path is tiny_sweep's (test_sweep.py)
    }
    cfg = load_config(packaged_config("default"), shrink)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("BENCH_CACHE_DIR", str(root / "env-cache"))
        mp.delenv("BENCH_DATA_DIR", raising=False)
        store = run_sweep(cfg, Console(file=io.StringIO(), width=200))
        report = CliRunner().invoke(app, ["report", str(store.path)], terminal_width=200)
    return cfg, store, report


def test_the_default_config_is_the_study_in_miniature():
    cfg = load_config(packaged_config("default"))
    assert {(v.method, getattr(v, "sparsity", None), getattr(v, "prompt_length", None)) for v in cfg.variants} == {
        ("dense", None, None), ("prompt", None, 16), ("unstructured", 0.5, None), ("semi24", None, None),
        ("structured", 0.5, None)}
    assert cfg.measure.backends == ["eager", "compile", "onnxruntime"] and cfg.measure.min_rounds > 1
    assert cfg.model.source.startswith("random:") and cfg.measure.device == "cpu"
    # Its 5-minute budget: compile builds one dynamic graph per cell (measured: compile_graphs 1, no recompile),
    # and the latency shape fits the model's positions.
    assert cfg.backend.compile.dynamic is True and max(cfg.measure.seq_lens) <= cfg.model.max_length


def test_every_variant_is_measured_interleaved_with_paired_ratios(default_run):
    cfg, store, _ = default_run
    records = store.records()
    assert store.manifest()["status"] == "complete"
    # Each masked variant is measured as its control and through auto (the default kernel): `<name>@auto`.
    cells = {cell.name for v in cfg.variants for cell in v.cells()}
    assert {v["name"] for v in read_toml(packaged_config("default"))["variants"]} < cells
    assert {r["variant"] for r in records} == cells and {"unstructured-50@auto", "semi24@auto"} < cells
    latency = [r for r in records if r["scenario"] == "latency"]
    assert len(latency) == len(cells) * 2 and all(r["status"] == "ok" for r in latency)
    assert {r["sparse_kernel"] for r in latency if r["variant"].endswith("@auto")} == {"auto"}
    assert {r["measure_scheme"] for r in latency} == {"interleaved rounds"}
    for r in latency:
        if r["method"] == "dense" and not r.get("quantization"):
            assert r["speedup_vs_dense"] == 1.0
        else:
            assert r["speedup_vs_dense_ci95_low"] <= r["speedup_vs_dense"] <= r["speedup_vs_dense_ci95_high"]
    pt = [r for r in latency if r["method"] == "prompt"]
    assert all(r["prefix_overhead_vs_dense"] == pytest.approx(1 / r["speedup_vs_dense"]) for r in pt)
    assert {r["speedup_mechanism"] for r in latency if r["method"] == "structured"} == {"smaller_gemm"}
    assert {r["speedup_mechanism"] for r in latency if r["method"] in ("unstructured", "semi24")
            and r["sparse_kernel"] == "dense"} == {"none"}
    assert {r["scenario"] for r in records} == {"latency", "throughput", "memory", "accuracy"}
    # dense-ft in int8 too: paired with its fp32 cell on each backend, by the library that serves that backend
    int8 = {r["backend"]: r for r in latency if r["variant"] == "dense-ft@int8"}
    assert {b: r["quant_library"] for b, r in int8.items()} == {"eager": "torch.ao", "onnxruntime": "onnxruntime.quantization"}
    assert all(r["quant_control"] == "dense-ft" and r["speedup_vs_control"] > 0 for r in int8.values())


def test_the_default_draws_its_plots(default_run):
    _, store, _ = default_run
    for name in PLOTS:
        png = store.path / "plots" / f"{name}.png"
        assert png.is_file() and png.stat().st_size > 10_000, name


def test_findings_end_the_report_and_head_report_md(default_run):
    _, store, report = default_run
    assert report.exit_code == 0, report.output
    text = plain(report.output)
    block = text[text.rindex("Findings"):]
    assert text.rstrip().endswith("╯") and "report:" not in block  # the panel is the last thing printed
    block = " ".join(block.replace("│", " ").split())
    for phrase in ("structured 50 %", "unstructured 50 %", "2:4 semi-structured 50 %", "16-token prefix (P-tuning v2)",
                   "of the parameters", "int8 on dense-ft", "Accuracy is meaningless here: the backbone has random weights"):
        assert phrase in block, phrase
    md = (store.path / "report.md").read_text(encoding="utf-8")
    assert md.index("## Findings") < md.index("\n## ", md.index("## Findings") + 1) < md.index("## Plots")
    assert md.index("## Findings") == md.index("\n## ") + 1  # the first section
    assert '<h2 id="findings">' in (store.path / "report.html").read_text(encoding="utf-8")
