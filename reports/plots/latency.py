"""The timing plots: latency vs sparsity (with the FLOP-ideal lines and the masked-dense control's 1.00x) and
throughput vs batch size. Colour is the method's (reports.method_style), marker and line style the backend's."""

from __future__ import annotations

import textwrap
from collections import defaultdict

from reports.cells import Record, dense_key, dense_variants, identities, per_cell, reference_shape, shape_label, speedup
from reports.method_style import SPARSE_METHODS, method_style
from reports.plots.axes import dodge
from reports.plots.figure import LINESTYLES, MARKERS, backend_line, backend_marker, error_bars, new_figure

SPARSE = SPARSE_METHODS
CONTROL = "unstructured"  # masked dense: zeros in dense kernels, expected at 1.00x dense (as the summary view)
FLAG = "#b00020"
IDEAL_MARKERS = ("D", "v", "^", "s")  # hollow, so a measured point under an ideal one still shows
NUDGE = 1.2  # percentage points between methods at the same sparsity, so 2:4 and unstructured 50 % both show


def latency_vs_sparsity(records: list[Record]):
    latency, ids, dense = per_cell(records, "latency", "latency_ms_p50"), identities(records), dense_variants(records)
    sparse = [key for key, _ in latency if ids[key].get("method") in SPARSE]
    if not sparse:
        return "no sparse variants (unstructured, semi24 or structured) with latency records"
    task = sparse[0][0]
    shape = reference_shape(latency, task)
    fig, (ax,) = new_figure(panel=(7.6, 4.6))
    methods = list(dict.fromkeys(ids[k].get("method") for k in sparse if k[0] == task))
    series = list(dict.fromkeys((k[2], k[3]) for k in sparse if k[0] == task))
    flags, ideal_drawn = [], set()
    for backend, dtype in series:
        rows = [k for k in ids if k[0] == task and k[2:4] == (backend, dtype)]
        base = latency.get((dense_key(rows[0], dense), shape)) if rows else None
        if base:  # where dense sits is where every masked-dense control should sit: 1.00x
            ax.axhline(base["latency_ms_p50"], color=method_style("dense").colour, linewidth=0.8, alpha=0.6,
                       linestyle=backend_line(backend), gid="control-expected",
                       label=f"dense p50 · {backend}: a masked-dense control's expected 1.00x")
        for m, method in enumerate(methods):
            keys = [k for k in rows if ids[k].get("method") == method]
            cells = sorted(((ids[k].get("sparsity") or 0.0, k) for k in keys if (k, shape) in latency),
                           key=lambda c: c[0])
            points = sorted(([(0.0, base)] if base else []) + [(s, latency[(k, shape)]) for s, k in cells],
                            key=lambda p: p[0])
            if len(points) < 2:
                continue
            colour, nudge = method_style(method).colour, dodge(m, len(methods), NUDGE)
            xs, ys = [s * 100 + nudge for s, _ in points], [r["latency_ms_p50"] for _, r in points]
            bounds = [(r.get("latency_ms_ci95_low"), r.get("latency_ms_ci95_high")) for _, r in points]
            ax.errorbar(xs, ys, yerr=error_bars(ys, bounds), linestyle=backend_line(backend), capsize=3, color=colour,
                        marker=backend_marker(backend), label=f"{method_style(method).name} · {backend} {dtype}")
            if method == CONTROL and base:
                flags += _stray_controls(ax, cells, latency, shape, base, nudge, backend)
            ideal = [(s * 100 + nudge, base["latency_ms_p50"] / ids[k]["speedup_ideal"])
                     for s, k in cells if ids[k].get("speedup_ideal")] if base else []
            if ideal and method not in ideal_drawn:  # once per method: the ideal is the same on every backend
                ideal_drawn.add(method)
                last = [s for s, k in cells if ids[k].get("speedup_ideal")][-1]
                ax.plot([nudge] + [x for x, _ in ideal], [base["latency_ms_p50"]] + [y for _, y in ideal],
                        linestyle=(0, (1, 2)), linewidth=1.2, color=colour, markersize=6, markerfacecolor="white",
                        marker=IDEAL_MARKERS[len(ideal_drawn) % len(IDEAL_MARKERS)], gid=f"ideal-{method}", zorder=4,
                        label=f"{method_style(method).name}: ideal {base['latency_ms_p50'] / ideal[-1][1]:.2f}x at "
                              f"{last:.0%} (FLOPs; vs {backend} dense)")
    ax.set(xlabel="sparsity of the decoder linears (%; methods nudged apart by ~1 point)", ylabel="p50 latency (ms)",
           ylim=(0, None), title=f"Latency vs sparsity · {task} · B x T = {shape_label(shape)} (bars: 95% CI)")
    if flags:  # under the legend, in words: the ring on the point says which one
        ax.text(1.03, 0.0, "\n".join(textwrap.fill(line, 58, subsequent_indent="   ") for line in flags),
                transform=ax.transAxes, fontsize=7.5, color=FLAG, va="bottom", ha="left", gid="control-flag")
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: ("ideal" in names[i], "dense p50" in names[i]))
    ax.legend([handles[i] for i in order], [names[i] for i in order], loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="method · backend")
    return fig


