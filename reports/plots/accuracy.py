"""The accuracy plots: accuracy vs sparsity (95% intervals, the chance line, an axis at least 20 points tall) and
the per-language heatmap (language groups on their own top axis, clear of the title)."""

from __future__ import annotations

from reports.cells import (
    Record, accuracy_rows, dense_key, dense_variants, identities, language_layout, reference_backend,
)
from reports.method_style import SPARSE_METHODS, method_label, method_style
from reports.plots.axes import (
    INTERVAL_NOTE, MIN_ACCURACY_SPAN, accuracy_interval, accuracy_span, accuracy_ylim, dodge, draw_chance,
)
from reports.plots.figure import annotate_cells, backend_marker, error_bars, mark_groups, new_figure, random_weights_note

SPARSE = SPARSE_METHODS
NUDGE = 1.2  # percentage points between methods at the same sparsity


def accuracy_vs_sparsity(records: list[Record]):
    accuracy, ids, dense = accuracy_rows(records), identities(records), dense_variants(records)
    backends = {task: reference_backend(list(accuracy), task) for task in {k[0] for k in accuracy}}
    sparse = [k for k in accuracy if ids[k].get("method") in SPARSE and k[2] == backends[k[0]]]
    tasks = list(dict.fromkeys(k[0] for k in sparse))
    if not tasks:
        return "no sparse variants (unstructured, semi24 or structured) with accuracy records"
    fig, axes = new_figure(1, len(tasks), panel=(5.0, 3.9))
    for ax, task in zip(axes, tasks):
        backend = backends[task]
        keys = [k for k in accuracy if k[0] == task and k[2] == backend]
        methods = list(dict.fromkeys(ids[k].get("method") for k in sparse if k[0] == task))
        extent: list[float] = []
        for m, method in enumerate(methods):
            members = [k for k in keys if ids[k].get("method") == method]
            ref = dense_key(members[0], dense)
            points = sorted(([(0.0, accuracy[ref])] if ref in accuracy else []) +
                            [(ids[k].get("sparsity") or 0.0, accuracy[k]) for k in members], key=lambda p: p[0])
            ys = [a.overall.mean * 100 for _, a in points]
            bounds = [(lambda i: (i[0] * 100, i[1] * 100) if i else (None, None))(accuracy_interval(a))
                      for _, a in points]
            ax.errorbar([s * 100 + dodge(m, len(methods), NUDGE) for s, _ in points], ys,
                        yerr=error_bars(ys, bounds), capsize=3, color=method_style(method).colour,
                        marker=backend_marker(backend), label=method_style(method).name)
            extent += ys + [b for pair in bounds for b in pair if b is not None]
        level = draw_chance(ax, task)
        accuracy_ylim(ax, extent + ([level] if level is not None else []))
        ax.set(xlabel="sparsity of the decoder linears (%)", ylabel="mean accuracy over languages (%)",
               title=f"Accuracy vs sparsity · {task} · {backend}")
    legend = {}  # one legend under the panels: a method's colour is the same in each
    for ax in axes:
        legend.update({name: handle for handle, name in zip(*ax.get_legend_handles_labels())})
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(len(legend), 4),
               title=INTERVAL_NOTE, title_fontsize=7.5)
    random_weights_note(fig, records)
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
    height = max(2.4, 1.6 + 0.34 * max(len(r) for r in rows.values()))
    names = max(len(f"{k[1]} ({method_label(ids[k])})") for t in tasks for k in rows[t])  # y labels, in characters
    fig, axes = new_figure(len(tasks), 1, panel=(1.6 + 0.055 * names + 0.62 * width, height))
    random_weights_note(fig, records)
    for ax, task in zip(axes, tasks):
        langs = [lang for _, members in layouts[task] for lang in members]
        values = [[accuracy[k].languages[lang].mean * 100 if lang in accuracy[k].languages else float("nan")
                   for lang in langs] for k in rows[task]]
        present = [v for row in values for v in row if v == v]
        low, high = accuracy_span(present, MIN_ACCURACY_SPAN) if present else (0.0, 100.0)
        image = ax.imshow(values, cmap="cividis", aspect="auto", vmin=low, vmax=high)  # no 2-point colour cliffs
        annotate_cells(ax, values, image.get_clim())
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(rows[task])), [f"{k[1]} ({method_label(ids[k])})" for k in rows[task]])
        ax.grid(False)
        grouped = mark_groups(ax, layouts[task])
        ax.set_title(f"Accuracy per language (%) · {task} · {rows[task][0][2]}")
        ax.set_xlabel("language (ISO 639-1)" + (", grouped by resource level" if grouped else ""))
        fig.colorbar(image, ax=ax, label="accuracy (%)", shrink=0.9)
    return fig
