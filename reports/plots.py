"""The report plots, each drawn from records alone or skipped with the reason the records give.

A builder returns a matplotlib Figure, or a string saying why the records cannot support the plot (a
dense-only run has no sparsity axis). `write_plots` saves PNG and SVG into RUN_DIR/plots/.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.cells import (
    Record,
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
from reports.plotting import (
    LINESTYLES, annotate_cells, error_bars, label_points, legend_handle, mark_groups, new_figure, pareto_front,
    random_weights_note, rendered, save, style,
)
from reports.methods import method_label, method_style

_SPARSE = ("unstructured", "semi24", "structured")


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: Path | None = None
    svg: Path | None = None
    skipped: str | None = None  # why the plot is absent


def latency_vs_sparsity(records: list[Record]):
    latency, ids, dense = per_cell(records, "latency", "latency_ms_p50"), identities(records), dense_variants(records)
    sparse = [key for key, _ in latency if ids[key].get("method") in _SPARSE]
    if not sparse:
        return "no sparse variants (unstructured, semi24 or structured) with latency records"
    task = sparse[0][0]
    shape = reference_shape(latency, task)
    fig, (ax,) = new_figure(panel=(7.0, 4.2))
    methods = list(dict.fromkeys(ids[k].get("method") for k in sparse))
    series = list(dict.fromkeys((k[2], k[3]) for k in sparse if k[0] == task))
    for (backend, dtype), linestyle in zip(series, LINESTYLES * 4):
        for m, method in enumerate(methods):
            keys = [k for k in ids if k[0] == task and k[2:4] == (backend, dtype) and ids[k].get("method") == method]
            base = latency.get((dense_key(keys[0], dense), shape)) if keys else None
            cells = [(ids[k].get("sparsity") or 0.0, k) for k in keys if (k, shape) in latency]
            points = sorted(([(0.0, base)] if base else []) + [(s, latency[(k, shape)]) for s, k in cells],
                            key=lambda p: p[0])
            if len(points) < 2:
                continue
            xs, ys = [s * 100 for s, _ in points], [r["latency_ms_p50"] for _, r in points]
            bounds = [(r.get("latency_ms_ci95_low"), r.get("latency_ms_ci95_high")) for _, r in points]
            ax.errorbar(xs, ys, yerr=error_bars(ys, bounds), linestyle=linestyle, capsize=3,
                        label=f"{method} · {backend} {dtype}", **style(m))
            ideal = [(s * 100, base["latency_ms_p50"] / ids[k]["speedup_ideal"])
                     for s, k in cells if ids[k].get("speedup_ideal")] if base else []
            if ideal and (backend, dtype) == series[0]:  # once per method: the ideal is the same on every backend
                ax.plot([0.0] + [x for x, _ in ideal], [base["latency_ms_p50"]] + [y for _, y in ideal],
                        linestyle=(0, (1, 2)), linewidth=1.0, color=style(m)["color"],
                        label=f"{method} ideal from FLOPs · {backend}")
    ax.set(xlabel="sparsity of the decoder linears (%)", ylabel="p50 latency (ms)", ylim=(0, None),
           title=f"Latency vs sparsity · {task} · B x T = {shape_label(shape)} (bars: 95% CI)")
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: "ideal" in names[i])  # measured series first
    ax.legend([handles[i] for i in order], [names[i] for i in order], loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="method · backend")
    return fig


def accuracy_vs_sparsity(records: list[Record]):
    accuracy, ids, dense = accuracy_rows(records), identities(records), dense_variants(records)
    backends = {task: reference_backend(list(accuracy), task) for task in {k[0] for k in accuracy}}
    sparse = [k for k in accuracy if ids[k].get("method") in _SPARSE and k[2] == backends[k[0]]]
    tasks = list(dict.fromkeys(k[0] for k in sparse))
    if not tasks:
        return "no sparse variants (unstructured, semi24 or structured) with accuracy records"
    fig, axes = new_figure(1, len(tasks), panel=(5.0, 3.8))
    for ax, task in zip(axes, tasks):
        backend = backends[task]
        keys = [k for k in accuracy if k[0] == task and k[2] == backend]
        for m, method in enumerate(dict.fromkeys(ids[k].get("method") for k in sparse if k[0] == task)):
            members = [k for k in keys if ids[k].get("method") == method]
            ref = dense_key(members[0], dense)
            points = sorted(([(0.0, accuracy[ref])] if ref in accuracy else []) +
                            [(ids[k].get("sparsity") or 0.0, accuracy[k]) for k in members], key=lambda p: p[0])
            ax.errorbar([s * 100 for s, _ in points], [a.overall.mean * 100 for _, a in points],
                        yerr=[(a.overall.std or 0) * 100 for _, a in points], capsize=3, label=method, **style(m))
        ax.set(xlabel="sparsity of the decoder linears (%)", ylabel="mean accuracy over languages (%)",
               title=f"Accuracy vs sparsity · {task} · {backend}")
        ax.legend(loc="best")
    random_weights_note(fig, records)
    return fig


def pareto(records: list[Record]):
    latency, accuracy, ids = per_cell(records, "latency", "latency_ms_p50"), accuracy_rows(records), identities(records)
    tasks = {}
    for task in dict.fromkeys(k[0] for k in accuracy):
        shape = reference_shape(latency, task)
        points = [(latency[(k, shape)]["latency_ms_p50"], accuracy[k].overall.mean * 100, k)
                  for k in accuracy if k[0] == task and (k, shape) in latency]
        if len({k[1] for *_, k in points}) >= 2:  # one variant's backends share one accuracy: no front to draw
            tasks[task] = (shape, points)
    if not tasks:
        return "needs two or more variants with both latency and accuracy records"
    fig, axes = new_figure(1, len(tasks), panel=(6.0, 4.4))
    random_weights_note(fig, records)
    methods = list(dict.fromkeys(ids[k].get("method") for _, (_, points) in tasks.items() for *_, k in points))
    backends = list(dict.fromkeys(k[2] for _, (_, points) in tasks.items() for *_, k in points))
    for ax, (task, (shape, points)) in zip(axes, tasks.items()):
        for x, y, k in points:  # every variant of every method: colour says the method, marker the backend
            ax.plot(x, y, linestyle="none", color=method_style(ids[k].get("method")).colour,
                    marker=style(backends.index(k[2]))["marker"], markersize=7)
        front = pareto_front([(x, y) for x, y, _ in points])
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="0.3", linewidth=1.0, linestyle="--")
        ax.set(xlabel=f"p50 latency at B x T = {shape_label(shape)} (ms)", ylabel="mean accuracy (%)",
               title=f"Accuracy vs latency · {task} (up and left is better)")
        ax.margins(0.15)
    handles = [legend_handle("0.3", "", "--", "Pareto front")]
    handles += [legend_handle(method_style(method).colour, "o", "none", method_style(method).name) for method in methods]
    handles += [legend_handle("0.3", style(b)["marker"], "none", backend) for b, backend in enumerate(backends)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    for ax, (_, points) in zip(axes, tasks.values()):
        fastest: dict[Any, tuple] = {}
        for x, y, k in sorted(points):
            fastest.setdefault(k[1], (x, y, k[1]))
        label_points(ax, list(fastest.values()), obstacles=[(x, y) for x, y, _ in points])
    return fig


def accuracy_heatmap(records: list[Record]):
    accuracy, ids = accuracy_rows(records), identities(records)
    tasks = list(dict.fromkeys(k[0] for k in accuracy if accuracy[k].languages))
    if not tasks:
        return "no per-language accuracy in the records"
    layouts = {t: language_layout(records, t) for t in tasks}
    backends = {t: reference_backend(list(accuracy), t) for t in tasks}
    rows = {t: [k for k in accuracy if k[0] == t and k[2] == backends[t]] for t in tasks}
    width = max(sum(len(m) for _, m in layouts[t]) for t in tasks)
    height = max(2.2, 1.3 + 0.34 * max(len(r) for r in rows.values()))
    names = max(len(f"{k[1]} ({method_label(ids[k])})") for t in tasks for k in rows[t])  # y labels, in characters
    fig, axes = new_figure(len(tasks), 1, panel=(1.6 + 0.055 * names + 0.62 * width, height))
    random_weights_note(fig, records)
    for ax, task in zip(axes, tasks):
        langs = [lang for _, members in layouts[task] for lang in members]
        values = [[accuracy[k].languages[lang].mean * 100 if lang in accuracy[k].languages else float("nan")
                   for lang in langs] for k in rows[task]]
        image = ax.imshow(values, cmap="cividis", aspect="auto")
        annotate_cells(ax, values, image.get_clim())
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(rows[task])), [f"{k[1]} ({method_label(ids[k])})" for k in rows[task]])
        ax.grid(False)
        grouped = mark_groups(ax, layouts[task])
        ax.set_title(f"Accuracy per language (%) · {task} · {rows[task][0][2]}", pad=16 if grouped else 6)
        ax.set_xlabel("language (ISO 639-1)" + (", grouped by resource level" if grouped else ""))
        fig.colorbar(image, ax=ax, label="accuracy (%)", shrink=0.9)
    return fig


def prefix_overhead(records: list[Record]):
    latency, ids, dense = per_cell(records, "latency", "latency_ms_p50"), identities(records), dense_variants(records)
    # Prompts on the pretrained backbone (on a sparse base, the base's speedup would blur the prompt's cost).
    prompts = [(k, s) for k, s in latency if ids[k].get("method") in ("prompt", "soft_prompt") and not ids[k].get("base_variant")]
    if not prompts:
        return "no prompt variants with latency records"
    task = prompts[0][0][0]
    batch = reference_shape(latency, task)[0]
    prompts = [(k, s) for k, s in prompts if k[0] == task and s[0] == batch]
    backends = list(dict.fromkeys(k[2] for k, _ in prompts))
    fig, axes = new_figure(1, len(backends), panel=(4.6, 3.8), sharey=True)
    for ax, backend in zip(axes, backends):
        seqs = sorted({s[1] for k, s in prompts if k[2] == backend}, key=lambda t: t or 0)
        kinds = list(dict.fromkeys(_prompt_kind(ids[k]) for k, _ in prompts if k[2] == backend))
        series = [(kind, seq) for kind in kinds for seq in seqs]
        for n, (kind, seq) in enumerate(series):
            cells = [(k, s) for k, s in prompts if k[2] == backend and s[1] == seq and _prompt_kind(ids[k]) == kind]
            points = sorted([(0, 0.0, 0.0, 0.0)] + [p for k, s in cells
                                                    if (p := _overhead(latency, k, s, dense, ids[k])) is not None])
            if len(points) < 2:
                continue
            lengths, overheads, below, above = zip(*points)
            dodge = (n - (len(series) - 1) / 2) * 0.01 * max(lengths)  # error bars of equal P side by side, not on top
            i, method = seqs.index(seq), kind[0]
            ax.errorbar([x + dodge for x in lengths], overheads, yerr=[below, above], capsize=3,
                        linestyle=LINESTYLES[i % len(LINESTYLES)], color=method_style(method).colour,
                        marker=style(kinds.index(kind))["marker"], label=f"{kind[1]} · T = {seq}")
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set(xlabel="prompt length P (virtual tokens)",
               title=f"Prompt overhead · {task} · {backend} · B = {batch}")
        ax.legend(loc="upper left", title="prompt · sequence length")
    axes[0].set_ylabel("latency overhead vs dense (%, bars: 95% CI)")
    return fig


def throughput_vs_batch(records: list[Record]):
    latency = per_cell(records, "latency", "throughput_samples_per_s")
    if not latency:
        return "no latency records with throughput"
    task = next(iter(latency))[0][0]
    seq = reference_shape(latency, task)[1]
    cells = {(k, s): r for (k, s), r in latency.items() if k[0] == task and s[1] == seq}
    batches = sorted({s[0] for _, s in cells})
    if len(batches) < 2:
        return f"one batch size measured ({batches[0]}); throughput vs batch size needs two or more"
    backends = list(dict.fromkeys(k[2] for k, _ in cells))
    variants = list(dict.fromkeys(k[1] for k, _ in cells))
    fig, axes = new_figure(1, len(backends), panel=(4.8, 3.8), sharey=True)
    for ax, backend in zip(axes, backends):
        series: dict[tuple, list] = defaultdict(list)
        for (k, s), r in cells.items():
            if k[2] == backend:
                series[k].append((s[0], r["throughput_samples_per_s"]))
        for k, points in series.items():
            points.sort()
            ax.plot([b for b, _ in points], [t for _, t in points], label=k[1], **style(variants.index(k[1])))
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set(xlabel="batch size", title=f"Throughput vs batch · {task} · {backend} · T = {seq}")
        ax.legend(loc="upper left")
    axes[0].set_ylabel("throughput (samples/s, from p50)")
    return fig


PLOTS: tuple[tuple[str, str, Callable[[list[Record]], Any]], ...] = (
    ("latency_vs_sparsity", "Latency vs sparsity per method and backend", latency_vs_sparsity),
    ("accuracy_vs_sparsity", "Accuracy vs sparsity", accuracy_vs_sparsity),
    ("pareto", "Accuracy-latency Pareto front", pareto),
    ("accuracy_heatmap", "Accuracy per language", accuracy_heatmap),
    ("prefix_overhead", "Prompt length vs latency overhead (P-tuning v2 and soft prompts)", prefix_overhead),
    ("throughput_vs_batch", "Throughput vs batch size", throughput_vs_batch),
)


def write_plots(records: list[Record], out_dir: Path) -> list[Plot]:
    """Every plot the records support, as PNG and SVG; stale files of plots now skipped are removed."""
    plots = []
    for name, title, build in PLOTS:
        try:
            fig = rendered(build, records)
        except Exception as exc:  # one plot that cannot cope with odd records must not cost the rest of the report
            fig = f"failed: {type(exc).__name__}: {exc}"
        if isinstance(fig, str):
            for suffix in (".png", ".svg"):
                (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
            plots.append(Plot(name, title, skipped=fig))
            continue
        png, svg = save(fig, out_dir, name)
        plots.append(Plot(name, title, png, svg))
    return plots


def _prompt_kind(identity: Record) -> tuple[str, str]:
    """(method, how it runs): a P-tuning v2 prefix, or a soft prompt at the input or folded into keys and values."""
    if identity.get("method") == "soft_prompt":
        return "soft_prompt", f"soft prompt, {identity.get('soft_prompt_inference') or 'input'}"
    return "prompt", "P-tuning v2 prefix"


def _overhead(latency: dict, key: tuple, shape: tuple, dense: dict, identity: Record):
    """(P, overhead %, lower error, upper error) of a prompt cell against dense at the same shape, or None."""
    gain = speedup(latency[(key, shape)], latency.get((dense_key(key, dense), shape)))
    ratio = latency[(key, shape)].get("prefix_overhead_vs_dense") or (1 / gain.value if gain else None)
    if ratio is None:
        return None
    low, high = (1 / gain.high, 1 / gain.low) if gain and gain.low else (ratio, ratio)
    return identity.get("prompt_length") or 0, (ratio - 1) * 100, (ratio - low) * 100, (high - ratio) * 100
