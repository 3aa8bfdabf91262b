"""What the report plots show, read off the figure objects: one colour per method across plots, every Pareto point
labelled with error bars and an outlier at the edge, one prompt-overhead series per kind and task, the
masked-dense control's 1.00x and a stray control flagged, visible 2:4 ideals, chance lines and a y-span that does
not magnify one example, heatmap group labels clear of the title."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from reports.method_style import METHOD_STYLES, method_style
from reports.plots import (
    accuracy_heatmap, accuracy_vs_sparsity, latency_vs_sparsity, pareto, prefix_overhead, throughput_vs_batch,
)
from reports.plots.figure import rendered

RUN = Path(__file__).parent / "fixtures" / "recorded" / "synthetic-study" / "results.jsonl"
BUILDERS = (latency_vs_sparsity, accuracy_vs_sparsity, pareto, accuracy_heatmap, prefix_overhead, throughput_vs_batch)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in RUN.read_text().splitlines()]


def _variant(records: list[dict], source: str, name: str, **changes) -> list[dict]:
    """Every record of variant `source` again, as variant `name` with `changes`."""
    return [{**copy.deepcopy(r), "variant": name, **changes} for r in records if r["variant"] == source]


def _legend_colours(fig) -> dict[str, str]:
    """Legend text -> the colour of its handle, over every legend of the figure."""
    from matplotlib.colors import to_hex

    out = {}
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if legend is None:
            continue
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            line = handle.lines[0] if hasattr(handle, "lines") else handle
            out[text.get_text()] = to_hex(line.get_color())
    return out


def test_a_method_has_the_same_colour_in_every_plot(records):
    variant_method = {r["variant"]: r["method"] for r in records}
    checked = {}
    for build in BUILDERS:
        fig = rendered(build, records)
        for text, colour in _legend_colours(fig).items():
            name = text.split(" · ")[0].split(":")[0]
            method = variant_method.get(name) or next((m for m, s in METHOD_STYLES.items() if s.name == name), None)
            if method is not None:
                assert colour == method_style(method).colour.lower(), (build.__name__, text, colour)
                checked.setdefault(method, set()).add(build.__name__)
    assert checked["unstructured"] >= {"latency_vs_sparsity", "accuracy_vs_sparsity", "pareto", "throughput_vs_batch"}
    assert checked["dense"] >= {"pareto", "throughput_vs_batch"}


@pytest.mark.parametrize("extra", [0, 3], ids=["named", "numbered"])
def test_every_pareto_point_has_its_label_and_both_error_bars(records, extra):
    """Up to 12 points a panel carry their variant's name; more carry a number that the legend's key names."""
    timing = ("latency_ms_p50", "latency_ms_ci95_low", "latency_ms_ci95_high")
    more = [{**r, **{t: r[t] * (1.03 + 0.03 * n) for t in timing if r.get(t)}}
            for n in range(extra) for r in _variant(records, "prompt-p16", f"prompt-p16-copy{n}")]
    fig = rendered(pareto, records + more)
    key = {text.split("  ")[0]: text.split("  ")[1] for text in _legend_colours(fig) if "  " in text}
    assert len(key) == (0 if extra == 0 else 9)
    for ax in fig.axes:
        points = [c for c in ax.containers if (c.lines[0].get_gid() or "").startswith("point-")]
        assert len(points) >= 11 + 2 * extra
        labels = {(round(a.xy[0], 6), round(a.xy[1], 6)): a.get_text() for a in ax.texts if hasattr(a, "xy")}
        for container in points:
            (x,), (y,) = container.lines[0].get_data()
            variant = container.lines[0].get_gid().split("-", 1)[1].rsplit("-", 1)[0]
            label = labels.get((round(x, 6), round(y, 6)))
            assert key.get(label, label) == variant
            assert container.has_xerr and container.has_yerr


def test_a_far_off_pareto_point_is_an_arrow_at_the_edge(records):
    slow = [dict(r) for r in records]
    for r in slow:
        if r["variant"] == "prompt-p64" and r["backend"] == "eager" and r.get("latency_ms_p50"):
            for key in ("latency_ms_p50", "latency_ms_ci95_low", "latency_ms_ci95_high"):
                r[key] = r[key] * 20
    ax = rendered(pareto, slow).axes[0]
    (flag,) = [t for t in ax.texts if t.get_gid() == "outlier"]
    assert flag.get_text().startswith("prompt-p64 · eager: 1.15e+03 ms")
    assert ax.get_xlim()[1] < 100  # the other points keep the axis: 30-58 ms
    assert not any("prompt-p64-eager" == (c.lines[0].get_gid() or "")[6:] for c in ax.containers)


def test_the_pareto_front_is_ringed_and_no_rule_joins_a_variants_backends(records):
    from reports.plots.figure import pareto_front

    for ax in rendered(pareto, records).axes:
        (ring,) = [line for line in ax.lines if line.get_gid() == "pareto-front"]
        points = [c.lines[0].get_data() for c in ax.containers if (c.lines[0].get_gid() or "").startswith("point-")]
        assert [tuple(p) for p in zip(*ring.get_data())] == pareto_front([(x[0], y[0]) for x, y in points])
        # Dashed is the chance line's alone, and the only solid rule is the front's staircase.
        rules = [line for line in ax.lines if line.get_linestyle() not in ("None", "none", " ", "")]
        assert all(line.get_gid() == "chance" or line.get_linestyle() == "-" for line in rules)
        assert len([line for line in rules if line.get_linestyle() == "-"]) <= 1


def test_prefix_overhead_draws_each_prompt_kind_per_task(records):
    mlp = [r for name in ("prompt-p16", "prompt-p64") for r in _variant(records, name, f"{name}-mlp", prompt_mlp=True)]
    fig = rendered(prefix_overhead, records + mlp)
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(" · ")[1:3] for t in titles] == [["xnli", "eager"], ["xnli", "onnxruntime"],
                                                     ["pawsx", "eager"], ["pawsx", "onnxruntime"]]
    for ax in fig.axes:
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "P-tuning v2 prefix · T = 128" in names and "P-tuning v2 prefix, MLP · T = 128" in names
        for container in ax.containers:  # one series: P rises monotonically, no zig-zag between kinds
            xs = list(container.lines[0].get_xdata())
            assert xs == sorted(xs) and len(xs) == 3


def test_prefix_overhead_says_which_task_it_could_not_draw(records):
    untimed = [r for r in records if not (r["task"] == "pawsx" and r["scenario"] == "latency")]
    fig = rendered(prefix_overhead, untimed)
    assert len(fig.axes) == 2
    assert "not drawn: pawsx: its prompt variants have no latency records" in [t.get_text() for t in fig.texts]
    xnli_only = rendered(prefix_overhead, [r for r in records if r["task"] == "xnli"])
    assert "not drawn: pawsx: not a task of this run" in [t.get_text() for t in xnli_only.texts]
    assert not [t for t in rendered(prefix_overhead, records).texts if t.get_gid() == "untimed"]


def test_latency_vs_sparsity_marks_the_control_and_shows_the_24_ideal(records):
    semi = _variant(records, "unstructured-50", "semi24", method="semi24")
    fig = rendered(latency_vs_sparsity, records + semi)
    backends = sorted({r["backend"] for r in records if r["task"] == "xnli" and r["scenario"] == "latency"})
    assert [ax.get_title().split(" ")[0] for ax in fig.axes] == backends  # one panel per backend
    for ax in fig.axes:
        (expected,) = [line for line in ax.lines if line.get_gid() == "control-expected"]
        assert list(expected.get_ydata()) == [1.0, 1.0]  # the paired speed-up, where a control belongs
    flags = {ax.get_title().split(" ")[0]: [t for t in ax.texts if t.get_gid() == "control-flag"] for ax in fig.axes}
    (flag,) = flags["onnxruntime"]
    assert "unstructured-90 · onnxruntime: 1.05x dense" in flag.get_text().replace("\n   ", " ")
    assert not flags["eager"]
    ax = fig.axes[0]
    ideals = {line.get_gid(): line for line in ax.lines if (line.get_gid() or "").startswith("ideal-")}
    unstructured, semi24 = ideals["ideal-unstructured"], ideals["ideal-semi24"]
    assert semi24.get_marker() not in ("None", "", None) and semi24.get_marker() != unstructured.get_marker()
    assert semi24.get_color() == method_style("semi24").colour != unstructured.get_color()
    # The measured points are the records' paired speed-ups (and their intervals), not p50s.
    u90 = next(r for r in records if r["variant"] == "unstructured-90" and r["backend"] == ax.get_title().split(" ")[0]
               and r["scenario"] == "latency" and r["task"] == "xnli" and (r["batch_size"], r["seq_len"]) == (32, 128))
    drawn = [y for c in ax.containers for y in c.lines[0].get_ydata()]
    assert any(abs(y - u90["speedup_vs_dense"]) < 1e-12 for y in drawn)
    legend = fig.legends[0]
    assert len(legend.get_texts()) == len({t.get_text() for t in legend.get_texts()})  # one entry per series
    steady = rendered(latency_vs_sparsity, [r for r in records if r["variant"] != "unstructured-90"])
    assert not [t for ax in steady.axes for t in ax.texts if t.get_gid() == "control-flag"]  # only a stray one


def test_latency_vs_sparsity_draws_each_kernel_beside_its_control(records):
    """A kernel cell (`<name>@csr`) is a series of its own, drawn with the kernel's marker, beside the control."""
    kernel = _variant(records, "unstructured-90", "unstructured-90@csr", sparse_kernel="csr",
                      kernel_control="unstructured-90", speedup_vs_dense=1.7, speedup_vs_dense_ci95_low=1.6,
                      speedup_vs_dense_ci95_high=1.8)
    fig = rendered(latency_vs_sparsity, records + kernel)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Unstructured · CSR" in names or any(n.endswith(" · CSR") for n in names)
    assert any(n.endswith(" · masked dense (control)") for n in names)
    ax = fig.axes[0]
    csr = [c for c in ax.containers if c.get_label().endswith(" · CSR")]
    assert len(csr) == 1 and list(csr[0].lines[0].get_ydata())[-1] == 1.7


