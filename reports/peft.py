"""The parameter-efficient comparison: P-tuning v2 vs soft prompt vs LoRA vs full fine-tuning, each with its
trainable share, its latency cost and its accuracy per resource group; and the seed paper's ablation, prompts at
the input only against prompts in every layer at equal P.

Accuracy is the reference backend's (eager where measured: every backend runs the same artifact). Latency cost
is the inverse of speedup_vs_dense at the task's reference shape, per backend, with its interval turned around
likewise (paired per-round ratios where the run interleaved its cells); for a variant on a base, also its p50 over
its base's p50 (what the prompt or adapters add to that model; a plain ratio of medians).
"""

from __future__ import annotations

from typing import Any

from reports.cells import (
    Accuracy,
    CellKey,
    Record,
    RowKey,
    Spread,
    accuracy_rows,
    dense_key,
    dense_variants,
    identities,
    language_layout,
    per_cell,
    reference_backend,
    reference_shape,
    shape_label,
    speedup,
)
from reports.method_style import PEFT_METHODS, method_label
from reports.table import Cell, Column, TableData, build_table, interval, label, num, share
from reports.cells import is_dense_reference, ordered_rows

_COMPARED = ("dense", *PEFT_METHODS)


def methods_views(records: list[Record]) -> list[TableData]:
    """Per task with a parameter-efficient variant: every FT, PT, soft-prompt and LoRA row side by side."""
    accuracy, ids, dense = accuracy_rows(records), identities(records), dense_variants(records)
    latency = per_cell(records, "latency", "latency_ms_p50")
    tables = []
    for task in dict.fromkeys(key[0] for key in ordered_rows(records)):
        keys = _reference_rows(records, accuracy, ids, task)
        if not any(ids[k].get("method") in PEFT_METHODS for k in keys):
            continue
        shape = reference_shape(latency, task)
        backends = list(dict.fromkeys(k[2] for k, s in latency if k[0] == task and s == shape))
        groups = [g for g, _ in language_layout(records, task) if g]
        reference = next((accuracy[k] for k in keys if is_dense_reference(ids[k])), None)
        rows = []
        for key in keys:
            ident, acc = ids[key], accuracy[key]
            row = {"variant": label(key[1]), "method": Cell(method_label(ident)),
                   "trainable": Cell(share(ident.get("trainable_share")))}
            for backend in backends:
                row[f"{backend} cost"] = _cost(latency, (task, key[1], backend, *key[3:]), shape, dense)
            row["vs base"] = _versus_base(latency, ident, (task, key[1], key[2], *key[3:]), shape)
            for group in groups:
                row[group] = _percent(acc.groups.get(group))
            row["mean"] = _percent(acc.overall)
            delta = None if reference is None or ident.get("method") == "dense" else acc.overall.mean - reference.overall.mean
            row["vs FT pts"] = num(None if delta is None else delta * 100, "+.1f")
            rows.append(row)
        columns = [Column("variant", False), Column("method", False), Column("trainable"),
                   *(Column(f"{b} cost") for b in backends), Column("vs base"), *(Column(g) for g in groups),
                   Column("mean"), Column("vs FT pts")]
        notes = [f"cost: p50 over the dense variant's p50 at B x T = {shape_label(shape) if shape else '-'} on each "
                 "backend (below: its 95% interval, as speedup_vs_dense's); vs base: p50 over the base variant's "
                 f"p50 on {keys[0][2]}; trainable: share of the parameters trained; accuracy on {keys[0][2]}, % by "
                 "resource group, mean ± std over seeds"]
        tables.append(build_table(f"methods-{task}", f"Fine-tuning methods compared ({task})", columns, rows,
                                  notes=notes, optional=("vs base", "vs FT pts")))
    return tables


