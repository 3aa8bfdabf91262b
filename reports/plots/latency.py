"""The timing plots: speed-up vs sparsity (each sparse kernel's paired speed-up over dense beside its masked-dense
control and the FLOP ideal, one panel per backend) and throughput vs batch size. Colour is the method's
(reports.method_style); in the sparsity plot marker and line are the kernel's, elsewhere the backend's."""

from __future__ import annotations

import textwrap
from collections import defaultdict

from bench import plugins
from reports.claims import ClaimRule
from reports.cells import Record, dense_key, dense_variants, identities, per_cell, reference_shape, shape_label, speedup
from reports.method_style import SPARSE_METHODS, method_style
from reports.plots.axes import dodge
from reports.plots.figure import LINESTYLES, MARKERS, backend_line, backend_marker, error_bars, new_figure

SPARSE = SPARSE_METHODS
MASKED = plugins.methods_where("masked")  # zeros kept in place: its cell without a kernel is the masked-dense control
FLAG = "#b00020"
IDEAL_MARKERS = ("D", "v", "^", "s")  # hollow, so a measured point under an ideal one still shows
NUDGE = 1.2  # percentage points between series at the same sparsity, so 2:4 and unstructured 50 % both show
# How each kernel is drawn and named; None: a method that runs its own smaller shapes (structured pruning).
KERNELS = {"dense": ("o", ":", "masked dense (control)"), "csr": ("s", "-", "CSR"), "bsr": ("D", "-", "BSR"),
           "2:4": ("P", "-", "2:4"), "auto": ("^", "--", "auto"), None: ("v", "-", "smaller GEMMs")}


def kernel_of(record: Record) -> str | None:
    """The cell's kernel; a masked method's record from before kernels existed is its masked-dense control."""
    return record.get("sparse_kernel") or ("dense" if record.get("method") in MASKED else None)


def latency_vs_sparsity(records: list[Record]):
    latency, ids, dense = per_cell(records, "latency", "latency_ms_p50"), identities(records), dense_variants(records)
    sparse = [key for key, _ in latency if ids[key].get("method") in SPARSE]
    if not sparse:
        return "no sparse variants (unstructured, block, semi24 or structured) with latency records"
    task = sparse[0][0]
    shape = reference_shape(latency, task)
    panels = list(dict.fromkeys((k[2], k[3]) for k in sparse if k[0] == task and (k, shape) in latency))
    if not panels:
        return f"no sparse variant of {task} was timed at the reference shape {shape_label(shape)}"
    fig, axes = new_figure(ncols=len(panels), panel=(5.2, 4.2), sharey=True)
    legend: dict[str, object] = {}
    for ax, (backend, dtype) in zip(axes, panels):
        rows = [k for k in ids if k[0] == task and k[2:4] == (backend, dtype) and (k, shape) in latency]
        base_key = dense_key(rows[0], dense)
        base = latency.get((base_key, shape)) if base_key else None
        ax.axhline(1.0, color=method_style("dense").colour, linewidth=0.8, alpha=0.6, gid="control-expected",
                   label="dense = 1.00x (where a masked-dense control belongs)")
        series = defaultdict(list)  # (method, kernel) -> [(sparsity, key)]
        for key in rows:
            if ids[key].get("method") in SPARSE:
                series[(ids[key]["method"], kernel_of(latency[(key, shape)]))].append((ids[key].get("sparsity") or 0.0, key))
        flags, rule = [], ClaimRule.of([latency[(k, shape)] for k in rows])
        for i, ((method, kernel), cells) in enumerate(sorted(series.items(), key=lambda s: (s[0][0], str(s[0][1])))):
            marker, line, kernel_name = KERNELS.get(kernel, ("X", "-", str(kernel)))
            colour, nudge = method_style(method).colour, dodge(i, len(series), NUDGE)
            cells.sort(key=lambda c: c[0])
            gains = [(s, k, speedup(latency[(k, shape)], base)) for s, k in cells]
            gains = [(s, k, g) for s, k, g in gains if g is not None]
            if not gains:
                continue
            xs, ys = [0.0] + [s * 100 + nudge for s, _, _ in gains], [1.0] + [g.value for _, _, g in gains]
            bounds = [(None, None)] + [(g.low, g.high) for _, _, g in gains]
            ax.errorbar(xs, ys, yerr=error_bars(ys, bounds), linestyle=line, capsize=3, color=colour, marker=marker,
                        markerfacecolor="white" if kernel == "dense" else colour,
                        label=f"{method_style(method).name} · {kernel_name}")
            if kernel == "dense":
                flags += _stray_controls(ax, gains, nudge, backend, latency, shape, rule)
        _ideals(ax, rows, ids, latency, shape)
        ax.set(xlabel="sparsity of the decoder linears (%; series nudged apart by ~1 point)", yscale="log",
               title=f"{backend} {dtype} · {task} · B x T = {shape_label(shape)}")
        ax.minorticks_off()
        if flags:  # in words, in the panel's top left (speed-ups start at 1x on the left): the ring says which
            ax.text(0.02, 0.98, "\n".join(textwrap.fill(line, 52, subsequent_indent="   ") for line in flags),
                    transform=ax.transAxes, fontsize=7, color=FLAG, va="top", ha="left", gid="control-flag")
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    _ratio_axis(axes)
    axes[0].set_ylabel("speed-up vs dense, same backend (paired, 95% CI)")
    order = sorted(legend, key=lambda name: ("ideal" in name, "dense =" in name, name))
    fig.legend([legend[n] for n in order], order, loc="outside lower center", ncols=min(3, len(order)), fontsize=7.5,
               frameon=False)
    return fig


