"""The prompt-overhead plot: latency overhead against dense vs prompt length P, one panel per task and backend,
one series per kind of prompt (P-tuning v2 with or without its MLP, soft prompt at the input or in the keys and
values) and sequence length; a task with prompt variants but no timings is named on the figure."""

from __future__ import annotations

from bench.data.tasks import TASKS
from reports.cells import Record, dense_key, dense_variants, identities, per_cell, reference_shape, speedup
from reports.method_style import PROMPT_METHODS, method_style
from reports.plots.axes import near_limits
from reports.plots.figure import LINESTYLES, new_figure

_PROMPTS = PROMPT_METHODS
_KIND_MARKERS = {"P-tuning v2 prefix": "o", "P-tuning v2 prefix, MLP": "D", "soft prompt, input": "s",
                 "soft prompt, kv": "^"}


def prefix_overhead(records: list[Record]):
    latency, ids, dense = per_cell(records, "latency", "latency_ms_p50"), identities(records), dense_variants(records)
    # Prompts on the pretrained backbone (on a sparse base, the base's speedup would blur the prompt's cost).
    prompts = [(k, s) for k, s in latency if ids[k].get("method") in _PROMPTS and not ids[k].get("base_variant")]
    if not prompts:
        return "no prompt variants with latency records"
    tasks = list(dict.fromkeys(k[0] for k, _ in prompts))
    batches = {task: reference_shape(latency, task)[0] for task in tasks}
    prompts = [(k, s) for k, s in prompts if s[0] == batches[k[0]]]
    panels = list(dict.fromkeys((k[0], k[2]) for k, _ in prompts))
    backends = list(dict.fromkeys(b for _, b in panels))
    fig, grid = new_figure(len(tasks), len(backends), panel=(4.8, 3.8), sharey=True)
    values: list[tuple] = []  # (axes, x, overhead, bar end below, bar end above), all panels
    for t, task in enumerate(tasks):
        for b, backend in enumerate(backends):
            ax = grid[t * len(backends) + b]
            if (task, backend) not in panels:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"{task} · {backend}: no prompt timings", ha="center", transform=ax.transAxes)
                continue
            values += _panel(ax, [(k, s) for k, s in prompts if k[0] == task and k[2] == backend], latency, dense, ids)
            ax.set_title(f"Prompt overhead · {task} · {backend} · B = {batches[task]}")
            ax.set_xlabel("prompt length P (virtual tokens)")
        grid[t * len(backends)].set_ylabel("latency overhead vs dense (%, bars: 95% CI)")
    if values:  # shared y: one very wide interval runs off the edge instead of flattening every panel
        low, high = near_limits([v[2] for v in values], [e for v in values for e in v[3:]])
        grid[0].set_ylim(low, high)
        _label_clipped(values, low, high)
    untimed = sorted({r.get("task") for r in records if r.get("method") in _PROMPTS} - set(tasks) - {None})
    absent = [t for t in TASKS if t not in {r.get("task") for r in records}]
    notes = [f"{t}: its prompt variants have no latency records" for t in untimed]
    notes += [f"{t}: not a task of this run" for t in absent]
    if notes:  # the figure says which task it leaves out, and why
        fig.text(0.01, 0.0, "not drawn: " + "; ".join(notes), fontsize=8, color="0.3", va="top", gid="untimed")
    return fig


def _panel(ax, cells, latency, dense, ids) -> list[tuple]:
    """Draws one panel; returns (axes, x, overhead, bar end below, bar end above) of every point."""
    seqs = sorted({s[1] for _, s in cells}, key=lambda t: t or 0)
    kinds = list(dict.fromkeys(_prompt_kind(ids[k]) for k, _ in cells))
    series = [(kind, seq) for kind in kinds for seq in seqs]
    drawn = []
    for n, (kind, seq) in enumerate(series):
        members = [(k, s) for k, s in cells if s[1] == seq and _prompt_kind(ids[k]) == kind]
        points = sorted([(0, 0.0, 0.0, 0.0)] + [p for k, s in members
                                                if (p := _overhead(latency, k, s, dense, ids[k])) is not None])
        if len(points) < 2:
            continue
        lengths, overheads, below, above = zip(*points)
        nudge = (n - (len(series) - 1) / 2) * 0.012 * max(lengths)  # error bars of equal P side by side
        method, name = kind
        hollow = {"markerfacecolor": "white"} if name.endswith("MLP") or name.endswith("kv") else {}
        ax.errorbar([x + nudge for x in lengths], overheads, yerr=[below, above], capsize=3,
                    linestyle=LINESTYLES[seqs.index(seq) % len(LINESTYLES)], color=method_style(method).colour,
                    marker=_KIND_MARKERS.get(name, "v"), label=f"{name} · T = {seq}", **hollow)
        drawn += [(ax, x + nudge, v, v - lo, v + hi) for x, v, lo, hi in zip(lengths, overheads, below, above)]
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.legend(loc="best", title="prompt · sequence length")
    return drawn


def _label_clipped(values: list[tuple], low: float, high: float) -> None:
    """An error bar that runs off the shared axis says where it ends, so a clipped interval never reads as short."""
    for ax, x, _, below, above in values:
        if above > high:
            ax.annotate(f"CI to {above:+.0f} %", (x, high), xytext=(-4, -10), textcoords="offset points",
                        ha="right", fontsize=7, color="0.3", gid="clipped")
        if below < low:
            ax.annotate(f"CI to {below:+.0f} %", (x, low), xytext=(-4, 4), textcoords="offset points",
                        ha="right", fontsize=7, color="0.3", gid="clipped")


def _prompt_kind(identity: Record) -> tuple[str, str]:
    """(method, how it runs): a P-tuning v2 prefix with or without its reparametrizing MLP, or a soft prompt at
    the input or folded into keys and values. Each is its own series: their costs differ."""
    if identity.get("method") == "soft_prompt":
        return "soft_prompt", f"soft prompt, {identity.get('soft_prompt_inference') or 'input'}"
    return "prompt", "P-tuning v2 prefix" + (", MLP" if identity.get("prompt_mlp") else "")


def _overhead(latency: dict, key: tuple, shape: tuple, dense: dict, identity: Record):
    """(P, overhead %, lower error, upper error) of a prompt cell against dense at the same shape, or None."""
    gain = speedup(latency[(key, shape)], latency.get((dense_key(key, dense), shape)))
    ratio = latency[(key, shape)].get("prefix_overhead_vs_dense") or (1 / gain.value if gain else None)
    if ratio is None:
        return None
    low, high = (1 / gain.high, 1 / gain.low) if gain and gain.low else (ratio, ratio)
    return identity.get("prompt_length") or 0, (ratio - 1) * 100, (ratio - low) * 100, (high - ratio) * 100
