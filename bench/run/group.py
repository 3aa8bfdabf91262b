"""A comparison group: every variant x backend cell of one task, device and dtype, measured in interleaved rounds.

Cells are prepared one after another (a compile or an export never overlaps another cell's timing), then timed
in rounds (bench.measure.rounds). At most `max_live_workers` cells live at once; a larger group is measured in
batches that each hold the reference cells (the dense variant on every backend of the batch), so every
speedup_vs_dense is still paired within a batch. A cell measured in an earlier batch or an earlier run (resume)
that is needed again as a reference is measured again without writing its records twice.

Each batch also runs an A/A twin of its dense reference (`measure.aa_control`: on the batch's first backend, or on
every backend): the same artifact in a worker process of its own, timed in the rounds beside the reference like any
cell and paired with it. Its ratio should contain 1.0; its half-width is the resolution floor every record of the
batch carries (bench.run.records.resolution_fields). It writes no records of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.config import MeasureConfig
from bench.measure.rounds import RoundsResult, StopRule, run_rounds
from bench.run.cell import CellTask, Prepared
from bench.run.progress import Progress
from bench.run.records import control_of, latency_records, twin_id, twin_reference
from bench.run.worker import LocalWorker, ProcessWorker

Cell = tuple[str, str]  # (variant, backend)
MiB = 2**20


@dataclass
class GroupSink:
    """Where a group's results go as they finish: the sweep appends them to the store."""

    prepared: Callable[[CellTask, Prepared], None]  # non-latency records, as soon as a cell is prepared
    measured: Callable[[CellTask, list[dict[str, Any]]], None]  # latency records, when its batch's rounds end
    announce: Callable[[str], None]  # one line of progress


def plan_batches(cells: list[Cell], reference: str | None, max_live: int,
                 family: dict[str, str] | None = None) -> list[list[Cell]]:
    """Cells in batches of at most max_live, each non-reference cell together with the reference cell of its
    backend; whole variants (all their backends, and a control with its kernel and precision cells: `family` maps a
    cell's variant to its control's) stay together where they fit, so backend-vs-eager and kernel-vs-control ratios
    are paired too. A reference cell takes part in every batch that needs it."""
    family = family or {}
    if len(cells) <= max_live:
        return [list(cells)]
    refs = {backend: (variant, backend) for variant, backend in cells if variant == reference}
    variants: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell[0] != reference:
            variants.setdefault(family.get(cell[0], cell[0]), []).append(cell)
    if not variants:  # only reference cells: nothing is paired, any cut will do
        return [cells[i:i + max_live] for i in range(0, len(cells), max_live)]
    # What must share a batch: a variant's cells; where they do not fit, each backend's of them (a kernel or precision
    # cell is paired with its control on its own backend; vs-eager ratios are lost); else one cell at a time.
    units: list[list[Cell]] = []
    for members in variants.values():
        if _fits(members, refs, max_live):
            units.append(members)
            continue
        for backend in dict.fromkeys(b for _, b in members):
            mine = [cell for cell in members if cell[1] == backend]
            units += [mine] if _fits(mine, refs, max_live) else [[cell] for cell in mine]
    batches: list[list[Cell]] = []
    current: list[Cell] = []
    for unit in units:
        needed = list(dict.fromkeys(unit + [refs[b] for _, b in unit if b in refs]))
        merged = list(dict.fromkeys(current + needed))
        if current and len(merged) > max_live:
            batches.append(current)
            merged = needed
        current = merged
    batches.append(current)
    order = {cell: i for i, cell in enumerate(cells)}
    return [sorted(batch, key=order.__getitem__) for batch in batches]


def _fits(unit: list[Cell], refs: dict[str, Cell], max_live: int) -> bool:
    return len(set(unit) | {refs[b] for _, b in unit if b in refs}) <= max_live


