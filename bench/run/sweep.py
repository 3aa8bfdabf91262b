"""Sweep orchestration: config -> variants -> artifacts -> comparison groups -> records, with resume.

For each task every variant is built (or loaded) first; then each dtype's variant x backend cells are measured
together as one group in interleaved rounds (bench.run.group). What runs and in what order lives here; where it
runs (this machine, or a Ray cluster) is the executor's (bench.run.executors); which fields a record carries lives
in bench.run.records. Records are appended as they are finished (a cell's
throughput, accuracy and memory when it is prepared, its latency when its rounds end); a failing backend becomes
failed records and the sweep goes on; Ctrl-C marks the run incomplete and keeps what was written; --resume skips
the cells already done.
"""

from __future__ import annotations

import gc
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from bench.backends import Target
from bench.backends.onnxruntime.export_cache import keep
from bench.variants.artifacts import Artifact
from bench.config.bases import build_order
from bench.variants.variant import BuildInputs, base_chain
from bench.config import SweepConfig, VariantBase
from bench.data.evalset import EvalSet, build_evalset
from bench.data.examples import TaskData
from bench.data.tokenization import encode_pairs
from bench.measure.device import device_name
from bench.run import records
from bench.model.dtypes import TORCH_DTYPES
from bench.run.cell import CellTask, Prepared
from bench.run.env import fingerprint
from bench.run.executors import Executor, PendingBuild, make_executor
from bench.run.group import GroupSink
from bench.run.outcome import fail, finish, interrupt_reason
from bench.run.plan import Plan, preflight
from bench.run.progress import PIPED_PROGRESS_INTERVAL_S, Progress
from bench.run.store import RunStore, now_utc
from bench.run.variant_build import SeedJob


class Interrupted(Exception):
    """Ctrl-C or SIGTERM after the run directory existed: it is marked incomplete and keeps its finished records."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def run_sweep(cfg: SweepConfig, console: Console, resume: Path | None = None, retry_failed: bool = False) -> RunStore:
    plan = preflight(cfg, console)
    executor = make_executor(cfg)  # where builds and groups run (bench.run.executors)
    executor.preflight(plan)
    if resume is None:
        store = RunStore.create(Path(cfg.output_dir), cfg.name)
        console.print(f"[bold]run[/] {store.path}")
    else:
        store = RunStore.open(resume)
        store.lock()
        console.print(f"[bold]resume[/] {store.path}: {store.prepare_resume(retry_failed)}")
        store.set_status("running", resumed=now_utc())
    try:
        if resume is None:
            store.write_text("config.toml", cfg.to_toml())
            store.write_json("env.json", fingerprint(onnxruntime="onnxruntime" in cfg.measure.backends))
        Sweep(cfg, plan, store, console, executor).run()
        finish(store)  # complete, complete_with_failures or failed, from the records
    except KeyboardInterrupt as exc:
        store.set_status("incomplete", reason=interrupt_reason(exc), records=len(store.records()))
        raise Interrupted(store.path) from None
    except BaseException as exc:
        raise fail(store, exc) from exc  # marked failed; the exception says why in one line
    finally:
        store.unlock()
    return store


@dataclass
class Measured:
    """A variant ready to be measured on every backend: its first seed's artifact and what its records share."""

    variant: VariantBase
    artifact: Artifact
    base: dict[str, Any]
    reference: np.ndarray  # eager fp32 logits on the evaluation set: the parity reference


