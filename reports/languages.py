"""Cross-lingual views: accuracy per language (languages as columns, grouped into high- and low-resource with
group means, seeds as mean ± std) and the parameter-efficient minus full fine-tuning difference per language
(PT, soft prompt or LoRA − FT).

Both show one backend per task, eager where it was measured: every backend runs the same artifact, and the
parity view says how far the others agree with it.
"""

from __future__ import annotations

from typing import Any

from reports.cells import (
    Accuracy,
    Difference,
    Record,
    RowKey,
    Spread,
    accuracy_rows,
    dense_variants,
    identities,
    language_layout,
    reference_backend,
)
from reports.method_style import PEFT_METHODS, method_label
from reports.table import Cell, Column, TableData, build_table, label
from reports.cells import ordered_rows

_NOTE_SEEDS = "mean over seeds with the sample std below it"


def per_language_views(records: list[Record]) -> list[TableData]:
    accuracy = accuracy_rows(records)
    tables = []
    for task in dict.fromkeys(key[0] for key in accuracy):
        layout = language_layout(records, task)
        keys = _reference_rows(records, accuracy, task)
        best = {name: max((_column(accuracy[k], name) or _NONE).mean for k in keys) for name in _columns(layout)}
        rows = []
        for key in keys:
            acc = accuracy[key]
            row: dict[str, Cell] = {"variant": label(key[1]), "backend": label(key[2]), "dtype": label(key[3]),
                                    "seeds": label(acc.overall.n)}
            for name in _columns(layout):
                spread = _column(acc, name)
                best_here = spread is not None and len(keys) > 1 and spread.mean == best[name]
                row[name] = _percent(spread, "better" if best_here else None)
            rows.append(row)
        title = f"Accuracy per language, % ({task}; green: best in its column)"
        notes = [_NOTE_SEEDS] if any(accuracy[k].overall.n > 1 for k in keys) else []
        notes += _group_note(layout)
        tables.append(build_table(f"languages-{task}", title, _label_columns() + [Column(n) for n in _columns(layout)],
                                  rows, notes=notes, constant=("backend", "dtype", "seeds")))
    return tables


def pt_minus_ft_views(records: list[Record]) -> list[TableData]:
    """Per task with dense and parameter-efficient variants (P-tuning v2, soft prompt, LoRA, on a base or not):
    their accuracy minus the dense variant's, in points."""
    accuracy = accuracy_rows(records)
    dense = dense_variants(records)
    ids = identities(records)
    tables = []
    for task in dict.fromkeys(key[0] for key in accuracy):
        layout = language_layout(records, task)
        rows = []
        for key in _reference_rows(records, accuracy, task):
            reference = dense.get((task, key[2], key[3], key[4]))
            if ids[key].get("method") not in PEFT_METHODS or reference is None or (task, reference, *key[2:]) not in accuracy:
                continue
            prompt, ft = accuracy[key], accuracy[(task, reference, *key[2:])]
            row: dict[str, Cell] = {"variant": label(key[1]), "method": Cell(method_label(ids[key])),
                                    "vs": label(reference), "backend": label(key[2]), "dtype": label(key[3])}
            for name in _columns(layout):
                p, f = _column(prompt, name), _column(ft, name)
                row[name] = _difference(Difference.between(p, f)) if p and f else Cell("-")
            rows.append(row)
        if not rows:
            continue
        columns = [Column("variant", False), Column("method", False), Column("vs", False), Column("backend", False),
                   Column("dtype", False)] + [Column(n) for n in _columns(layout)]
        notes = ["parameter-efficient accuracy minus the dense fine-tuned variant's on the same task, backend and dtype; "
                 "green (better) or red (worse) only beyond two standard errors over seeds; with a single seed on "
                 "both sides there is no spread to judge by, so no cell is coloured (run more seeds)"] + _group_note(layout)
        tables.append(build_table(f"pt-ft-{task}", f"PEFT − FT, accuracy points ({task})", columns, rows, notes=notes,
                                  constant=("backend", "dtype", "vs")))
    return tables


def _reference_rows(records: list[Record], accuracy: dict[RowKey, Accuracy], task: Any) -> list[RowKey]:
    keys = [k for k in ordered_rows(records) if k in accuracy and k[0] == task]
    backend = reference_backend(keys, task)
    return [k for k in keys if k[2] == backend]


def _columns(layout: list[tuple[str, list[str]]]) -> list[str]:
    """Languages group by group, each group followed by its mean, then the mean over all languages."""
    names: list[str] = []
    for group, members in layout:
        names += members + ([f"{group} avg"] if group and len(layout) > 1 else [])
    return names + ["mean"]


def _column(acc: Accuracy, name: str) -> Spread | None:
    if name == "mean":
        return acc.overall
    if name.endswith(" avg"):
        return acc.groups.get(name.removesuffix(" avg"))
    return acc.languages.get(name)


def _label_columns() -> list[Column]:
    return [Column("variant", False), Column("backend", False), Column("dtype", False), Column("seeds")]


def _percent(spread: Spread | None, tone: Any) -> Cell:
    if spread is None:
        return Cell("-")
    return Cell(f"{spread.mean * 100:.1f}", f"±{spread.std * 100:.1f}" if spread.std is not None else "", tone)


def _difference(diff: Difference) -> Cell:
    tone = ("better" if diff.value > 0 else "worse") if diff.clear else None
    return Cell(f"{diff.value * 100:+.1f}", f"±{diff.se * 100:.1f}" if diff.se is not None else "", tone)


def _group_note(layout: list[tuple[str, list[str]]]) -> list[str]:
    named = [(g, m) for g, m in layout if g]
    if not named:
        return []
    return ["groups (from the records' language_groups): " + "; ".join(f"{g}: {', '.join(m)}" for g, m in named)]


_NONE = Spread(float("-inf"), None, 0)
