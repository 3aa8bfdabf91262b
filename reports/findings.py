"""Findings: a few sentences computed from a run's records that answer its question, each with its 95% CI and the
mechanism behind it, e.g. "structured 50 % runs 1.93x faster than dense (ideal 2.00x)".

Every ratio is a record's own paired ratio (speedup_vs_dense, prefix_overhead_vs_dense, speedup_vs_eager: medians of
per-round ratios over interleaved rounds, order-statistic intervals of at least 95 %, marginal). Whether a sentence
claims an effect is decided in one place, reports.claims: the interval excludes 1.0, Holm's procedure over the run's
paired sign tests keeps the family-wise error at 5 %, and the effect exceeds the run's resolution floor (its A/A
twin); otherwise it says "no measurable difference" or that the difference is within what the run resolves. A
masked-dense control is never said to run faster or slower: it is reported as a control, and as a bias where it is
claimed, since it bounds how far the other ratios can be trusted. Accuracy is called meaningless when the backbone has random weights or the
data are synthetic. The block ends `bench run` and `bench report`, and heads report.md and report.html.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from typing import Any

from reports.backend_gap import gap_sentences
from reports.cells import (Record, accuracy_rows, is_dense_reference, per_cell, ratio_ci, reference_backend,
                           row_key, times)
from reports.claims import ClaimRule, resolution
from reports.kernel_curves import kernel_cell, kernel_curves
from reports.method_style import SPARSE_METHODS
from reports.precision_findings import precision_sentences

TITLE = "Findings"
_SPARSE = tuple(reversed(SPARSE_METHODS))  # most effective first: structured, semi24, unstructured
_DRIFT_LIMIT = 0.10


def findings(records: list[Record]) -> list[str]:
    """What the findings are measured on, then the findings, most important first; [] when there is nothing to say."""
    latency = per_cell(records, "latency", "latency_ms_p50")
    if not latency:
        lines = _accuracy(records)
        return ["No latency was measured in this run:", *lines] if lines else []
    task, dtype, device, shape = Counter((k[0], k[3], k[4], s) for k, s in latency).most_common(1)[0][0]
    cells = {key: r for (key, s), r in latency.items() if s == shape and (key[0], key[3], key[4]) == (task, dtype, device)}
    variants = list(dict.fromkeys(key[1] for key in cells))
    by_variant = {v: [r for k, r in cells.items() if k[1] == v] for v in variants}
    dense = next((v for v in variants if is_dense_reference(by_variant[v][0])), None)
    rounds = sorted({r["rounds"] for r in cells.values() if r.get("rounds")})
    rule = ClaimRule.of(list(cells.values()))
    out = [f"{task}, {dtype} on {device}, batch {shape[0]} × {shape[1]} tokens; ratios vs {dense or 'dense'} on the same "
           f"backend, paired over {_rounds(rounds)}; {_intervals(list(cells.values()), rule)}:"]
    out += resolution(list(cells.values()))
    # Sparse backbones alone (structured first), then prompts on the dense backbone; variants on a base are left to
    # the tables, since their ratio vs dense mixes the two.
    sparse = [v for m in _SPARSE for v in variants if by_variant[v][0].get("method") == m
              and not by_variant[v][0].get("prompt_length") and not by_variant[v][0].get("lora_rank")
              and not kernel_cell(by_variant[v][0])  # kernel cells: in their curve's sentence below
              and not by_variant[v][0].get("quantization")]  # precision cells: in their own sentences below
    prompts = [v for v in variants if (by_variant[v][0].get("prompt_length") or 0) > 0 and not by_variant[v][0].get("sparsity")
               and not by_variant[v][0].get("quantization")]
    labels = _labels({v: by_variant[v][0] for v in sparse + prompts})
    controls = {r["kernel_control"] for r in cells.values() if kernel_cell(r)}
    out += [_sparse_sentence(labels[v], by_variant[v], rule, v in controls) for v in sparse]
    out += kernel_curves([r for r in cells.values() if kernel_cell(r)], rule, device)
    out += [_prefix_sentence(labels[v], by_variant[v], shape, rule) for v in prompts]
    accuracy = {(k[1], k[2]): r for (k, _), r in per_cell(records, "accuracy", "accuracy").items()
                if (k[0], k[3], k[4]) == (task, dtype, device)}
    out += precision_sentences(list(cells.values()), accuracy, rule)
    if dense:
        out += _backends(by_variant[dense], dense, rule)
        out += gap_sentences(by_variant[dense], rule)  # each backend gap's cause: the libraries behind the linears
    out += _accuracy(records)
    out += _drift(list(cells.values()))
    return out


def _intervals(rows: list[Record], rule: ClaimRule) -> str:
    """How the intervals are built and what a claim rests on: marginal levels, and the multiplicity control."""
    levels = sorted({r[k] for r in rows for k in ("speedup_vs_dense_ci_level", "speedup_vs_eager_ci_level")
                     if isinstance(r.get(k), (int, float))})
    shown = (f"{levels[0]:.1%}" if len(levels) == 1 else f"{levels[0]:.1%}-{levels[-1]:.1%}") if levels else "95 %"
    if not rule.holm:
        return f"intervals {shown}, each marginal; a claim rests on its own interval (no p-values in these records)"
    return (f"intervals are order statistics over rounds, {shown} each, marginal; an effect is claimed only where "
            f"Holm's procedure over the {rule.size} paired sign tests keeps the family-wise error at "
            f"{rule.alpha:.0%}")


def _sparse_sentence(name: str, rows: list[Record], rule: ClaimRule, has_kernels: bool = False) -> str:
    speedups = [(r, ratio_ci(r, "speedup_vs_dense")) for r in rows]
    measured = [(r, ci) for r, ci in speedups if ci]
    first = rows[0]
    ideal = first.get("speedup_ideal")
    ideal_text = f" (ideal {ideal:.2f}x)" if ideal else ""
    if not measured:
        return f"{name}: no paired speedup vs dense was measured{ideal_text}."
    mechanisms = {r.get("speedup_mechanism") for r in rows}
    reason = str(first.get("speedup_mechanism_reason") or "")
    if mechanisms == {"none"}:
        return _control_sentence(name, rows, measured, rule, ideal_text, reason, has_kernels)
    said = _grouped(measured, times, {"faster": "runs faster than dense", "slower": "runs slower than dense",
                                   "same": "gives no measurable difference from dense",
                                   "unresolved": "differs from dense by no more than this run can claim (its floor, or Holm)"},
                    rule, "speedup_vs_dense")
    return f"{name} {said}{ideal_text}; {reason or 'mechanism ' + ', '.join(map(str, mechanisms))}."


def _control_sentence(name: str, rows: list[Record], measured: list, rule: ClaimRule, ideal_text: str,
                      reason: str, has_kernels: bool = False) -> str:
    """A variant whose zeros run through dense kernels: it is a control, never 'faster' or 'slower'. Where its
    ratio is claimed (outside 1.0 by more than the floor, after Holm), that is a bias of the backend, said once."""
    first = rows[0]
    # The reason's general part ("unstructured zeros are multiplied like any weight"), and for 2:4 why no kernel
    # serves it on the first PyTorch backend ("2:4 sparse tensor cores are CUDA-only ...").
    detail = reason.split(": ", 1)[0]
    torch_row = next((r for r in rows if r.get("backend") != "onnxruntime"), None)
    why_not = str((torch_row or {}).get("speedup_mechanism_reason") or "").partition("(no 2:4 kernel here: ")[2]
    if why_not:
        detail += "; no 2:4 kernel here: " + why_not.removesuffix(")")
    claimed = [(r, ci) for r, ci in measured if rule.verdict(r, "speedup_vs_dense", ci).claimed]
    said = _grouped([(r, ci) for r, ci in measured if (r, ci) not in claimed], times,
                    {"same": "gives no measurable difference from dense",
                     "unresolved": "differs from dense by no more than this run can claim (its floor, or Holm)"}, rule, "speedup_vs_dense")
    how = ("as the masked-dense control of its kernel cells, whose curves follow" if has_kernels
           else "no sparse kernel serves it on these backends")
    sentence = f"{name} {said or 'is a control'}{ideal_text}; {how} ({detail})."
    if claimed:
        where = ", ".join(f"{times(ci)} on {r['backend']}" for r, ci in claimed)
        sentence += (f" As the masked-dense control it should give 1.0x, but gives {where}, beyond what this run "
                     "resolves: ratios on that backend carry a bias of that size.")
    return sentence


def _prefix_sentence(name: str, rows: list[Record], shape: tuple, rule: ClaimRule) -> str:
    costs = [(r, ratio_ci(r, "prefix_overhead_vs_dense")) for r in rows]
    measured = [(b, ci) for b, ci in costs if ci]
    share = rows[0].get("trainable_share")
    trains = f" and trains {share * 100:.2f} % of the parameters" if isinstance(share, (int, float)) else ""
    if not measured:
        return f"{name}: its cost vs dense was not measured{trains}."
    said = _grouped(measured, lambda ci: f"{_pct(ci[0])} ({_pct(ci[1])} to {_pct(ci[2])})",
                    {"faster": "saves", "slower": "costs", "same": "has no measurable cost",
                     "unresolved": "has a cost this run cannot claim (its floor, or Holm)"}, rule, "prefix_overhead_vs_dense",
                    inverse=True)
    return f"{name} at {shape[0]}×{shape[1]} {said}{trains}."


def _backends(rows: list[Record], dense: str, rule: ClaimRule) -> list[str]:
    others = [(r, ratio_ci(r, "speedup_vs_eager")) for r in rows if r.get("backend") != "eager"]
    measured = [(r, ci) for r, ci in others if ci]
    if not measured:
        return []
    words = {"faster": "faster", "slower": "slower", "same": "no measurable difference",
             "unresolved": "a difference this run cannot claim (its floor, or Holm)"}
    parts = "; ".join(f"{r['backend']} {times(ci)}, {words[rule.verdict(r, 'speedup_vs_eager', ci).kind]}"
                      for r, ci in measured)
    return [f"Backends vs eager, on {dense}: {parts}."]


def _accuracy(records: list[Record]) -> list[str]:
    ok = [r for r in records if r.get("scenario") == "accuracy" and r.get("status") == "ok"]
    if not ok:
        return []
    why = []
    if any(r.get("random_weights") for r in ok):
        why.append("the backbone has random weights")
    if any(r.get("data_source") == "synthetic" for r in ok):
        why.append("the data are synthetic")
    if why:
        return [f"Accuracy is meaningless here: {' and '.join(why)}; the accuracy views show that the pipeline runs, "
                "not what the methods do to the task."]
    rows = accuracy_rows(records)
    samples = {row_key(r): r.get("eval_samples") for r in ok}
    out = []
    for task in dict.fromkeys(key[0] for key in rows):
        backend = reference_backend(list(rows), task)
        keys = [k for k in rows if k[0] == task and k[2] == backend]
        parts = []
        for key in keys:
            acc, n = rows[key].overall, samples.get(key)
            half = 1.96 * math.sqrt(acc.mean * (1 - acc.mean) / n) if n else None
            spread = f" ±{half:.1%}" if half is not None else ""
            parts.append(f"{key[1]} {acc.mean:.1%}{spread}")
        if parts:
            out.append(f"Accuracy on {task} ({backend}, mean over languages, ± the binomial 95 % half-width): "
                       f"{', '.join(parts)}; differences inside those widths are not measurable.")
    return out


def _drift(rows: list[Record]) -> list[str]:
    worst = max((r for r in rows if isinstance(r.get("reference_drift"), (int, float))),
                key=lambda r: abs(r["reference_drift"] - 1), default=None)
    if worst is None or abs(worst["reference_drift"] - 1) <= _DRIFT_LIMIT:
        return []
    value = worst["reference_drift"]
    return [f"The machine drifted: the reference ran {abs(value - 1) * 100:.0f} % {'slower' if value > 1 else 'faster'} at the "
            f"end of the rounds than at the start ({worst['backend']}); paired ratios cancel drift shared by a round, "
            "absolute times do not."]


def _labels(firsts: dict[str, Record]) -> dict[str, str]:
    """'structured 50 %', '2:4 (semi24)', 'a 16-token prefix (P-tuning v2)'; the variant's name where two collide."""
    out = {}
    for variant, r in firsts.items():
        method, sparsity = r.get("method"), r.get("sparsity")
        if method in ("structured", "unstructured"):
            out[variant] = f"{method} {sparsity * 100:.0f} %" if isinstance(sparsity, (int, float)) else str(method)
        elif method == "semi24":
            out[variant] = "2:4 semi-structured 50 %"
        elif method == "prompt" and (r.get("prompt_length") or 0) > 0:
            out[variant] = f"a {r['prompt_length']}-token prefix (P-tuning v2)"
        elif method == "soft_prompt":
            kv = " run as per-layer keys and values" if r.get("soft_prompt_inference") == "kv" else ""
            out[variant] = f"a {r.get('prompt_length')}-token soft prompt{kv}"
        else:
            out[variant] = str(variant)
    counts = Counter(out.values())
    return {v: f"{text} [{v}]" if counts[text] > 1 else text for v, text in out.items()}


