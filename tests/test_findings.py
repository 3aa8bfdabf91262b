"""The Findings block from hand-built records: the ratios and CIs it quotes, its wording when a CI includes 1.0, the
masked-dense control outside 1.0, the prefix's cost and trainable share, when accuracy is called meaningless, and
where the block appears (report.md, report.html)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.files import html_page, markdown
from reports.findings import findings
from reports.load import Run

SHAPE = {"task": "xnli", "dtype": "fp32", "device": "cpu", "batch_size": 8, "seq_len": 128}


def latency(variant: str, backend: str, method: str, speedup=None, ci=None, **extra) -> dict:
    record = {**SHAPE, "status": "ok", "scenario": "latency", "variant": variant, "backend": backend,
              "method": method, "latency_ms_p50": 100.0 / (speedup or 1.0), "speedup_vs_dense": speedup,
              "rounds": 8, "reference_drift": 1.01, "prompt_length": 0, "sparsity": 0.0, **extra}
    if ci:
        record |= {"speedup_vs_dense_ci95_low": ci[0], "speedup_vs_dense_ci95_high": ci[1]}
    return record


def accuracy(variant: str, value: float, random_weights=False, data_source="local", n=400) -> dict:
    return {**SHAPE, "batch_size": None, "seq_len": None, "status": "ok", "scenario": "accuracy", "variant": variant,
            "backend": "eager", "method": "dense", "accuracy": value, "accuracy_by_language": {"en": value},
            "random_weights": random_weights, "data_source": data_source, "eval_samples": n}


def study(control_onnx=(0.97, 1.03)) -> list[dict]:
    out = []
    for backend in ("eager", "onnxruntime"):
        out.append(latency("dense-ft", backend, "dense", 1.0, speedup_mechanism="none"))
        out.append(latency("structured-50", backend, "structured", 2.0, (1.9, 2.1), sparsity=0.5, speedup_ideal=2.0,
                           speedup_mechanism="smaller_gemm",
                           speedup_mechanism_reason="heads and FFN channels removed: smaller dense GEMMs on every backend"))
        low, high = (0.98, 1.02) if backend == "eager" else control_onnx
        out.append(latency("unstructured-50", backend, "unstructured", (low + high) / 2, (low, high), sparsity=0.5,
                           speedup_ideal=1.0, speedup_mechanism="none",
                           speedup_mechanism_reason=f"unstructured zeros are multiplied like any weight: {backend} on cpu "
                                                    "runs dense GEMMs; a masked-dense control"))
        out.append(latency("pt-16", backend, "prompt", 1 / 1.02, (1 / 1.03, 1 / 1.01), prompt_length=16,
                           trainable_share=0.004, prefix_overhead_vs_dense=1.02, prefix_overhead_vs_dense_ci95_low=1.01,
                           prefix_overhead_vs_dense_ci95_high=1.03))
    return out


def test_structured_speedup_with_its_ci_ideal_and_mechanism():
    (line,) = [f for f in findings(study()) if f.startswith("structured 50 %")]
    assert line == ("structured 50 % runs faster than dense: 2.00x (1.90–2.10) on eager, 2.00x (1.90–2.10) on "
                    "onnxruntime (ideal 2.00x); heads and FFN channels removed: smaller dense GEMMs on every backend.")


def test_a_ci_that_includes_one_says_no_measurable_difference_and_why():
    (line,) = [f for f in findings(study()) if f.startswith("unstructured 50 %")]
    assert "gives no measurable difference from dense: 1.00x (0.98–1.02) on eager" in line
    assert "no sparse kernel serves it on these backends (unstructured zeros are multiplied like any weight)" in line
    assert "control" not in line and "faster" not in line


def test_a_masked_dense_control_outside_one_is_reported_as_a_bias_never_as_an_effect():
    """Issue 30, item 6: the control's figure is said once, as a bias, never also as 'runs faster/slower'."""
    (line,) = [f for f in findings(study(control_onnx=(0.85, 0.95))) if f.startswith("unstructured 50 %")]
    assert line.startswith("unstructured 50 % gives no measurable difference from dense: 1.00x (0.98–1.02) on eager "
                           "(ideal 1.00x)")
    assert "As the masked-dense control it should give 1.0x, but gives 0.90x (0.85–0.95) on onnxruntime" in line
    assert "faster" not in line and "slower" not in line and line.count("0.90x") == 1


