"""Which paired ratios a run may call an effect: the one claim rule every Findings sentence uses.

A ratio (speedup_vs_dense, prefix_overhead_vs_dense, speedup_vs_eager) is claimed as an effect only when
- its record's interval excludes 1.0 (order statistics over rounds, at least 95 %, marginal: it covers that ratio
  alone, and the record says its exact level in `*_ci_level`);
- Holm's step-down procedure over the family of the run's paired sign tests (`*_p_value`) rejects it, so that the
  chance of calling any true 1.0 an effect, across all of them, stays within ALPHA (family-wise error);
- it is larger than the run's resolution floor (`resolution_pct`, the A/A twin's half-width): an effect smaller
  than what two identical cells differ by is never claimed.
Records from before p-values existed are judged by their interval alone, and the rule says so (`holm` False).

The family is every ratio the Findings speak of at their scope (one task, dtype, device and shape): each non-dense
row's ratio vs dense, the dense rows' ratios vs eager, and each precision cell's ratio vs its unquantized cell. Sentences from other modules call `ClaimRule.verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
ALPHA = 0.05
_SAME_TEST = {"prefix_overhead_vs_dense": "speedup_vs_dense"}  # the overhead is 1 / the speedup: one test


def holm(p_values: dict[Any, float], alpha: float = ALPHA) -> set[Any]:
    """The hypotheses Holm's procedure rejects: sorted by p, the i-th (0-based) of m is rejected while
    p <= alpha / (m - i); the first that is not stops it."""
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    rejected = set()
    for i, (key, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - i):
            break
        rejected.add(key)
    return rejected


def _test_key(record: Record, metric: str) -> tuple:
    return (record.get("variant"), record.get("backend"), record.get("batch_size"), record.get("seq_len"),
            _SAME_TEST.get(metric, metric))


def in_family(record: Record) -> list[str]:
    """The paired ratios of this record that the Findings may claim (a precision cell: its gain over its unquantized
    cell, and for a method other than dense the combination's ratio vs dense too)."""
    if record.get("quantization"):
        return ["speedup_vs_control"] + (["speedup_vs_dense"] if record.get("method") != "dense" else [])
    if record.get("method") == "dense":
        return ["speedup_vs_eager"] if record.get("backend") != "eager" else []
    return ["speedup_vs_dense"]


@dataclass(frozen=True)
class Verdict:
    kind: str  # faster | slower | same | unresolved (outside 1.0, but not claimed: within the floor or not after Holm)
    why: str = ""  # for unresolved: "within the floor" or "not after Holm"

    @property
    def claimed(self) -> bool:
        return self.kind in ("faster", "slower")


@dataclass
class ClaimRule:
    p_values: dict[tuple, float]
    rejected: set[tuple]
    alpha: float = ALPHA

    @classmethod
    def of(cls, records: list[Record], alpha: float = ALPHA) -> ClaimRule:
        p_values = {}
        for record in records:
            for metric in in_family(record):
                p = record.get(f"{metric}_p_value")
                if isinstance(p, (int, float)):
                    p_values[_test_key(record, metric)] = float(p)
        return cls(p_values, holm(p_values, alpha), alpha)

    @property
    def size(self) -> int:
        return len(self.p_values)

    @property
    def holm(self) -> bool:
        return bool(self.p_values)

    def verdict(self, record: Record, metric: str, ci: tuple[float, float, float] | None, inverse: bool = False) -> Verdict:
        """What may be said of `metric` of `record` with interval `ci` (value, low, high). inverse: above 1.0 is
        slower (an overhead)."""
        if ci is None or ci[1] <= 1.0 <= ci[2]:
            return Verdict("same")
        floor = record.get("resolution_pct")
        if isinstance(floor, (int, float)) and abs(ci[0] - 1) * 100 <= floor:
            return Verdict("unresolved", "within the floor")
        key = _test_key(record, metric)
        if self.holm and key in self.p_values and key not in self.rejected:
            return Verdict("unresolved", "not after Holm")
        above = ci[1] > 1
        return Verdict(("slower" if above else "faster") if inverse else ("faster" if above else "slower"))


def resolution(records: list[Record]) -> list[str]:
    """What the run can resolve, from its A/A twins: one line for the Findings, and a flag where a twin is itself
    'significant' (identical cells that came out different)."""
    twins: dict[str, Record] = {}
    for record in records:
        if isinstance(record.get("resolution_pct"), (int, float)) and record.get("aa_backend"):
            twins.setdefault(record["aa_backend"], record)
    if not twins:
        return []
    from reports.cells import Speedup

    parts, flagged = [], []
    for backend, r in twins.items():
        twin = Speedup(r["aa_ratio"], r.get("aa_ratio_ci95_low"), r.get("aa_ratio_ci95_high"))
        level = r.get("aa_ratio_ci_level")
        shown = f"{twin.value:.3f}x ({twin.bounds_text()}{f', {level:.1%}' if level else ''}) on {backend}"
        parts.append(shown)
        if r.get("aa_significant"):
            flagged.append(shown)
    floor = max(r["resolution_pct"] for r in twins.values())
    lines = [f"This run resolves about ±{floor:.1f} %: its A/A twin (the dense reference again, in a worker of its "
             f"own) gave {'; '.join(parts)}; no effect smaller than that is claimed."]
    if flagged:
        lines.append(f"Flag: the A/A twin itself differs from 1.0 ({'; '.join(flagged)}): two identical cells came out "
                     "different, so this run's ratios carry a bias of about that size; measure again on a quieter machine.")
    return lines
