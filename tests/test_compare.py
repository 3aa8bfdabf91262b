"""`bench compare`: the join, ratio and interval math on a run pair with a known ratio (cpu-dense-x1.25 is
cpu-dense with every latency exactly 1.25 times longer), the regression gate, and what cannot be joined."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.measure.stats import ratio_interval
from reports.compare import compare_runs, regressions, unclear
from reports.compare_view import comparison_views
from reports.load import load_run

RUNS = Path(__file__).parent / "fixtures" / "recorded"
BASE, SLOWER = RUNS / "cpu-dense", RUNS / "cpu-dense-x1.25"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _invoke(*args: str):
    return CliRunner().invoke(app, ["compare", *map(str, args)])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def _write(path: Path, records: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_known_ratio_and_conservative_interval():
    comparison = compare_runs([load_run(BASE), load_run(SLOWER)])
    latency = comparison.by_scenario("latency")
    assert {row.key[2] for row in latency} == {"eager", "compile", "onnxruntime"}
    for row in latency:
        a = row.records[0]
        (ratio,) = row.ratios
        assert ratio.value == pytest.approx(1.25, abs=1e-12)
        assert ratio.method == "ci bounds"
        # B's CI is A's times 1.25, so the end-to-end interval is 1.25 x [A_low / A_high, A_high / A_low].
        assert ratio.low == pytest.approx(1.25 * a["latency_ms_ci95_low"] / a["latency_ms_ci95_high"])
        assert ratio.high == pytest.approx(1.25 * a["latency_ms_ci95_high"] / a["latency_ms_ci95_low"])
    throughput = comparison.by_scenario("throughput")
    assert [r.ratios[0].value for r in throughput] == pytest.approx([0.8] * 3)
    assert [r.ratios[0].value for r in comparison.by_scenario("memory")] == pytest.approx([1.0] * 3)
    assert comparison.missing == []


def test_only_statistically_clear_slowdowns_count():
    comparison = compare_runs([load_run(BASE), load_run(SLOWER)])
    # These recorded runs carry no latency_samples_ms: their ratios' intervals are the records' own 95 % intervals
    # divided end to end, which cover only 0.95 ** 2 = 90.25 % for sure, below the gate's 95 %: shown, never failed on.
    assert all(ratio.level == pytest.approx(0.9025) and not ratio.gates
               for row in comparison.by_scenario("latency") for ratio in row.ratios)
    assert regressions(comparison, 10) == [] and unclear(comparison, 10) == 3
    assert regressions(comparison, 30) == [] and unclear(comparison, 30) == 0
    assert regressions(comparison, 0) == [] and unclear(comparison, 0) == 3


def _with_samples(path: Path, out: Path, factor: float = 1.0) -> Path:
    """The recorded run with latency_samples_ms put in (the fixtures predate them): 60 samples around each p50 of the
    base run, spread +-20 % on eager and +-1 % elsewhere, times `factor`; the p50 stays the record's."""
    base = {(r["backend"], r["scenario"]): r for r in _records(BASE)}
    records = []
    for r in _records(path):
        if r["scenario"] == "latency":
            spread = 0.2 if r["backend"] == "eager" else 0.01
            p50 = base[(r["backend"], "latency")]["latency_ms_p50"]
            r = dict(r, latency_samples_ms=[factor * p50 * (1 + spread * ((i % 7) / 3 - 1)) for i in range(60)])
        records.append(r)
    return _write(out, records)


def test_fail_on_regression_10_fails_with_one_line_per_regression(tmp_path):
    base, slower = _with_samples(BASE, tmp_path / "a"), _with_samples(SLOWER, tmp_path / "b", 1.25)
    result = _invoke(base, slower, "--fail-on-regression", "10")
    assert result.exit_code == 1, result.output
    lines = [line for line in ANSI.sub("", result.stderr).splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith("regression: dense-ft xnli ") for line in lines)
    assert "compile fp32 cpu 8x128: p50 226.09 ms" in lines[0] and "1.250x (" in lines[0]
    assert "% interval 1.2" in lines[0] and "order statistics)" in lines[0]
    assert "onnxruntime" in lines[1] and "beyond +10%" in lines[1]
    out = " ".join(ANSI.sub("", result.stdout).split())
    assert "2 clear latency regression(s) beyond +10% (3 ratios compared; 1 beyond +10% but not clear)" in out
    assert "1.250x !" in out


def test_fail_on_regression_30_passes_and_no_flag_never_fails():
    result = _invoke(BASE, SLOWER, "--fail-on-regression", "30")
    assert result.exit_code == 0, result.output
    assert "no latency regression beyond +30% is statistically clear" in ANSI.sub("", result.stdout)
    assert _invoke(BASE, SLOWER).exit_code == 0


def test_side_by_side_output_names_both_runs_and_their_hardware():
    result = _invoke(BASE, SLOWER)
    text = ANSI.sub("", result.stdout)
    for needle in ("20261120-233917-default", "20261120-235500-default", "Intel(R) Xeon(R)", "231.81", "289.76",
                   "1.250x", "1.097–1.425", "B/A", "B-A pts", "+0.00"):
        assert needle in text, needle
    assert "different hardware" not in text
    assert max(len(line) for line in text.splitlines()) <= 160


