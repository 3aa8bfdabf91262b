"""Sweep execution: config -> variants -> artifacts -> runners -> records, one cell after another.

Everything that can be checked before work starts (device, model source, data, tokenizer) is checked before
the run directory exists, so bad input never leaves a run that looks finished. Each cell's records are
appended as they are measured; a failing backend becomes failed records and the sweep goes on; Ctrl-C marks
the run incomplete and keeps what was written.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from rich.console import Console

from bench import artifacts
from bench.backends import Target, prepare
from bench.config import SweepConfig, VariantConfig
from bench.data import TaskData, load_task_data, resolve_data_dir
from bench.env import fingerprint
from bench.errors import BenchError
from bench.evalset import EvalSet
from bench.cell import CellTask, run_cell, run_isolated, stand_ins
from bench.measure import eval_pass
from bench.model import ModelSource, backbone_config, count_parameters
from bench.records import make_record
from bench.stats import ratio_ci95
from bench.store import RunStore, now_utc
from bench.tokenization import encode_pairs, load_tokenizer
from bench.variants import BuildContext, builder, check_variant
from sparsify.accounting import count as sparsity_counts


class Interrupted(Exception):
    """Ctrl-C after the run directory existed: it is marked incomplete and keeps its finished records."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


@dataclass
class Plan:
    """What preflight established: the inputs every cell shares."""

    source: ModelSource
    data: dict[str, TaskData]
    tokenizer: Any
    tokenizer_note: str
    threads: int
    cache_dir: Path


def preflight(cfg: SweepConfig, console: Console) -> Plan:
    if cfg.measure.device == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            f"device 'cuda' requested but CUDA is not available here (torch {torch.__version__}); use --device cpu"
        )
    source = ModelSource.parse(cfg.model.source)
    backbone = backbone_config(source, trust_remote_code=cfg.model.trust_remote_code)
    _check_lengths(cfg, backbone.max_position_embeddings)
    for variant in cfg.variants:
        if variant.prefix_artifact:
            _check_prefix_artifact(variant, backbone)
        check_variant(variant, backbone)
    data_dir = resolve_data_dir(cfg.data.data_dir)
    data = {}
    for task in cfg.data.tasks:
        data[task] = load_task_data(
            task, source=cfg.data.source, data_dir=data_dir, languages=cfg.data.languages,
            eval_split=cfg.data.eval_split, max_train=cfg.data.max_train_samples,
            max_eval_per_language=cfg.data.max_eval_per_language, seed=cfg.seed,
        )
    texts = [t for d in data.values() for ex in [d.train, *d.eval.values()] for t in (*ex.premise, *ex.hypothesis)]
    cache_dir = artifacts.default_cache_dir(cfg.cache_dir)
    tokenizer, note = load_tokenizer(source, texts=texts, cache_dir=cache_dir, trust_remote_code=cfg.model.trust_remote_code)
    threads = cfg.measure.threads or psutil.cpu_count(logical=False) or 1
    return Plan(source, data, tokenizer, note, threads, cache_dir)


def run_sweep(cfg: SweepConfig, console: Console, resume: Path | None = None) -> RunStore:
    plan = preflight(cfg, console)
    if resume is None:
        store = RunStore.create(Path(cfg.output_dir), cfg.name)
        console.print(f"[bold]run[/] {store.path}")
        store.write_text("config.toml", cfg.to_toml())
        store.write_json("env.json", fingerprint())
    else:
        store = RunStore.open(resume)
        store.lock()
        dropped = store.drop_unfinished()
        console.print(f"[bold]resume[/] {store.path}: {len(store.done_cells())} finished cells kept"
                      + (f", {dropped} records of cut-off cells dropped" if dropped else ""))
        store.set_status("running", resumed=now_utc())
    try:
        Sweep(cfg, plan, store, console).run()
        store.set_status("complete", records=len(store.records()))
    except KeyboardInterrupt:
        store.set_status("incomplete", reason="interrupted (Ctrl-C); the records written so far are kept",
                         records=len(store.records()))
        raise Interrupted(store.path) from None
    except BaseException as exc:
        store.set_status("failed", reason=f"{type(exc).__name__}: {exc}", records=len(store.records()))
        raise
    finally:
        store.unlock()
    return store


