"""The Findings' sentences on quantized precisions: what int8 / fp8 does to each variant's speed and accuracy,
beside its own unquantized cell, e.g. "int8 on dense-ft runs 2.87x (2.39–2.99) faster than its fp32 cell on
onnxruntime, at +0.0 points (-1.2 to +1.2)".

The speed-up is the record's speedup_vs_control (paired round by round with the unquantized cell, judged by the run's
claim rule); for a sparse or prompted variant the ratio vs dense fp32 follows, the combination a user would deploy.
The accuracy change is paired over the same rows: the precision cell and its control classify the same examples, so
only the rows whose prediction changed can move it. Without per-row outcomes in the records, its interval is
McNemar's bound d ± 1.96 sqrt(c) / n, with c the changed rows (1 - agreement with eager fp32, times n) at most:
wide when many predictions changed, zero when none did. With random weights the change is meaningless and not
given; the agreement and the largest logit change are, since they measure the quantization itself.
"""

from __future__ import annotations

import math

from reports.cells import Record, ratio_ci, times
from reports.claims import ClaimRule

_VERDICTS = {"faster": "runs faster than", "slower": "runs slower than", "same": "gives no measurable difference from",
             "unresolved": "differs by no more than this run can claim (its floor, or Holm) from"}


def precision_sentences(latency: list[Record], accuracy: dict[tuple, Record], rule: ClaimRule) -> list[str]:
    """One sentence per precision cell family (a variant and precision, every backend); `latency`: the run's
    latency records at the Findings' shape; `accuracy`: ok accuracy records by (variant, backend)."""
    families: dict[tuple[str, str], list[Record]] = {}
    for record in latency:
        if record.get("quantization") and record.get("quant_control"):
            families.setdefault((record["quant_control"], record["quantization"]), []).append(record)
    return [_sentence(control, precision, rows, accuracy, rule) for (control, precision), rows in families.items()]


def _sentence(control: str, precision: str, rows: list[Record], accuracy: dict[tuple, Record], rule: ClaimRule) -> str:
    groups: dict[str, list[str]] = {}
    for record in rows:
        ci = ratio_ci(record, "speedup_vs_control")
        if ci is None:
            continue
        kind = rule.verdict(record, "speedup_vs_control", ci).kind
        where = f"{times(ci)} on {record['backend']} ({record.get('quant_library') or '?'})"
        groups.setdefault(kind, []).append(where + _accuracy_change(record, accuracy))
    speed = "; ".join(f"{_VERDICTS[kind]} its unquantized cell: {', '.join(parts)}" for kind, parts in groups.items())
    text = f"{precision} on {control} {speed or 'has no paired ratio to its unquantized cell'}"
    if rows[0].get("method") != "dense":  # the combination against what it would replace: dense in fp32
        vs_dense = [(r, ratio_ci(r, "speedup_vs_dense")) for r in rows]
        shown = ", ".join(f"{times(ci)} on {r['backend']}" for r, ci in vs_dense if ci)
        if shown:
            text += f"; with its method, vs dense fp32: {shown}"
    return text + _parity(rows, accuracy) + "."


def _accuracy_change(record: Record, accuracy: dict[tuple, Record]) -> str:
    """' at -0.3 points (-0.8 to +0.2)' of this cell against its control on the same backend, or ''."""
    mine, theirs = accuracy.get((record["variant"], record["backend"])), accuracy.get((record["quant_control"], record["backend"]))
    if not mine or not theirs or mine.get("random_weights") or mine.get("data_source") == "synthetic":
        return ""
    n = mine.get("eval_samples")
    agreement = mine.get("agreement_vs_eager_fp32")
    if not isinstance(n, int) or n <= 0 or not isinstance(agreement, (int, float)):
        return ""
    change = 100 * (mine["accuracy"] - theirs["accuracy"])
    half = 100 * 1.96 * math.sqrt(round(n * (1 - agreement))) / n
    return f" at {change:+.1f} points ({change - half:+.1f} to {change + half:+.1f})"


def _parity(rows: list[Record], accuracy: dict[tuple, Record]) -> str:
    """The quantization's own error, whatever the weights: agreement with eager fp32 and the largest logit change."""
    parts = []
    for record in rows:
        acc = accuracy.get((record["variant"], record["backend"])) or record
        agreement, diff = acc.get("agreement_vs_eager_fp32"), acc.get("max_abs_logit_diff")
        if isinstance(agreement, (int, float)) and isinstance(diff, (int, float)):
            parts.append(f"{agreement:.1%} and {diff:.1e} on {record['backend']}")
    return f"; agreement with eager fp32 and max |logit diff|: {', '.join(parts)}" if parts else ""