class Sweep:
    def __init__(self, cfg: SweepConfig, plan: Plan, store: RunStore, console: Console, executor: Executor) -> None:
        self.cfg, self.plan, self.store, self.console = cfg, plan, store, console
        self.reference_variant = next((v.name for v in cfg.variants if v.method == "dense"), None)
        self.done = store.done_cells()
        self.build_inputs = BuildInputs(
            source=plan.source, backbone_seed=cfg.seed, max_length=cfg.model.max_length, tokenizer=plan.tokenizer,
            tokenizer_note=plan.tokenizer_note, cache_dir=plan.cache_dir, device=cfg.measure.device,
            trust_remote_code=cfg.model.trust_remote_code,
        )
        self.executor = executor
        self.builds: dict[tuple[str, str, int], PendingBuild] = {}
        self.kept: dict[str, dict[str, Any]] = {}  # cell -> where keep_exports put its export
        self.scratch = Path(tempfile.gettempdir())  # replaced by the run's own scratch directory in run()
        self.peaks = self.executor.peaks(cfg.measure.peaks, cfg.measure.device, plan.threads, plan.cache_dir, console)
        cells = len(plan.data) * sum(len(v.cells()) for v in cfg.variants) * len(cfg.measure.dtypes) * len(cfg.measure.backends)
        self.progress = Progress(cells - sum(1 for c in self.done if c.count("/") == 5), cfg.measure.min_rounds,
                                 say=console.print, max_rounds=cfg.measure.max_rounds,
                                 min_interval_s=0.0 if console.is_terminal else PIPED_PROGRESS_INTERVAL_S)

    def run(self) -> None:
        # Cells' scratch files (compile caches, ORT profiles) live apart from the run directory and go with the run;
        # ONNX exports live in the cache (bench.backends.onnxruntime.export_cache), in the run directory only with keep_exports.
        with tempfile.TemporaryDirectory(prefix="xglm-bench-cells-", ignore_cleanup_errors=True) as scratch, \
                self.executor.session(self.store, self.console, self.plan):
            self.scratch = Path(scratch)
            self._run()

    def _run(self) -> None:
        torch.set_num_threads(self.plan.threads)
        tok = self.plan.tokenizer
        for task_name, data in self.plan.data.items():
            self.console.print(f"[bold]{task_name}[/]: {data.source} ({data.source_detail}); train on {data.train.language} "
                               f"{data.train_split} ({len(data.train)} rows), eval {data.eval_split} {', '.join(data.eval)}")
            for note in data.notes:
                self.console.print(f"  [yellow]note[/] {note}")
            train_ids = encode_pairs(tok, data.train.premise, data.train.hypothesis, self.cfg.model.max_length)
            evalset = build_evalset(data, tok, self.cfg.model.max_length)
            # Every variant is built first (dense first, every base before the variants trained on it); then each
            # dtype's cells are measured together, interleaved.
            order = build_order(self.cfg.variants, self.reference_variant)
            ready = [m for v in order if (m := self._variant(v, data, train_ids, evalset)) is not None]
            for dtype in self.cfg.measure.dtypes:
                self._group(ready, dtype, evalset)

    def _variant(self, variant: VariantBase, data: TaskData, train_ids: list, evalset: EvalSet) -> Measured | None:
        """Every seed is trained and scored on eager fp32; the first seed's artifact is the one measured on
        every backend. With several seeds, an aggregate record gives accuracy mean and std per language."""
        seeds = variant.seeds_or(self.cfg.seed)
        self._submit_builds(data, train_ids, evalset)
        per_seed: list[dict[str, float]] = []
        shared: dict[str, Any] = {}  # what every seed shares (method options, parameter counts)
        measured = None
        for index, seed in enumerate(seeds):
            base = self._variant_fields(variant, data) | {"seed": seed}
            built = self.builds[(data.task.name, variant.name, seed)].result()
            if built.error is not None:  # a variant that cannot be built fails its cells; the sweep goes on
                self.console.print(f"[red]variant {variant.name} (seed {seed}) failed to build[/]: {built.message}")
                if index == 0:
                    self.progress.total_cells -= len(variant.cells()) * len(self.cfg.measure.dtypes) * len(self.cfg.measure.backends)
                    for dtype in self.cfg.measure.dtypes:
                        for backend in self.cfg.measure.backends:
                            for cell in variant.cells():
                                self._emit_all(base | cell.fields(variant.name) | {"backend": backend, "dtype": dtype}, "failed",
                                               f"build: {built.error}")
                continue
            base |= built.fields
            shared = shared or {k: v for k, v in base.items() if k not in records.PER_SEED_KEYS}
            per_seed.append(built.accuracy_by_language)
            if index == 0:
                measured = Measured(variant, built.artifact, base, built.reference)
            elif "accuracy" in self.cfg.measure.scenarios:
                replicate = f"{variant.name}/{data.task.name}/seed{seed}/reference"
                if replicate not in self.done:
                    fields = base | self._accuracy_fields(per_seed[-1], evalset) | {"backend": "eager", "dtype": "fp32"}
                    self._emit(fields, "accuracy", seed_replicate=True, cell_id=replicate)
                    self._mark_done(replicate)
        aggregate = f"{variant.name}/{data.task.name}/seeds"
        if len(per_seed) > 1 and "accuracy" in self.cfg.measure.scenarios and aggregate not in self.done:
            fields = shared | records.seed_aggregate_fields(seeds, per_seed, self.cfg.data.language_groups, len(evalset))
            self._emit(fields, "accuracy", cell_id=aggregate)
            self._mark_done(aggregate)
        _release_memory(self.cfg.measure.device)
        return measured

    def _submit_builds(self, data: TaskData, train_ids: list, evalset: EvalSet) -> None:
        """Every variant's seeds of this task, handed to the executor at once (local builds each when asked for it;
        Ray builds them all in parallel)."""
        if any(key[0] == data.task.name for key in self.builds):
            return
        jobs = [SeedJob(self.build_inputs, v, self.cfg.train_for(v), data, train_ids, seed, evalset,
                        self.cfg.measure.throughput_batch_size, self.plan.threads, self.cfg.backend, str(self.store.path),
                        bases=base_chain(self.cfg, v, seed))
                for v in build_order(self.cfg.variants, self.reference_variant) for seed in v.seeds_or(self.cfg.seed)]
        for (variant, seed), pending in self.executor.submit_builds(jobs, self.console).items():
            self.builds[(data.task.name, variant, seed)] = pending

    def _group(self, ready: list[Measured], dtype: str, evalset: EvalSet) -> None:
        """Every variant x backend cell of this task and dtype, measured together (bench.run.group). A masked variant
        is several cells of one artifact: its masked-dense control and one cell per sparse kernel
        (VariantBase.cells), and a quantized variant its cell per precision, all in the same rounds."""
        cfg = self.cfg.measure
        tasks = []
        for m, cell in ((m, cell) for m in ready for cell in m.variant.cells()):
            for backend in cfg.backends:
                base = m.base | {"backend": backend, "dtype": dtype} | cell.fields(m.variant.name)
                cell_id = "/".join(str(base[k]) for k in ("variant", "task", "seed", "backend", "dtype", "device"))
                tasks.append(CellTask(
                    cell_id=cell_id, artifact_path=str(m.artifact.path),
                    base=base | {"cell_id": cell_id, "isolation": cfg.isolation},
                    target=Target(cfg.device, dtype, self.plan.threads), options=self.cfg.backend, measure=cfg,
                    evalset=evalset, reference=m.reference, max_length=self.cfg.model.max_length,
                    workdir=str(self.scratch / f"{base['variant']}-{base['task']}-{dtype}-{backend}"),
                    export_cache=str(self.plan.cache_dir),
                ))
        if all(t.cell_id in self.done for t in tasks):
            return
        weights = max(t.base["params_total"] for t in tasks) * TORCH_DTYPES[dtype].itemsize
        sink = GroupSink(prepared=self._prepared, measured=self._measured, announce=self.console.print)
        self.executor.measure_group(tasks, self.reference_variant, cfg, weights, self.peaks, sink,
                                    done=self.done, seed=self.cfg.seed, progress=self.progress)

    def _prepared(self, task: CellTask, prepared: Prepared) -> None:
        kept = self.kept[task.cell_id] = self._keep_export(task, prepared)
        for record in prepared.records:
            fields = dict(record) | kept
            scenario, status, error = fields.pop("scenario"), fields.pop("status"), fields.pop("error")
            if scenario == "accuracy" and status == "ok":
                fields |= self._accuracy_fields(fields["accuracy_by_language"], task.evalset)
            self._emit(fields, scenario, status=status, error=error)
        if "latency" not in self.cfg.measure.scenarios:
            self._mark_done(task.cell_id)

    def _measured(self, task: CellTask, latency: list[dict[str, Any]]) -> None:
        for record in latency:
            fields = dict(record) | self.kept.get(task.cell_id, {})
            scenario, status, error = fields.pop("scenario"), fields.pop("status"), fields.pop("error")
            self._emit(fields, scenario, status=status, error=error)
        self._mark_done(task.cell_id)

    def _keep_export(self, task: CellTask, prepared: Prepared) -> dict[str, Any]:
        """With keep_exports, the cell's cached export linked (or copied) into the run's exports/; the field says
        where. The driver does it, the one writer of the run directory, for the local and the Ray executor alike."""
        source = next((r["export_dir"] for r in prepared.records if r.get("export_dir")), None)
        if not self.cfg.keep_exports or source is None:
            return {}
        key = next(r["export_cache_key"] for r in prepared.records if r.get("export_dir"))
        manifest = Path(source) / "export.json"
        if not manifest.is_file() or json.loads(manifest.read_text()).get("key") != key:
            self.console.print(f"  [yellow]note[/] {task.cell_id}: its export {source} is not on this machine; not kept")
            return {}
        destination = self.store.path / "exports" / Path(task.workdir).name
        keep(Path(source), destination)
        return {"export_kept": str(destination.relative_to(self.store.path))}

    def _variant_fields(self, variant: VariantBase, data: TaskData) -> dict[str, Any]:
        return records.variant_fields(
            run_id=self.store.run_id, variant=variant, data=data, device=self.cfg.measure.device,
            device_name=device_name(self.cfg.measure.device), source=self.plan.source, threads=self.plan.threads,
            tokenizer_note=self.plan.tokenizer_note, max_length=self.cfg.model.max_length,
        )

    def _accuracy_fields(self, by_lang: dict[str, float], evalset: EvalSet) -> dict[str, Any]:
        return records.accuracy_fields(by_lang, self.cfg.data.language_groups, len(evalset))

    def _emit(self, fields: dict[str, Any], scenario: str, status: str = "ok", error: str | None = None, **extra: Any) -> None:
        self.store.append(records.make_record(**fields, **extra, scenario=scenario, status=status, error=error))

    def _mark_done(self, cell_id: str) -> None:
        self.store.mark_done(cell_id)
        self.done.add(cell_id)

    def _emit_all(self, base: dict[str, Any], status: str, error: str) -> None:
        for record in records.stand_ins(self.cfg.measure, base, status, error):
            fields = {k: v for k, v in record.items() if k not in ("scenario", "status", "error")}
            self._emit(fields, record["scenario"], status=record["status"], error=record["error"])


def _release_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