class Sweep:
    def __init__(self, cfg: SweepConfig, plan: Plan, store: RunStore, console: Console) -> None:
        self.cfg, self.plan, self.store, self.console = cfg, plan, store, console
        self.reference_variant = next((v.name for v in cfg.variants if v.method == "dense"), None)
        self.done = store.done_cells()
        # (task, backend, dtype, device, bs, seq) -> the dense variant's raw latency samples (ns): speedups and
        # their CIs. A resumed run reads them back from the dense records it already has.
        self.dense_samples: dict[tuple, np.ndarray] = {
            _shape_key(r): np.asarray(r["latency_samples_ms"]) * 1e6 for r in store.records()
            if r["variant"] == self.reference_variant and r["scenario"] == "latency" and r.get("latency_samples_ms")
        }
        self.peaks = self._peaks()

    def _peaks(self) -> dict[str, Any] | None:
        """Calibrated device peaks for % of peak: measured once per machine (seconds), then cached."""
        from bench import calibrate

        mode, device = self.cfg.measure.peaks, self.cfg.measure.device
        key = calibrate.calibration_key(device, self.plan.threads)
        cached = calibrate.cache_path(self.plan.cache_dir, key).is_file()
        if mode == "off" or (mode == "cached" and not cached):
            return None
        if not cached:
            self.console.print(f"calibrating {device} peaks once for this machine (bench calibrate)...")
        return calibrate.load_or_measure(self.plan.cache_dir, device, self.plan.threads)

    def run(self) -> None:
        torch.set_num_threads(self.plan.threads)
        tok = self.plan.tokenizer
        for task_name, data in self.plan.data.items():
            self.console.print(f"[bold]{task_name}[/]: {data.source} ({data.source_detail}); train on {data.train.language} "
                               f"{data.train_split} ({len(data.train)} rows), eval {data.eval_split} {', '.join(data.eval)}")
            for note in data.notes:
                self.console.print(f"  [yellow]note[/] {note}")
            train_ids = encode_pairs(tok, data.train.premise, data.train.hypothesis, self.cfg.model.max_length)
            evalset = self._evalset(data)
            # Dense first: it is the reference for speedup_vs_dense.
            for variant in sorted(self.cfg.variants, key=lambda v: v.name != self.reference_variant):
                self._variant(variant, data, train_ids, evalset)

    def _evalset(self, data: TaskData) -> EvalSet:
        ids, labels, langs = [], [], []
        for lang, ex in data.eval.items():
            ids += encode_pairs(self.plan.tokenizer, ex.premise, ex.hypothesis, self.cfg.model.max_length)
            labels += ex.label
            langs += [lang] * len(ex)
        return EvalSet(ids, np.asarray(labels), np.asarray(langs), self.plan.tokenizer.pad_token_id)

    def _variant(self, variant: VariantConfig, data: TaskData, train_ids: list, evalset: EvalSet) -> None:
        """Every seed is trained and scored on eager fp32; the first seed's artifact is the one measured on
        every backend. With several seeds, an aggregate record gives accuracy mean and std per language."""
        seeds = variant.seeds_or(self.cfg.seed)
        batches = evalset.batches(self.cfg.measure.throughput_batch_size)
        per_seed: list[dict[str, float]] = []
        variant_fields: dict[str, Any] = {}  # what every seed shares (method options, parameter counts)
        for index, seed in enumerate(seeds):
            base = self._variant_fields(variant, data) | {"seed": seed}
            try:
                artifact, built = self._artifact(variant, data, train_ids, seed)
                model = artifact.load_model()  # measure exactly what was saved
            except BenchError:
                raise
            except Exception as exc:  # a variant that cannot be built fails its cells; the sweep goes on
                self.console.print(f"[red]variant {variant.name} (seed {seed}) failed to build[/]: {exc}")
                for dtype in self.cfg.measure.dtypes:
                    for backend in self.cfg.measure.backends:
                        self._emit_all(base | {"backend": backend, "dtype": dtype}, "failed", f"build: {type(exc).__name__}: {exc}")
                continue
            base |= self._artifact_fields(model, artifact, built)
            counts = sparsity_counts(model)  # densities and MACs of exactly what is measured
            base |= counts.fields(self.cfg.model.max_length)
            variant_fields = variant_fields or {k: v for k, v in base.items() if k not in _PER_SEED_KEYS}
            reference = self._reference_logits(model, evalset, batches)
            per_seed.append(evalset.accuracy_by_language(reference.argmax(1)))
            if index == 0:
                for dtype in self.cfg.measure.dtypes:
                    for backend in self.cfg.measure.backends:
                        self._cell(artifact, base | {"backend": backend, "dtype": dtype}, evalset, reference)
                        _release_memory(self.cfg.measure.device)  # the cell's runner is gone; free it first
            elif "accuracy" in self.cfg.measure.scenarios:
                replicate = f"{variant.name}/{data.task.name}/seed{seed}/reference"
                if replicate not in self.done:
                    self._emit(base | self._accuracy_fields(per_seed[-1], evalset) | {"backend": "eager", "dtype": "fp32"},
                               "accuracy", seed_replicate=True, cell_id=replicate)
                    self._mark_done(replicate)
        aggregate = f"{variant.name}/{data.task.name}/seeds"
        if len(per_seed) > 1 and "accuracy" in self.cfg.measure.scenarios and aggregate not in self.done:
            self._emit_seed_aggregate(variant_fields, seeds, per_seed, evalset, cell_id=aggregate)
            self._mark_done(aggregate)

    def _artifact_fields(self, model, artifact: artifacts.Artifact, built: bool) -> dict[str, Any]:
        total, _ = count_parameters(model)
        meta = artifact.meta
        train = meta.get("train") or {}
        extra = dict(meta["extra"])
        training_total = extra.pop("params_total_training", total)
        return {
            "params_total": total,
            "params_trainable": meta["params_trainable"],
            "trainable_share": meta["params_trainable"] / training_total,
            "artifact_key": artifact.key,
            "artifact_bytes": artifact.disk_bytes(),
            "artifact_built_this_run": built,
            "train_s": train.get("seconds"),
            "train_steps": train.get("steps"),
            "train_final_loss": train.get("final_loss"),
            **extra,
        }

    def _accuracy_fields(self, by_lang: dict[str, float], evalset: EvalSet) -> dict[str, Any]:
        groups = {g: [lang for lang in langs if lang in by_lang] for g, langs in self.cfg.data.language_groups.items()}
        return {
            "accuracy_by_language": by_lang, "accuracy": float(np.mean(list(by_lang.values()))),
            "language_groups": {g: langs for g, langs in groups.items() if langs}, "eval_samples": len(evalset),
        }

    def _emit_seed_aggregate(self, variant_fields: dict[str, Any], seeds: list[int],
                             per_seed: list[dict[str, float]], evalset: EvalSet, cell_id: str) -> None:
        langs = list(per_seed[0])
        table = np.array([[run[lang] for lang in langs] for run in per_seed])  # [seeds, languages]
        means = dict(zip(langs, table.mean(0).tolist()))
        fields = variant_fields | self._accuracy_fields(means, evalset) | {
            "backend": "eager", "dtype": "fp32", "seed": None, "seeds": seeds, "aggregate": "mean_over_seeds",
            "accuracy_by_language_std": dict(zip(langs, table.std(0, ddof=1).tolist())),
            "accuracy_std": float(table.mean(1).std(ddof=1)),
        }
        self._emit(fields, "accuracy", cell_id=cell_id)

    def _variant_fields(self, variant: VariantConfig, data: TaskData) -> dict[str, Any]:
        return {
            "run_id": self.store.run_id, "variant": variant.name, "task": data.task.name, "method": variant.method,
            "device": self.cfg.measure.device, "device_name": _device_name(self.cfg.measure.device),
            "model": str(self.plan.source), "random_weights": self.plan.source.random_weights,
            "threads": self.plan.threads, "data_source": data.source, "train_split": data.train_split,
            "eval_split": data.eval_split, "tokenizer": self.plan.tokenizer_note, "max_length": self.cfg.model.max_length,
        }

    def _artifact(self, variant: VariantConfig, data: TaskData, train_ids: list, seed: int) -> tuple[artifacts.Artifact, bool]:
        train_cfg = self.cfg.train_for(variant)
        train_hash = hashlib.sha256(json.dumps([train_ids, data.train.label]).encode()).hexdigest()[:16]
        recipe = {
            "format": 1, "variant": variant.name, "method": variant.method,
            "options": variant.recipe_options(), "model": str(self.plan.source),
            "task": data.task.name, "seed": seed, "backbone_seed": self.cfg.seed, "train": train_cfg.model_dump(),
            "max_length": self.cfg.model.max_length, "train_data": train_hash, "tokenizer": self.plan.tokenizer_note,
        }
        cached = artifacts.lookup(self.plan.cache_dir, recipe)
        if cached is not None:
            self.console.print(f"  {variant.name}: cached artifact {cached.path}")
            return cached, False
        ctx = BuildContext(
            variant=variant, task=data.task, source=self.plan.source, train=train_cfg, seed=seed, backbone_seed=self.cfg.seed,
            train_ids=train_ids, train_labels=data.train.label, pad_id=self.plan.tokenizer.pad_token_id,
            device=torch.device(self.cfg.measure.device), console=self.console,
            trust_remote_code=self.cfg.model.trust_remote_code,
        )
        built = builder(variant.method)(ctx)
        train = built.train
        meta = {
            "architecture": built.architecture,
            "params_trainable": built.extra.pop("params_trainable"),
            "extra": built.extra,
            "train": None if train is None else {
                "seconds": train.seconds, "steps": train.steps, "final_loss": train.final_loss,
                "losses": train.losses, "split": data.train_split, "rows": len(train_ids)},
        }
        artifact = artifacts.save(self.plan.cache_dir, recipe, built.model, self.plan.tokenizer, meta, built.state_dict)
        if train is None:
            self.console.print(f"  {variant.name}: nothing trained; saved {artifact.path}")
        else:
            loss = "-" if train.final_loss is None else f"{train.final_loss:.4f}"
            self.console.print(f"  {variant.name} (seed {seed}): {train.steps} steps in {train.seconds:.1f} s, final loss {loss}; saved {artifact.path}")
        return artifact, True

    def _reference_logits(self, model, evalset: EvalSet, batches) -> np.ndarray:
        runner = prepare("eager", model, Target(self.cfg.measure.device, "fp32", self.plan.threads), None,
                         self.cfg.backend, self.store.path)
        return eval_pass(runner, evalset, batches).logits

    def _cell(self, artifact: artifacts.Artifact, base: dict[str, Any], evalset: EvalSet, reference: np.ndarray) -> None:
        """One variant x backend x dtype x device, by default in a process of its own (bench.cell)."""
        cfg = self.cfg.measure
        cell_id = "/".join(str(base[k]) for k in ("variant", "task", "seed", "backend", "dtype", "device"))
        if cell_id in self.done:
            return
        label = f"{base['variant']} {base['task']} {base['backend']} {base['dtype']}"
        task = CellTask(
            cell_id=cell_id, artifact_path=str(artifact.path), base=base | {"cell_id": cell_id, "isolation": cfg.isolation},
            target=Target(cfg.device, base["dtype"], self.plan.threads), options=self.cfg.backend, measure=cfg,
            evalset=evalset, reference=reference,
            workdir=str(self.store.path / "exports" / f"{base['variant']}-{base['task']}-{base['dtype']}-{base['backend']}"),
            peaks=self.peaks, max_length=self.cfg.model.max_length,
        )
        self.console.print(f"  {label}: measuring" + (" in its own process" if cfg.isolation == "process" else ""))
        result = run_isolated(task, cfg.cell_timeout_s) if cfg.isolation == "process" else run_cell(task)
        for record in result.records:
            fields = dict(record)
            scenario, status, error = fields.pop("scenario"), fields.pop("status"), fields.pop("error")
            if scenario == "accuracy" and status == "ok":
                fields |= self._accuracy_fields(fields["accuracy_by_language"], evalset)
            if scenario == "latency" and status == "ok":
                fields |= self._versus_dense(fields, result.samples[(fields["batch_size"], fields["seq_len"])])
            self._emit(fields, scenario, status=status, error=error)
        statuses = sorted({r["status"] for r in result.records})
        errors = sorted({r["error"] for r in result.records if r["error"]})
        built = {k: v for k, v in result.records[0].items() if k in ("compile_s", "export_s") and v} if result.records else {}
        colour = "red" if "failed" in statuses else "yellow" if "skipped" in statuses else "green"
        self.console.print(f"  {label}: [{colour}]{', '.join(statuses)}[/]"
                           + "".join(f" {k}={v:.1f}" for k, v in built.items()) + (f" ({errors[0]})" if errors else ""))
        self._mark_done(cell_id)

    def _versus_dense(self, fields: dict[str, Any], samples: np.ndarray) -> dict[str, Any]:
        """speedup_vs_dense (with a bootstrap CI of the ratio of medians) against the dense variant's cell of the
        same task, backend, dtype, device and shape; for prompt variants also the prefix's overhead."""
        key = _shape_key(fields)
        if fields["variant"] == self.reference_variant:
            self.dense_samples[key] = samples
            return {"speedup_vs_dense": 1.0}  # the reference itself, by definition
        dense = self.dense_samples.get(key)
        if dense is None:
            return {}
        ratio, low, high = ratio_ci95(dense, samples)  # median(dense) / median(this)
        out = {"speedup_vs_dense": ratio, "speedup_vs_dense_ci95_low": low, "speedup_vs_dense_ci95_high": high}
        if fields["method"] == "prompt":
            out["prefix_overhead_vs_dense"] = 1 / ratio  # the prefix's cost at this shape
        return out

    def _emit(self, fields: dict[str, Any], scenario: str, status: str = "ok", error: str | None = None, **extra: Any) -> None:
        self.store.append(make_record(**fields, **extra, scenario=scenario, status=status, error=error))

    def _mark_done(self, cell_id: str) -> None:
        self.store.mark_done(cell_id)
        self.done.add(cell_id)

    def _emit_all(self, base: dict[str, Any], status: str, error: str) -> None:
        for record in stand_ins(self.cfg.measure, base, status, error):
            fields = {k: v for k, v in record.items() if k not in ("scenario", "status", "error")}
            self._emit(fields, record["scenario"], status=record["status"], error=record["error"])