def test_order_statistic_interval_from_raw_samples(tmp_path):
    samples = [10.0 + 0.01 * (i % 7) for i in range(200)]
    base = {"schema_version": 1, "status": "ok", "scenario": "latency", "variant": "v", "task": "xnli",
            "backend": "eager", "dtype": "fp32", "device": "cuda:0", "batch_size": 8, "seq_len": 128}
    a = _write(tmp_path / "a", [base | {"latency_ms_p50": 10.03, "latency_samples_ms": samples}])
    b = _write(tmp_path / "b", [base | {"device": "cuda", "latency_ms_p50": 12.5375,
                                        "latency_samples_ms": [s * 1.25 for s in samples]}])
    (row,) = compare_runs([load_run(a), load_run(b)]).rows  # cuda:0 and cuda join: same device kind
    expected = ratio_interval([s * 1.25 for s in samples], samples)
    ratio = row.ratios[0]
    assert (ratio.value, ratio.low, ratio.high, ratio.level) == pytest.approx(expected)
    assert ratio.method == "order statistics" and ratio.low > 1.2 and ratio.level >= 0.95
    assert ratio.mde_pct is not None and ratio.mde_pct < 1.0  # these samples barely spread
    assert _invoke(a, b, "--fail-on-regression", "20").exit_code == 1


def test_missing_counterparts_are_listed_not_crashed_on(tmp_path):
    records = _records(SLOWER)
    kept = [r for r in records if r["backend"] != "onnxruntime"]
    failed = [dict(r, status="failed", error="prepare: boom") for r in records if r["backend"] == "onnxruntime"
              and r["scenario"] != "latency"]
    partial = _write(tmp_path / "partial", kept + failed)
    comparison = compare_runs([load_run(BASE), load_run(partial)])
    states = {(m.key[2], m.key[-1]): m.states for m in comparison.missing}
    assert states[("onnxruntime", "latency")] == ["ok", "absent"]
    assert states[("onnxruntime", "accuracy")] == ["ok", "failed"]
    assert {row.key[2] for row in comparison.by_scenario("latency")} == {"eager", "compile"}
    missing = next(v for v in comparison_views(comparison) if v.key == "compare-missing")
    assert len(missing.rows) == 4
    result = _invoke(BASE, partial, "--fail-on-regression", "10")
    assert result.exit_code == 0 and "Cells without a counterpart" in result.stdout  # no interval of 95 %: not gated
    assert "2 without an interval of 95% coverage, not gated" in " ".join(ANSI.sub("", result.stdout).split())


def test_runs_on_different_machines_share_no_cells_and_say_so():
    result = _invoke(BASE, RUNS / "synthetic-study", "--fail-on-regression", "10")
    assert result.exit_code == 2, result.output  # a gate that compared nothing does not pass
    text = " ".join(ANSI.sub("", result.stdout).split())
    assert "different hardware" in text and "NVIDIA H100 80GB HBM3" in text
    assert "Cells without a counterpart in every run" in text and "0 cells compared" in text
    (line,) = ANSI.sub("", result.stderr).splitlines()
    assert line.startswith("error: the runs share no measured cell")


def test_three_runs_are_each_compared_to_the_first(tmp_path):
    third = shutil.copytree(SLOWER, tmp_path / "third")
    views = comparison_views(compare_runs([load_run(BASE), load_run(SLOWER), load_run(third)]))
    latency = next(v for v in views if v.key == "compare-latency")
    assert [c.name for c in latency.columns][-7:] == ["A", "B", "C", "B/A", "C/A", "B/A MDE", "C/A MDE"]


def test_unknown_future_schema_is_refused_in_one_line(tmp_path):
    future = _write(tmp_path / "future", [dict(r, schema_version=3) for r in _records(SLOWER)])
    result = _invoke(BASE, future)
    assert result.exit_code == 2
    lines = [line for line in ANSI.sub("", result.output).splitlines() if line.strip()]
    assert len(lines) == 1 and "schema_version 3 is newer than this xglm-bench reads (known: 1)" in lines[0]


def test_compare_needs_two_runs():
    result = _invoke(BASE)
    assert result.exit_code == 2 and "compare needs two or more run directories, got 1" in ANSI.sub("", result.output)


def test_runs_with_different_data_name_every_difference_and_accuracy_is_not_compared(tmp_path):
    """The issue's case: dense-ft on synthetic rows, 8 steps, en/es/sw/ur against real rows, 32 steps, en/fr/zh."""
    import tomllib

    import tomli_w

    other = Path(shutil.copytree(BASE, tmp_path / "other"))
    config = tomllib.loads((other / "config.toml").read_text())
    config["data"] |= {"source": "synthetic", "languages": ["en", "fr", "zh"]}
    config["train"]["steps"] = 8
    (other / "config.toml").write_text(tomli_w.dumps(config))
    records = _records(other)
    for record in records:
        record["data_source"] = "synthetic"
        record["train_steps"] = 8
        if record.get("accuracy") is not None:
            record["accuracy"] += 0.0286
    _write(other, records)
    result = _invoke(BASE, other)
    text = ANSI.sub("", result.stdout)
    assert "What differs between the runs" in text
    for needle in ("data source", "synthetic", "languages", "en, fr, zh", "training steps (as run)"):
        assert needle in text, needle
    assert "n/c" in text and "not comparable, the runs differ in data, languages" in text
    assert "+2.86" not in text  # the accuracy delta is not shown as a change
    view = next(v for v in comparison_views(compare_runs([load_run(BASE), load_run(other)]))
                if v.key == "compare-differences")
    rows = {row[0].text: [cell.text for cell in row[2:]] for row in view.rows}
    assert rows["data source"] == ["auto", "synthetic"] and rows["data source (as loaded)"] == ["local", "synthetic"]
    assert rows["languages"] == ["en, es, sw, ur", "en, fr, zh"] and rows["training steps (as run)"] == ["64", "8"]


def test_identical_recipes_list_no_difference():
    views = comparison_views(compare_runs([load_run(BASE), load_run(SLOWER)]))
    assert all(v.key != "compare-differences" for v in views)
