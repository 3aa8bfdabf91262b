"""The Findings' sentences on sparse kernels: per method, kernel and backend, the measured curve of paired
speed-ups vs dense and the sparsity from which the kernel beats dense (claims.ClaimRule decides "beats"); a kernel
cell that ran every linear dense is said once per method, as a second masked-dense control."""

from __future__ import annotations

from reports.cells import Record, ratio_ci, times
from reports.claims import ClaimRule


def kernel_cell(record: Record) -> bool:
    """A cell that ran a masked variant through a sparse kernel (its control ran the zeros dense)."""
    return record.get("sparse_kernel") not in (None, "dense")


def kernel_curves(rows: list[Record], rule: ClaimRule, device: str) -> list[str]:
    """Per method, kernel and backend, the measured curve and where it breaks even: "unstructured through CSR on
    eager (cpu): 0.52x (..) at 50 %, ..., 2.41x (..) at 95 %; it beats dense from 80 % sparsity on". The break-even
    is the lowest sparsity from which every measured level is claimed faster (claims.ClaimRule)."""
    curves: dict[tuple, list[Record]] = {}
    for record in rows:
        curves.setdefault((record.get("method"), record.get("sparse_kernel"), record["backend"]), []).append(record)
    out, all_dense = [], {}
    for (method, kernel, backend), curve in sorted(curves.items(), key=lambda c: tuple(map(str, c[0]))):
        measured = sorted(((r.get("sparsity") or 0.0, r, ratio_ci(r, "speedup_vs_dense")) for r in curve),
                          key=lambda m: m[0])
        measured = [(s, r, ci) for s, r, ci in measured if ci]
        if not measured:
            continue
        ran_dense = {s for s, r, _ in measured if r.get("speedup_mechanism") != "sparse_kernel"}
        points = ", ".join(f"{times(ci)} at {s * 100:.0f} %" + (" (every linear dense)" if s in ran_dense else "")
                           for s, _, ci in measured)
        measured = [m for m in measured if m[0] not in ran_dense]  # a cell that ran dense is a control, not a kernel
        faster = [rule.verdict(r, "speedup_vs_dense", ci).kind == "faster" for _, r, ci in measured]
        tail = next((i for i in range(len(faster)) if all(faster[i:])), None)
        if not measured:  # said once per method and kernel, over its backends, below
            all_dense.setdefault((method, kernel), []).append(f"{points.replace(' (every linear dense)', '')} on {backend}")
            continue
        if tail is None:
            verdict = f"it beats dense at none of these levels (up to {measured[-1][0] * 100:.0f} %)"
        else:
            verdict = f"it beats dense from {measured[tail][0] * 100:.0f} % sparsity"
            if tail > 0:
                verdict += f", not at {measured[tail - 1][0] * 100:.0f} %"
        name = "auto (a kernel per linear where it wins here)" if kernel == "auto" else str(kernel).upper()
        out.append(f"{method} through {name} on {backend} ({device}): {points}; {verdict}.")
    for (method, kernel), where in all_dense.items():
        out.append(f"{method} through {kernel} ran every linear dense here ({device}; no sparse kernel wins or runs "
                   f"at its density): {', '.join(where)}; these cells are second masked-dense controls.")
    return out