def _shape_key(record: dict[str, Any]) -> tuple:
    return (record["task"], record["backend"], record["dtype"], record["device"], record["batch_size"], record["seq_len"])


# Fields that belong to one seed's artifact, not to the variant as a whole.
_PER_SEED_KEYS = {"seed", "artifact_key", "artifact_built_this_run", "train_s", "train_steps", "train_final_loss"}


def _check_lengths(cfg: SweepConfig, positions: int) -> None:
    """Real tokens follow the prefix, so prefix + tokens must fit the position table."""
    longest = max([cfg.model.max_length, *cfg.measure.seq_lens])
    if longest > positions:
        raise BenchError(f"sequence length {longest} exceeds the model's {positions} positions")
    for v in cfg.variants:
        if v.prompt_length and v.prompt_length + longest > positions:
            raise BenchError(
                f"variant '{v.name}': prompt_length {v.prompt_length} + sequence length {longest} exceeds the "
                f"model's {positions} positions; shorten the prefix or model.max_length / measure.seq_lens"
            )


def _check_prefix_artifact(variant: VariantConfig, backbone) -> None:
    """What can be checked without loading weights: a prompt artifact, for a backbone of this shape."""
    from prompts.method import shape_mismatch

    artifact = artifacts.Artifact.open(Path(variant.prefix_artifact))
    architecture = artifact.meta.get("architecture", {})
    if architecture.get("kind") != "prompt":
        raise BenchError(f"variant '{variant.name}': '{artifact.path}' is not a prompt artifact")
    mismatch = shape_mismatch(architecture, backbone)
    if mismatch:
        raise BenchError(f"variant '{variant.name}': prefix artifact '{artifact.path}' was {mismatch}")


def _release_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    from bench.env import cpu_model

    return cpu_model()