def test_accuracy_plots_draw_chance_and_keep_a_minimum_span(records):
    fig = rendered(accuracy_vs_sparsity, records)
    for ax, level in zip(fig.axes, (100 / 3, 50.0)):
        (chance,) = [line for line in ax.lines if line.get_gid() == "chance"]
        assert chance.get_ydata()[0] == pytest.approx(level)
        assert all(c.has_yerr for c in ax.containers)
    flat = [dict(r, accuracy=0.5 + 0.002 * i) if r["scenario"] == "accuracy" else r for i, r in enumerate(records)]
    for ax in rendered(accuracy_vs_sparsity, flat).axes + rendered(pareto, flat).axes:
        low, high = ax.get_ylim()
        assert high - low >= 20 and 0 <= low and high <= 100


def test_heatmap_group_labels_clear_the_title(records):
    fig = rendered(accuracy_heatmap, records)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_title().startswith("Accuracy per language")]  # not the colour bars
    assert len(panels) == 2
    for ax in panels:
        groups = [child for child in ax.child_axes if child.get_gid() == "groups"]
        labels = [t for t in groups[0].xaxis.get_ticklabels() if t.get_text()]
        assert [t.get_text() for t in labels] == ["high", "low"]
        low, high = ax.images[0].get_clim()
        assert high - low >= 20  # the colour scale does not turn a two-point spread into black and yellow
        title = ax.title.get_window_extent(renderer)
        for label in labels:
            box = label.get_window_extent(renderer)
            assert not box.overlaps(title) and box.y0 >= ax.get_window_extent(renderer).y1