def _stray_controls(ax, cells, latency, shape, base, nudge, backend) -> list[str]:
    """Ring each masked-dense control whose speedup interval excludes 1.00x, and say it in words."""
    lines = []
    for sparsity, key in cells:
        gain = speedup(latency[(key, shape)], base)
        if gain and gain.excludes_one:
            ax.plot(sparsity * 100 + nudge, latency[(key, shape)]["latency_ms_p50"], marker="o", markersize=16,
                    markerfacecolor="none", markeredgecolor=FLAG, markeredgewidth=1.4, linestyle="none")
            lines.append(f"! {key[1]} · {backend}: {gain.value:.2f}x dense ({gain.bounds_text()}); "
                         "a masked-dense control should give 1.00x")
    return lines


def throughput_vs_batch(records: list[Record]):
    latency, ids = per_cell(records, "latency", "throughput_samples_per_s"), identities(records)
    if not latency:
        return "no latency records with throughput"
    task = next(iter(latency))[0][0]
    seq = reference_shape(latency, task)[1]
    cells = {(k, s): r for (k, s), r in latency.items() if k[0] == task and s[1] == seq}
    batches = sorted({s[0] for _, s in cells})
    if len(batches) < 2:
        return f"one batch size measured ({batches[0]}); throughput vs batch size needs two or more"
    backends = list(dict.fromkeys(k[2] for k, _ in cells))
    within: dict[object, list] = defaultdict(list)  # method -> its variants: marker and line tell them apart
    for k, _ in cells:
        if k[1] not in within[ids[k].get("method")]:
            within[ids[k].get("method")].append(k[1])
    fig, axes = new_figure(1, len(backends), panel=(4.8, 3.8), sharey=True)
    for ax, backend in zip(axes, backends):
        series: dict[tuple, list] = defaultdict(list)
        for (k, s), r in cells.items():
            if k[2] == backend:
                series[k].append((s[0], r["throughput_samples_per_s"]))
        for k, points in series.items():
            points.sort()
            n = within[ids[k].get("method")].index(k[1])
            ax.plot([b for b, _ in points], [t for _, t in points], label=k[1],
                    color=method_style(ids[k].get("method")).colour, marker=MARKERS[n % len(MARKERS)],
                    linestyle=LINESTYLES[n % len(LINESTYLES)])
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set(xlabel="batch size", title=f"Throughput vs batch · {task} · {backend} · T = {seq}")
        ax.legend(loc="upper left", title="variant (colour: method)")
    axes[0].set_ylabel("throughput (samples/s, from p50)")
    return fig