def prompt_ablation_views(records: list[Record]) -> list[TableData]:
    """Per task: P-tuning v2 (a prefix in every layer) and soft prompts (the input only) of equal P on the same
    model, paired: the accuracy difference and what each costs."""
    accuracy, ids, dense = accuracy_rows(records), identities(records), dense_variants(records)
    latency = per_cell(records, "latency", "latency_ms_p50")
    tables = []
    for task in dict.fromkeys(key[0] for key in ordered_rows(records)):
        keys = _reference_rows(records, accuracy, ids, task)
        shape = reference_shape(latency, task)
        rows = []
        for layerwise in (k for k in keys if ids[k].get("method") == "prompt"):
            for inputonly in (k for k in keys if ids[k].get("method") == "soft_prompt"):
                a, b = ids[layerwise], ids[inputonly]
                if a.get("prompt_length") != b.get("prompt_length") or a.get("base_variant") != b.get("base_variant"):
                    continue
                acc_a, acc_b = accuracy[layerwise], accuracy[inputonly]
                rows.append({
                    "P": label(a.get("prompt_length")), "on": label(a.get("base_variant") or "backbone"),
                    "layer-wise": label(layerwise[1]), "input-only": label(inputonly[1]),
                    "runs as": label(b.get("soft_prompt_inference")),
                    "acc PT": _percent(acc_a.overall), "acc soft": _percent(acc_b.overall),
                    "soft − PT": num((acc_b.overall.mean - acc_a.overall.mean) * 100, "+.1f"),
                    "cost PT": _cost(latency, layerwise, shape, dense), "cost soft": _cost(latency, inputonly, shape, dense),
                    "trained PT": Cell(share(a.get("trainable_share"))),
                    "trained soft": Cell(share(b.get("trainable_share"))),
                })
        if not rows:
            continue
        columns = [Column("P"), Column("on", False), Column("layer-wise", False), Column("input-only", False),
                   Column("runs as", False), Column("acc PT"), Column("acc soft"), Column("soft − PT"),
                   Column("cost PT"), Column("cost soft"), Column("trained PT"), Column("trained soft")]
        backend = keys[0][2]
        notes = [f"PT: P-tuning v2, a prefix in every layer; soft: a soft prompt, P embeddings at the input; same P, "
                 f"same model. acc: accuracy % on {backend} (soft − PT in points); cost: p50 over dense at B x T = "
                 f"{shape_label(shape) if shape else '-'} on {backend}; trained: share of the parameters trained. "
                 "A soft prompt that runs as 'input' goes through every layer (P more tokens); as 'kv' it is folded "
                 "into per-layer keys and values, the cost of a P-tuning v2 prefix"]
        tables.append(build_table(f"prompt-ablation-{task}", f"Input-only vs layer-wise prompts at equal P ({task})",
                                  columns, rows, notes=notes, constant=("on", "runs as")))
    return tables


def _reference_rows(records: list[Record], accuracy: dict[RowKey, Accuracy], ids: dict[RowKey, Record],
                    task: Any) -> list[RowKey]:
    """The task's FT and parameter-efficient rows on the backend whose accuracy stands for all (eager)."""
    keys = [k for k in ordered_rows(records) if k in accuracy and k[0] == task and ids[k].get("method") in _COMPARED]
    if not keys:
        return []
    backend = reference_backend(keys, task)
    return [k for k in keys if k[2] == backend]


def _cost(latency: dict[CellKey, Record], key: RowKey, shape, dense: dict) -> Cell:
    """p50 / dense p50 (the inverse of the speedup), with the interval turned around likewise."""
    record = latency.get((key, shape))
    ref = dense_key(key, dense)
    gain = speedup(record, latency.get((ref, shape))) if record and ref else None
    if gain is None or not gain.value:
        return Cell("-")
    low, high = (1 / gain.high, 1 / gain.low) if gain.low and gain.high else (None, None)
    return Cell(f"{1 / gain.value:.2f}x", interval(low, high))


def _versus_base(latency: dict[CellKey, Record], ident: Record, key: RowKey, shape) -> Cell:
    base = ident.get("base_variant")
    here, there = latency.get((key, shape)), latency.get(((key[0], base, *key[2:]), shape)) if base else None
    if not here or not there or not there.get("latency_ms_p50"):
        return Cell("-")
    return Cell(f"{here['latency_ms_p50'] / there['latency_ms_p50']:.2f}x")


def _percent(spread: Spread | None) -> Cell:
    if spread is None:
        return Cell("-")
    return Cell(f"{spread.mean * 100:.1f}", f"±{spread.std * 100:.1f}" if spread.std is not None else "")