def _grouped(measured: list[tuple[Record, tuple[float, float, float]]], show, verdicts: dict[str, str],
             rule: ClaimRule, metric: str, inverse: bool = False) -> str:
    """'runs faster than dense: 1.90x (1.80–2.00) on eager; gives no measurable difference from dense: 1.0x (..) on
    onnxruntime': the backends grouped by what the claim rule allows (for an overhead, inverse: above 1.0 is
    slower)."""
    groups: dict[str, list[str]] = {}
    for record, ci in measured:
        kind = rule.verdict(record, metric, ci, inverse).kind
        groups.setdefault(kind, []).append(f"{show(ci)} on {record['backend']}")
    return "; ".join(f"{verdicts[kind]}: {', '.join(parts)}" for kind, parts in groups.items())


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f} %"


def _rounds(rounds: list[int]) -> str:
    if not rounds:
        return "its measurements"
    return f"{rounds[0]} interleaved rounds" if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]} interleaved rounds"


def as_markdown(lines: list[str]) -> list[str]:
    """The block for report.md: a heading, the context line, then one bullet per finding."""
    if not lines:
        return []
    return [f"## {TITLE}", "", lines[0], "", *(f"- {line}" for line in lines[1:]), ""]


def as_html(lines: list[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines[1:])
    return f"<h2 id=\"findings\">{TITLE}</h2><p>{html.escape(lines[0])}</p><ul>{items}</ul>"


def as_rich(lines: list[str]) -> Any:
    """A Rich panel: the context line, then the findings as bullets."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from rich.table import Table

    bullets = Table.grid(padding=(0, 1))  # a hanging indent: wrapped lines stay right of the bullet
    bullets.add_column(no_wrap=True)
    bullets.add_column()
    for line in lines[1:]:
        bullets.add_row("-", line)
    return Panel(Group(Text(lines[0], style="dim"), bullets), title=TITLE, expand=False)

