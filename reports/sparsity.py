"""What a sparse variant is, in the numbers a researcher asks for first: how much of the model is still there
(density of the decoder linears and of all weights), the work left per token (MACs, zeros included and skipped),
the ideal speed-up its mechanism allows, and the bytes of the artifact as the cell holds it (zeros stored dense in a
masked-dense control; values plus int32 indices through a sparse kernel). One row per variant and kernel cell, from
its record on the first backend it ran on; the dense variant is the reference row."""

from __future__ import annotations

from reports.cells import Record, identities, is_dense_reference, ordered_rows
from reports.method_style import method_label
from reports.table import Cell, Column, TableData, build_table, label, num, share

_MB = 1e6


def sparsity_views(records: list[Record]) -> list[TableData]:
    ids = identities(records)
    tables = []
    for task in dict.fromkeys(key[0] for key in ordered_rows(records)):
        rows_by_variant: dict[str, Record] = {}
        for key in ordered_rows(records):
            if key[0] == task and key in ids:
                rows_by_variant.setdefault(key[1], ids[key])  # the first backend's: the sweep's order
        chosen = list(rows_by_variant.values())
        if not any(r.get("sparsity") for r in chosen):
            continue
        dense = next((r for r in chosen if is_dense_reference(r)), None)
        rows = []
        for record in chosen:
            if record.get("method") != "dense" and not record.get("sparsity"):
                continue  # prompts and adapters: methods_views shows them
            weights = record.get("weight_bytes")
            reference = dense.get("weight_bytes") if dense else None
            rows.append({
                "variant": label(record.get("variant")), "method": Cell(method_label(record)),
                "kernel": label(record.get("sparse_kernel") or "dense"),
                "density linears": Cell(share(record.get("density_linear"))),
                "density all": Cell(share(record.get("density_all"))),
                "MACs/token M": num(_millions(record.get("macs_per_token")), ".2f"),
                "nonzero M": num(_millions(record.get("macs_per_token_nonzero")), ".2f"),
                "ideal": num(record.get("speedup_ideal"), ".2f", "x"),
                "weights MB": num(weights / _MB if isinstance(weights, (int, float)) else None, ".1f"),
                "vs dense": num(weights / reference if isinstance(weights, (int, float)) and reference else None,
                                ".2f", "x"),
            })
        seq = next((r.get("macs_seq_len") for r in chosen if r.get("macs_seq_len")), None)
        columns = [Column("variant", False), Column("method", False), Column("kernel", False),
                   Column("density linears"), Column("density all"), Column("MACs/token M"), Column("nonzero M"),
                   Column("ideal"), Column("weights MB"), Column("vs dense")]
        notes = [f"MACs per token at {seq or '?'} tokens: of the dense architecture (zeros included) and of the "
                 "nonzero weights; ideal: the speed-up the cell's mechanism allows (Amdahl over the linears; a "
                 "masked-dense control runs every zero, 1.00x); weights: bytes as the cell holds them (a sparse "
                 "kernel: values plus int32 indices), vs the dense variant's"]
        tables.append(build_table(f"sparsity-{task}", f"What sparsity leaves ({task})", columns, rows, notes=notes))
    return tables


def _millions(value: object) -> float | None:
    return value / 1e6 if isinstance(value, (int, float)) else None