def _paired(records: list[dict], p: dict[str, float], floor: float | None = None, rounds: int = 10) -> list[dict]:
    """The records as a run writes them now: sign-test p-values (by variant, default 0.5), levels, a floor."""
    for r in records:
        r["rounds"] = rounds
        if r["method"] != "dense":
            r |= {"speedup_vs_dense_p_value": p.get(r["variant"], 0.5), "speedup_vs_dense_ci_level": 0.9773}
        if floor is not None:
            r |= {"resolution_pct": floor, "aa_backend": "eager", "aa_ratio": 1.002, "aa_ratio_ci95_low": 1 - floor / 100,
                  "aa_ratio_ci95_high": 1 + floor / 100, "aa_ratio_ci_level": 0.9773, "aa_significant": False}
    return records


def test_holm_keeps_a_marginal_interval_from_being_claimed():
    """The control's interval excludes 1.0 on onnxruntime, but with p = 0.02 among 6 tests Holm does not reject it
    (0.02 > 0.05 / 4 at its step): no bias is claimed; structured (p 0.002) still is."""
    records = _paired(study(control_onnx=(0.85, 0.95)), {"structured-50": 0.002, "unstructured-50": 0.02})
    lines = findings(records)
    (control,) = [f for f in lines if f.startswith("unstructured 50 %")]
    assert "differs from dense by no more than this run can claim (its floor, or Holm): 0.90x (0.85–0.95) on onnxruntime" in control
    assert "bias" not in control
    assert any(f.startswith("structured 50 % runs faster than dense: 2.00x") for f in lines)
    assert "Holm's procedure over the 6 paired sign tests keeps the family-wise error at 5%" in lines[0]
    assert "97.7% each, marginal" in lines[0]


def test_an_effect_within_the_floor_is_never_claimed_and_the_floor_is_stated():
    records = _paired(study(), {"structured-50": 0.002, "pt-16": 0.002}, floor=3.0)
    lines = findings(records)
    assert lines[1].startswith("This run resolves about ±3.0 %: its A/A twin (the dense reference again, in a worker of "
                               "its own) gave 1.002x (0.97–1.03, 97.7%) on eager")
    (prefix,) = [f for f in lines if "prefix" in f]
    assert "has a cost this run cannot claim (its floor, or Holm): +2 %" in prefix  # +2 % is inside the ±3 % floor
    assert any(f.startswith("structured 50 % runs faster") for f in lines)
    assert not any(f.startswith("Flag:") for f in lines)


def test_a_significant_twin_flags_the_run():
    records = _paired(study(), {}, floor=2.0)
    for r in records:
        r |= {"aa_ratio": 0.96, "aa_ratio_ci95_low": 0.94, "aa_ratio_ci95_high": 0.98, "aa_significant": True}
    (flag,) = [f for f in findings(records) if f.startswith("Flag:")]
    assert "the A/A twin itself differs from 1.0 (0.960x (0.94–0.98, 97.7%) on eager)" in flag


def test_the_prefix_cost_at_its_shape_and_its_trainable_share():
    (line,) = [f for f in findings(study()) if "prefix" in f]
    assert line == ("a 16-token prefix (P-tuning v2) at 8×128 costs: +2 % (+1 % to +3 %) on eager, +2 % (+1 % to +3 %) on "
                    "onnxruntime and trains 0.40 % of the parameters.")


def test_a_ratio_without_an_interval_is_not_claimed():
    records = [latency("dense-ft", "eager", "dense", 1.0), latency("structured-50", "eager", "structured", 1.9,
                                                                    sparsity=0.5, speedup_mechanism="smaller_gemm")]
    (line,) = [f for f in findings(records) if f.startswith("structured")]
    assert line == "structured 50 %: no paired speedup vs dense was measured."


def test_context_line_names_the_slice_and_the_rounds():
    assert findings(study())[0] == ("xnli, fp32 on cpu, batch 8 × 128 tokens; ratios vs dense-ft on the same backend, "
                                    "paired over 8 interleaved rounds; intervals 95 %, each marginal; a claim rests on "
                                    "its own interval (no p-values in these records):")


def test_backends_vs_eager_only_where_the_ci_supports_it():
    records = study()
    for r in records:
        if r["variant"] == "dense-ft" and r["backend"] == "onnxruntime":
            r |= {"speedup_vs_eager": 0.8, "speedup_vs_eager_ci95_low": 0.75, "speedup_vs_eager_ci95_high": 0.85}
    assert "Backends vs eager, on dense-ft: onnxruntime 0.80x (0.75–0.85), slower." in findings(records)
    for r in records:
        if r["variant"] == "dense-ft" and r["backend"] == "onnxruntime":
            r["speedup_vs_eager_ci95_high"] = 1.004
    assert "Backends vs eager, on dense-ft: onnxruntime 0.80x (0.75–1.00), no measurable difference." in findings(records)
    for r in records:
        if r["variant"] == "dense-ft" and r["backend"] == "onnxruntime":
            r["speedup_vs_eager_ci95_high"] = 0.998  # excludes 1.0: printed so that it shows
    assert "Backends vs eager, on dense-ft: onnxruntime 0.80x (0.750–0.998), slower." in findings(records)