def test_language_groups_keep_their_resource_order():
    """Records are written with sorted keys, so groups arrive as high, low, medium; tables and heatmap show
    high, medium, low."""
    from reports.cells import language_layout

    record = {"scenario": "accuracy", "status": "ok", "task": "xnli", "accuracy_by_language": {"en": 0.5, "sw": 0.4,
              "el": 0.3, "xx": 0.2}, "language_groups": {"high": ["en"], "low": ["sw"], "medium": ["el"]}}
    assert language_layout([record], "xnli") == [("high", ["en"]), ("medium", ["el"]), ("low", ["sw"]),
                                                  ("other", ["xx"])]


def test_an_interval_that_runs_off_the_prompt_axis_says_where_it_ends(records):
    wide = copy.deepcopy(records)
    for r in wide:
        if r["variant"] == "prompt-p16" and r["scenario"] == "latency" and r["task"] == "xnli" and r["backend"] == "eager":
            r |= {"prefix_overhead_vs_dense": 1.03, "prefix_overhead_vs_dense_ci95_low": 0.5,
                  "prefix_overhead_vs_dense_ci95_high": 2.4, "speedup_vs_dense": 1 / 1.03,
                  "speedup_vs_dense_ci95_low": 1 / 2.4, "speedup_vs_dense_ci95_high": 2.0}
    fig = rendered(prefix_overhead, wide)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "clipped"]
    assert "CI to +140 %" in labels and "CI to -50 %" in labels
    assert not [t for ax in rendered(prefix_overhead, records).axes for t in ax.texts if t.get_gid() == "clipped"]


def test_a_stray_control_never_prints_an_interval_that_looks_like_it_holds_one():
    from reports.cells import Speedup

    assert Speedup(1.015, 1.005, 1.048).bounds_text() == "1.005–1.048"  # "1.00–1.05" would read as containing 1
    assert Speedup(1.015, 0.995, 1.048).bounds_text() == "0.99–1.05"
    assert Speedup(1.9, 1.83, 1.96).bounds_text() == "1.83–1.96"