def default_max_live(cfg: MeasureConfig, weight_bytes: int) -> int:
    """How many cell workers fit at once. CPU: a worker holds the torch runtime (~600 MiB) plus up to three copies
    of the weights (model, compiled or exported graph, session), in 60% of the available memory. CUDA: three copies
    of the weights plus 1 GiB of context and activations, in 80% of the device's free memory."""
    if cfg.max_live_workers is not None:
        return cfg.max_live_workers
    if cfg.device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(cfg.device))
        return max(2, int(0.8 * free // (3 * weight_bytes + 1024 * MiB)))
    import psutil

    return max(2, int(0.6 * psutil.virtual_memory().available // (3 * weight_bytes + 600 * MiB)))


def run_group(tasks: list[CellTask], reference: str | None, cfg: MeasureConfig, max_live: int, peaks: dict | None,
              sink: GroupSink, *, done: set[str], seed: int = 0, progress: Progress | None = None) -> None:
    """Measure a group: tasks are its cells in a stable order; `done` holds cell ids whose records exist."""
    by_cell = {(t.base["variant"], t.base["backend"]): t for t in tasks}
    family = {t.base["variant"]: control_of(t.base) for t in tasks if control_of(t.base)}
    twins = len({b for _, b in by_cell}) if cfg.aa_control == "all" else 1 if cfg.aa_control == "one" else 0
    batches = plan_batches(list(by_cell), reference, max(2, max_live - twins) if reference else max_live, family)
    # A batch runs unless every cell of it was finished before (resume); reference cells run in every batch.
    todo = [batch for batch in batches if any(by_cell[cell].cell_id not in done for cell in batch)]
    if progress is not None:
        progress.expect(len(todo))
    for batch in todo:
        info = {"group_batch": batches.index(batch) + 1, "group_batches": len(batches), "max_live_workers": max_live,
                "reference_every": cfg.reference_every if reference else None}
        _run_batch([by_cell[c] for c in batch], reference, cfg, peaks, sink, done, info, seed, progress)


def _run_batch(tasks: list[CellTask], reference: str | None, cfg: MeasureConfig, peaks: dict | None,
               sink: GroupSink, done: set[str], info: dict[str, Any], seed: int, progress: Progress | None) -> None:
    first = tasks[0].base
    if progress is not None:
        progress.batch_started(f"group {first['task']} {first['dtype']} batch {info['group_batch']}/{info['group_batches']}",
                               len(tasks))
    workers: list[LocalWorker | ProcessWorker] = []
    twins = aa_twins(tasks, reference, cfg.aa_control)
    try:
        prepared: dict[str, Prepared] = {}
        for task in [*tasks, *twins.values()]:
            task.emit_prepared = task.cell_id not in done and not task.base.get("aa_twin")  # a twin writes none
            reference_status = prepared[twin_reference(task.cell_id)].status if task.base.get("aa_twin") else "ok"
            if reference_status != "ok":  # a twin of nothing would only hold the rounds open
                sink.announce(f"{_label(task)}: not prepared (its reference cell is {reference_status})")
                prepared[task.cell_id] = Prepared("skipped", "its reference cell was not prepared", [], dict(task.base))
                continue
            where = "in its own process" if cfg.isolation == "process" else "in this process"
            sink.announce(f"{_label(task)}: preparing {where}")
            started = time.perf_counter()
            worker = ProcessWorker(task, cfg.cell_timeout_s) if cfg.isolation == "process" else LocalWorker(task)
            workers.append(worker)
            prepared[task.cell_id] = outcome = worker.prepare()
            if task.emit_prepared:
                sink.prepared(task, outcome)
            built = {k: v for k, v in outcome.base.items() if k in ("compile_s", "export_s") and v}
            cached = " (export cached)" if outcome.base.get("export_cache_hit") else ""
            note = f" ({outcome.base['export_cache_note']})" if outcome.base.get("export_cache_note") else ""
            sink.announce(f"{_label(task)}: {outcome.status}" + "".join(f" {k}={v:.1f}" for k, v in built.items())
                          + cached + note + (f" ({outcome.error})" if outcome.error else ""))
            if progress is not None and task.emit_prepared:
                progress.cell_prepared(time.perf_counter() - started)
        ready = [w for w in workers if prepared[w.name].status == "ok"]
        result = RoundsResult(blocks={})
        if ready and "latency" in cfg.scenarios:
            shapes = [(b, s) for b in cfg.batch_sizes for s in cfg.seq_lens]
            sink.announce(f"timing {len(ready)} cells in interleaved rounds at {len(shapes)} shape(s)")
            pairs = _pairs(tasks, reference) + [((twin_reference(twin.cell_id), twin.cell_id), "dense")
                                                for twin in twins.values()]
            result = run_rounds(ready, shapes, StopRule.from_config(cfg), pairs=[p for p, _ in pairs],
                                order=cfg.round_order, seed=seed, on_round=_round_clock(progress),
                                references={cell: ref for (ref, cell), vs in pairs if vs == "dense"},
                                reference_every=cfg.reference_every, controls={t.cell_id for t in twins.values()})
            sink.announce(f"{result.rounds} rounds in {result.seconds:.0f} s (stopped by {result.stopped_by})")
        finished = [task for task in tasks if task.emit_prepared]
        for task in finished:
            if "latency" in cfg.scenarios:
                sink.measured(task, latency_records(task, tasks, prepared, result, reference, peaks, info,
                                                    {b: t.cell_id for b, t in twins.items() if prepared[t.cell_id].status == "ok"}))
        if progress is not None:
            progress.cells_done(len(finished))
    finally:
        for worker in workers:
            worker.close()


def aa_twins(tasks: list[CellTask], reference: str | None, how: str) -> dict[str, CellTask]:
    """backend -> the A/A twin of the batch's dense reference on it: on the first backend that has a reference cell
    (how "one"), on every one ("all"), or none ("off"). A twin is the reference's task under its own id and scratch
    directory, writing no records (emit_prepared False)."""
    if not reference or how == "off":
        return {}
    references = [t for t in tasks if t.base["variant"] == reference]
    chosen = references if how == "all" else references[:1]
    return {t.base["backend"]: replace(t, cell_id=twin_id(t.cell_id), emit_prepared=False, workdir=f"{t.workdir}-aa",
                                       base=t.base | {"aa_twin": True})
            for t in chosen}


def _round_clock(progress: Progress | None) -> Callable[[RoundsResult], None] | None:
    """Tells the progress line how long each round took."""
    if progress is None:
        return None
    last = [time.perf_counter()]

    def tick(_: RoundsResult) -> None:
        now = time.perf_counter()
        progress.round_done(now - last[0])
        last[0] = now

    return tick


def _pairs(tasks: list[CellTask], reference: str | None) -> list[tuple[tuple[str, str], str]]:
    """((reference cell id, cell id), "dense" | "eager" | "control") of every paired ratio: vs dense on the same
    backend, vs the same variant on eager, and a kernel cell vs its masked-dense control on the same backend. The
    precision target applies to all; the dense ones shape the rounds."""
    ids = {(t.base["variant"], t.base["backend"]): t.cell_id for t in tasks}
    controls = {t.cell_id: control_of(t.base) for t in tasks}
    pairs = []
    for (variant, backend), cell in ids.items():
        if controls[cell] and (controls[cell], backend) in ids:
            pairs.append(((ids[(controls[cell], backend)], cell), "control"))
        if reference and variant != reference and (reference, backend) in ids:
            pairs.append(((ids[(reference, backend)], cell), "dense"))
        if backend != "eager" and (variant, "eager") in ids:
            pairs.append(((ids[(variant, "eager")], cell), "eager"))
    return pairs


def _label(task: CellTask) -> str:
    base = task.base
    twin = " (A/A twin)" if base.get("aa_twin") else ""
    return f"  {base['variant']}{twin} {base['task']} {base['backend']} {base['dtype']}"