def _ratio_axis(axes) -> None:
    """A log axis spanning the panels' points and bars (at least 0.8x-1.25x), ticked at the powers of two in it."""
    ys = [y for ax in axes for line in ax.lines for y in line.get_ydata() if y and y > 0]
    low, high = min([0.8, *ys]) / 1.1, max([1.25, *ys]) * 1.15
    ticks = [t for t in (0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32) if low <= t <= high]
    axes[0].set_ylim(low, high)
    axes[0].set_yticks(ticks, labels=[f"{t:g}x" for t in ticks])


def _ideals(ax, rows, ids, latency, shape) -> None:
    """Per method, the FLOP ideal at each sparsity (Amdahl over the linears, from the panel's own records: what
    the best of its cells could execute), dotted with hollow markers and its last value written at the end."""
    by_method = defaultdict(dict)
    for key in rows:
        ideal, method = ids[key].get("speedup_ideal"), ids[key].get("method")
        if ideal and method in SPARSE:
            sparsity = ids[key].get("sparsity") or 0.0
            by_method[method][sparsity] = max(ideal, by_method[method].get(sparsity, 0.0))
    for m, (method, points) in enumerate(sorted(by_method.items())):
        colour = method_style(method).colour
        xs, ys = [0.0] + [s * 100 for s in sorted(points)], [1.0] + [points[s] for s in sorted(points)]
        ax.plot(xs, ys, linestyle=(0, (1, 2)), linewidth=1.2, color=colour, markersize=5, markerfacecolor="white",
                marker=IDEAL_MARKERS[m % len(IDEAL_MARKERS)], gid=f"ideal-{method}", zorder=1,
                label=f"{method_style(method).name}: FLOP ideal")
        if ys[-1] > 1.01:  # an ideal of 1.0x (dense zeros) sits on the axis line; no number needed
            ax.annotate(f"{ys[-1]:.1f}x", (xs[-1], ys[-1]), xytext=(4, 0), textcoords="offset points",
                        fontsize=7, color=colour, va="center")


def _stray_controls(ax, gains, nudge, backend, latency, shape, rule: ClaimRule) -> list[str]:
    """Ring each masked-dense control whose ratio the Findings would claim (its interval excludes 1.00x by more
    than the run's floor, after Holm: reports.claims), and say it in words."""
    lines = []
    for sparsity, key, gain in gains:
        if gain.excludes_one and rule.verdict(latency[(key, shape)], "speedup_vs_dense",
                                              (gain.value, gain.low, gain.high)).claimed:
            ax.plot(sparsity * 100 + nudge, gain.value, marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor=FLAG, markeredgewidth=1.4, linestyle="none")
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
    _ratio_axis(axes)
    axes[0].set_ylabel("throughput (samples/s, from p50)")
    return fig
