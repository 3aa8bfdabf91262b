"""Why one backend is faster than another: the GEMM library behind each one's linears, with the GFLOP/s each
library reached in this machine's calibration (bench calibrate).

The backend ranking flips with the CPU vendor (ONNX Runtime 2.0x faster than eager on an AMD EPYC, 0.91x on an
Intel Xeon) because the libraries differ: eager's fp32 linears go to torch's BLAS (MKL), ONNX Runtime's to MLAS.
A sentence names the cause only where the records carry it (`linear_library`, `library_peak_tflops`) and the
paired ratio vs eager excludes 1.0; where both ran the same library the gap lies outside the GEMMs.
"""

from __future__ import annotations

from reports.cells import Record, Speedup


def gap_sentences(rows: list[Record], rule=None) -> list[str]:
    """One sentence per backend whose ratio vs eager (the same variant, paired) is a claim, with its cause. rule: the
    Findings' claim rule (reports.claims.ClaimRule: the run's floor and Holm); without one, a CI that excludes 1.0."""
    eager = next((r for r in rows if r.get("backend") == "eager"), None)
    if eager is None or not eager.get("linear_library"):
        return []
    out = []
    for row in rows:
        ratio = _ratio(row)
        if row is eager or ratio is None or not row.get("linear_library"):
            continue
        claimed = (rule.verdict(row, "speedup_vs_eager", (ratio.value, ratio.low, ratio.high)).kind in ("faster", "slower")
                   if rule is not None and ratio.low is not None else ratio.excludes_one)
        if not claimed:
            continue
        out.append(gap_sentence(row, eager, ratio))
    return out


def gap_sentence(row: Record, eager: Record, ratio: Speedup) -> str:
    faster = ratio.value > 1
    head = (f"{row['backend']} {ratio.value if faster else 1 / ratio.value:.2f}x "
            f"{'faster' if faster else 'slower'} than eager")
    own, theirs = eager["linear_library"], row["linear_library"]
    rates = {own: _gflops(eager), theirs: _gflops(row)}
    if own == theirs:
        return (f"{head}: both ran their linears in {own}{_at(rates[own])}, so the gap lies outside the GEMMs "
                "(attention, fusion, framework overhead).")
    cause = f"eager's linears ran in {own}{_at(rates[own])}, {row['backend']}'s in {theirs}{_at(rates[theirs])}"
    if rates[own] and rates[theirs]:
        gemm = rates[theirs] / rates[own]
        consistent = (gemm > 1) == faster and abs(gemm - 1) > 0.1
        cause += (f" (calibrated GEMM ratio {gemm:.2f}x)" if consistent else
                  f"; their calibrated GEMMs differ by {gemm:.2f}x, so the GEMMs do not explain the gap alone")
    return f"{head}: {cause}."


def _ratio(row: Record) -> Speedup | None:
    value = row.get("speedup_vs_eager")
    if not isinstance(value, (int, float)):
        return None
    return Speedup(value, row.get("speedup_vs_eager_ci95_low"), row.get("speedup_vs_eager_ci95_high"))


def _gflops(row: Record) -> float | None:
    value = row.get("library_peak_tflops")
    return value * 1e3 if isinstance(value, (int, float)) else None


def _at(gflops: float | None) -> str:
    return f" at {gflops:.0f} GFLOP/s" if gflops else ""