@pytest.mark.parametrize(("random_weights", "source", "why"), [
    (True, "local", "the backbone has random weights"),
    (False, "synthetic", "the data are synthetic"),
    (True, "synthetic", "the backbone has random weights and the data are synthetic"),
])
def test_accuracy_is_called_meaningless_with_random_weights_or_synthetic_data(random_weights, source, why):
    records = study() + [accuracy("dense-ft", 0.34, random_weights, source), accuracy("pt-16", 0.36, random_weights, source)]
    (line,) = [f for f in findings(records) if f.startswith("Accuracy")]
    assert line.startswith(f"Accuracy is meaningless here: {why};")


def test_real_accuracy_is_quoted_with_its_binomial_width():
    records = study() + [accuracy("dense-ft", 0.5, n=400), accuracy("pt-16", 0.45, n=400)]
    (line,) = [f for f in findings(records) if f.startswith("Accuracy")]
    # 1.96 * sqrt(0.25 / 400) = 4.9 %
    assert "dense-ft 50.0% ±4.9%" in line and "pt-16 45.0% ±4.9%" in line and "not measurable" in line


def test_drift_beyond_ten_percent_is_said():
    records = study()
    records[0]["reference_drift"] = 1.25
    assert any(f.startswith("The machine drifted: the reference ran 25 % slower") for f in findings(records))
    assert not any("drifted" in f for f in findings(study()))


def test_no_records_no_findings():
    assert findings([]) == []


def test_the_block_heads_report_md_and_html(tmp_path: Path):
    run = Run(tmp_path, study() + [accuracy("dense-ft", 0.34, True)], None, {"run_id": "r", "status": "complete"})
    text = markdown(run, [], [])
    assert text.index("## Findings") < text.index("## Plots")
    assert "- structured 50 % runs faster than dense: 2.00x (1.90–2.10) on eager" in text
    page = html_page(run, [], [])
    assert page.index('<h2 id="findings">Findings</h2>') < page.index('<h2 id="plots">')
    assert "<li>a 16-token prefix (P-tuning v2) at 8×128 costs: +2 %" in page


def test_each_kernel_gets_its_curve_and_break_even_and_its_control_says_so():
    records = [latency("dense-ft", "eager", "dense", 1.0, speedup_mechanism="none")]
    for sparsity, gain, ci in ((0.5, 0.55, (0.5, 0.6)), (0.8, 1.02, (0.97, 1.08)), (0.9, 1.7, (1.6, 1.8)),
                               (0.95, 2.4, (2.3, 2.5))):
        name = f"unstructured-{sparsity * 100:.0f}"
        records.append(latency(name, "eager", "unstructured", 1.0, (0.98, 1.02), sparsity=sparsity,
                               speedup_mechanism="none", speedup_mechanism_reason="zeros are multiplied: dense",
                               sparse_kernel="dense", kernel_control=name))  # as the sweep writes a control
        records.append(latency(f"{name}@csr", "eager", "unstructured", gain, ci, sparsity=sparsity,
                               sparse_kernel="csr", kernel_control=name, speedup_mechanism="sparse_kernel"))
    lines = findings(records)
    (curve,) = [line for line in lines if "through CSR" in line]
    assert curve.startswith("unstructured through CSR on eager (cpu): 0.55x (0.50–0.60) at 50 %")
    assert "2.40x (2.30–2.50) at 95 %" in curve
    assert curve.endswith("it beats dense from 90 % sparsity, not at 80 %.")  # 80 %: its interval holds 1.0
    controls = [line for line in lines if "masked-dense control of its kernel cells" in line]
    assert len(controls) == 4 and not [line for line in lines if "@csr" in line]  # kernel cells: in the curve only
    losing = [r | {"speedup_vs_dense": 0.8, "speedup_vs_dense_ci95_low": 0.7, "speedup_vs_dense_ci95_high": 0.9}
              if r.get("sparse_kernel") else r for r in records]
    (curve,) = [line for line in findings(losing) if "through CSR" in line]
    assert curve.endswith("it beats dense at none of these levels (up to 95 %).")
    # auto that served every linear dense (ONNX Runtime, or below break-even) claims nothing, however it reads.
    dense_auto = [r | {"sparse_kernel": "auto", "speedup_mechanism": "none"} if r.get("sparse_kernel") == "csr" else r
                  for r in records]
    (curve,) = [line for line in findings(dense_auto) if "through auto" in line]
    assert curve.startswith("unstructured through auto ran every linear dense here (cpu;")
    assert "1.70x (1.60–1.80) at 90 %" in curve and "on eager" in curve and "beats" not in curve
