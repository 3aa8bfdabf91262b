"""The Rich summary of a run, rendered from its files alone (records, env.json, run.json)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

RANDOM_WARNING = "random-weight backbone: accuracy measures nothing about the task; latency and memory are real"


def render_run(records: list[dict[str, Any]], env: dict[str, Any] | None, manifest: dict[str, Any], console: Console) -> None:
    console.print(header(records, env, manifest))
    for view in (latency_table(records), throughput_table(records), accuracy_table(records), problems_table(records)):
        if view is not None:
            console.print(view)


def header(records: list[dict[str, Any]], env: dict[str, Any] | None, manifest: dict[str, Any]) -> Panel:
    from bench.env import short_summary

    status = manifest.get("status", "unknown")
    colour = {"complete": "green", "incomplete": "yellow", "failed": "red"}.get(status, "white")
    lines = [Text.assemble(("run ", "bold"), manifest.get("run_id", "?"), "  status ", (status, f"bold {colour}"))]
    if manifest.get("reason"):
        lines.append(Text(manifest["reason"], style=colour))
    if env:
        lines.append(Text(short_summary(env)))
    models = sorted({str(r.get("model")) for r in records if r.get("model")})
    if models:
        lines.append(Text("model " + ", ".join(models)))
    if any(r.get("random_weights") for r in records):
        lines.append(Text(RANDOM_WARNING, style="bold yellow"))
    sources = sorted({f"{r['task']}: {r.get('data_source')} ({r.get('train_split')} for training)" for r in records if r.get("data_source")})
    if sources:
        lines.append(Text("data " + "; ".join(sources)))
    return Panel(Group(*lines), title="xglm-bench", expand=False)


def _ok(records: list[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    return [r for r in records if r["scenario"] == scenario and r["status"] == "ok"]


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _build(r: dict[str, Any]) -> str:
    parts = [f"{k.removesuffix('_s')} {r[k]:.1f}s" for k in ("compile_s", "export_s") if r.get(k) is not None]
    return ", ".join(parts) or "-"


def latency_table(records: list[dict[str, Any]]) -> Table | None:
    rows = _ok(records, "latency")
    if not rows:
        return None
    memory = {(r["variant"], r["task"], r["backend"], r["dtype"], r["batch_size"], r["seq_len"]): r["peak_memory_mb"]
              for r in _ok(records, "memory")}
    best: dict[tuple, float] = defaultdict(lambda: float("inf"))
    for r in rows:
        key = (r["task"], r["batch_size"], r["seq_len"], r["device"])
        best[key] = min(best[key], r["latency_ms_p50"])
    table = Table(title="Latency (steady state, warm-up excluded; p50 with its 95% CI)", title_justify="left")
    for col in ("variant", "task", "backend", "dtype", "B x T", "p50 ms", "95% CI", "p99 ms", "CV", "samples/s",
                "peak MB", "vs dense", "build"):
        table.add_column(col, justify="right" if col not in ("variant", "task", "backend", "dtype") else "left")
    for r in rows:
        fastest = r["latency_ms_p50"] == best[(r["task"], r["batch_size"], r["seq_len"], r["device"])]
        cv = r.get("latency_cv")
        table.add_row(
            r["variant"], r["task"], r["backend"], r["dtype"], f"{r['batch_size']} x {r['seq_len']}",
            Text(_fmt(r["latency_ms_p50"]), style="bold green" if fastest else ""),
            f"{_fmt(r.get('latency_ms_ci95_low'))}-{_fmt(r.get('latency_ms_ci95_high'))}",
            _fmt(r["latency_ms_p99"]), Text(_fmt(cv, ".1%"), style="yellow" if cv and cv > 0.10 else ""),
            _fmt(r["throughput_samples_per_s"], ".1f"),
            _fmt(memory.get((r["variant"], r["task"], r["backend"], r["dtype"], r["batch_size"], r["seq_len"])), ".0f"),
            _fmt(r.get("speedup_vs_dense"), ".2f") + ("x" if r.get("speedup_vs_dense") else ""), _build(r),
        )
    return table


def throughput_table(records: list[dict[str, Any]]) -> Table | None:
    rows = _ok(records, "throughput")
    if not rows:
        return None
    table = Table(title="Throughput over the evaluation set (length-sorted batches)", title_justify="left")
    for col in ("variant", "task", "backend", "dtype", "batch", "samples/s", "tokens/s (real)", "tokens/s (padded)", "padding"):
        table.add_column(col, justify="left" if col in ("variant", "task", "backend", "dtype") else "right")
    for r in rows:
        table.add_row(r["variant"], r["task"], r["backend"], r["dtype"], str(r["batch_size"]),
                      _fmt(r["throughput_samples_per_s"], ".1f"), _fmt(r["throughput_tokens_per_s"], ".0f"),
                      _fmt(r.get("throughput_padded_tokens_per_s"), ".0f"), _fmt(r.get("throughput_padding_share"), ".0%"))
    return table


def accuracy_table(records: list[dict[str, Any]]) -> Table | None:
    rows = _ok(records, "accuracy")
    if not rows:
        return None
    langs = list(dict.fromkeys(lang for r in rows for lang in r["accuracy_by_language"]))
    title = "Accuracy per language and parity with eager fp32 on the same artifact"
    if any(r.get("random_weights") for r in rows):
        title += " [random weights: not meaningful]"
    table = Table(title=title, title_justify="left")
    for col in ("variant", "task", "backend", "dtype", "mean", *langs, "agree", "max |diff|"):
        table.add_column(col, justify="left" if col in ("variant", "task", "backend", "dtype") else "right")
    for r in rows:
        agree = r.get("agreement_vs_eager_fp32")
        table.add_row(
            r["variant"], r["task"], r["backend"], r["dtype"], _fmt(r["accuracy"], ".3f"),
            *(_fmt(r["accuracy_by_language"].get(lang), ".3f") for lang in langs),
            Text(_fmt(agree, ".2%"), style="red" if agree is not None and agree < 0.99 else ""),
            _fmt(r.get("max_abs_logit_diff"), ".1e"),
        )
    return table


def problems_table(records: list[dict[str, Any]]) -> Table | None:
    seen: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r["status"] != "ok":
            seen.setdefault((r["variant"], r["task"], r["backend"], r["dtype"], r["status"], r["error"]), r)
    if not seen:
        return None
    table = Table(title="Cells not measured", title_justify="left")
    for col in ("variant", "task", "backend", "dtype", "status", "reason"):
        table.add_column(col)
    for (variant, task, backend, dtype, status, error), _ in seen.items():
        table.add_row(variant, task, backend, dtype, Text(status, style="red" if status == "failed" else "yellow"), error or "")
    return table
