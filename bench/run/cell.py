"""One measured cell (variant x backend x dtype x device) as it lives in its worker: prepared once, then timed in
blocks whenever the round scheduler calls on it.

A cell gets everything as plain data (the artifact's path, the evaluation set, the reference logits, the
settings) and loads the model itself. `prepare` realises the method's weights for the target, prepares the
backend's runner, runs the evaluation pass (throughput, accuracy, parity with eager fp32), warms up every latency
shape (so compile's recompiles and CUDA-graph captures never land in a timed block) and runs the memory pass per
shape. It returns the records that need no comparison, plus what the latency records will share. `block` then
times one block at one shape. A backend's failure never raises out of `prepare`: it becomes failed records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.backends import SkipCell, Target, prepare
from bench.config import BackendOptions, MeasureConfig
from bench.data.evalset import EvalSet
from bench.model.dtypes import tf32_fields
from bench.measure.rounds import Block, Shape
from bench.run import records


@dataclass
class CellTask:
    cell_id: str
    artifact_path: str
    base: dict[str, Any]  # record fields known before the cell runs
    target: Target
    options: BackendOptions
    measure: MeasureConfig
    evalset: EvalSet
    reference: np.ndarray  # eager fp32 logits of the same artifact: the parity reference
    workdir: str  # the cell's scratch files (compile caches, ORT profiles), gone with the run
    max_length: int
    export_cache: str | None = None  # the cache directory that keeps ONNX exports across runs (None: in workdir)
    emit_prepared: bool = True  # False: a reference cell measured again only for pairing (records exist)


@dataclass
class Prepared:
    """What a cell's preparation gave: its finished records (throughput, accuracy, memory, or stand-ins saying
    why it cannot be measured) and, when it can be timed, what its latency records will share."""

    status: str  # ok | skipped | failed
    error: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # each with scenario, status, error
    base: dict[str, Any] = field(default_factory=dict)
    shapes: dict[Shape, dict[str, Any]] = field(default_factory=dict)  # shape fields and forward cost per shape
    retryable: bool = False  # the failure came from the process (killed, timed out), not from the cell


class CellRunner:
    """The cell inside its worker. Not thread-safe; one per process (or several, taking turns, with isolation
    'none')."""

    def __init__(self, task: CellTask) -> None:
        self.task = task
        self.runner = None
        self.batches: dict[Shape, Any] = {}
        self.inputs: dict[Shape, Any] = {}
        self.counter = None
        self.memory = None  # bench.run.memory_estimate.CellMemory, once the model is loaded
        self.costs: dict[Shape, Any] = {}  # bench.measure.roofline.ForwardCost per shape, once the model is realised
        self.at: Shape | None = None  # the forward's shape now running, for an out-of-memory's message
        self.notify = lambda shape, message: None  # the worker process tells its parent (a SIGKILL leaves no record)

    def _running(self, shape: Shape) -> None:
        self.at = shape
        if self.memory is not None:
            self.notify(shape, self.memory.oom(*shape))

    def _failure(self, stage: str, exc: BaseException) -> str:
        """A failed stage's error; an out-of-memory says at which shape, what was estimated and what was free."""
        from bench.run.memory_estimate import is_oom, oom_message

        if is_oom(exc):
            if self.memory is not None and self.at is not None:
                return self.memory.oom(*self.at)
            return oom_message(*(self.at or (None, None)), None, None)
        return f"{stage}: {type(exc).__name__}: {exc}"

    def prepare(self) -> Prepared:
        from quantize.realize import PrecisionSkipped, realize_precision
        from sparsify.kernels import KernelSkipped
        from bench.variants.artifacts import Artifact
        from bench.variants.registry import realize
        from sparsify.accounting import count

        from bench.plugins import backend_kind
        from bench.measure.cpu_info import bf16_fields
        from bench.measure.roofline import forward_cost
        from bench.run.memory_estimate import CellMemory, free_bytes, runtime_bytes
        from bench.run.placement import pin, placement_fields

        task = self.task
        pin(task.measure.cpu_affinity)  # before the model's threads start: OpenMP's and ORT's pools inherit it
        # every record says its TF32 policy and its threads and placement, skipped ones too
        base = dict(task.base) | tf32_fields(task.target.dtype) | placement_fields(task.target.threads,
                                                                                   task.measure.cpu_affinity)
        base |= bf16_fields(task.target.dtype, task.target.device)  # a CPU bf16 cell: native instructions or not
        runtime, free = runtime_bytes(task.target.device), free_bytes(task.target.device)
        try:
            model = Artifact.open(Path(task.artifact_path)).load_model()
            # How this method's weights run here (2:4 kernels, smaller GEMMs or dense zeros), decided before the
            # backend sees the model: the backend never learns how the variant was made.
            model, realized = realize(model, base["method"], task.target, base["backend"], realisation_options(task))
            counts = count(model)  # densities and MACs of exactly what is measured (quantizing changes neither)
            base |= realized | counts.fields(task.max_length, realized["speedup_mechanism"])
            # The forward's cost per shape, of the weights as the method realised them: quantizing changes the type of
            # the linears' work, not its amount.
            self.costs = {(bs, seq): forward_cost(model, bs, seq, task.target.torch_dtype)
                          for bs in task.measure.batch_sizes for seq in task.measure.seq_lens}
            # A precision cell's linears in int8 or fp8, after the method's realisation (bench.plugins.precision)
            model, quantized = realize_precision(model, base.get("quantization"), task.target,
                                                 backend_kind(base["backend"]))
            base |= quantized
            base["weight_bytes"] = _weight_bytes(model, task.target)  # values plus indices where sparse
            self.memory = CellMemory(model, task.measure, task.max_length, task.target.dtype,
                                     backend_kind(base["backend"]), task.target.device, runtime, free)
        except (KernelSkipped, PrecisionSkipped) as exc:
            return self._stand_in(base, "skipped", f"realize: {exc}")
        except Exception as exc:
            return self._stand_in(base, "failed", self._failure("realize", exc))
        example = task.evalset.fixed_batch(2, 16)
        cache = _CompileCache(Path(task.workdir))
        try:
            with cache:
                self.runner = prepare(base["backend"], model, task.target, (example.input_ids, example.attention_mask),
                                      task.options, Path(task.workdir),
                                      export_cache=Path(task.export_cache) if task.export_cache else None)
                base |= self.runner.build_seconds | self.runner.info
                if base.get("quantization"):  # the backend names its fp32 GEMMs; a precision cell's linears ran these
                    base["linear_library"] = base["quant_engine"]
                    if "onnx_initializer_bytes" in base:  # quantized in the graph, not the model
                        base["weight_bytes"] = base["onnx_initializer_bytes"]
                out = self._measure(model, counts, base)
        except SkipCell as exc:
            return self._stand_in(base, "skipped", str(exc))
        except Exception as exc:
            return self._stand_in(base, "failed", self._failure("prepare", exc))
        if base["backend"].startswith("compile"):
            for fields in (out.base, *out.records):
                fields |= cache.fields()
        return out

    def _measure(self, model, counts, base: dict[str, Any]) -> Prepared:
        from bench.measure.energy import EnergyCounter
        from bench.measure.passes import eval_pass, memory, parity, warm_up

        task, cfg, runner = self.task, self.task.measure, self.runner
        self._running((cfg.throughput_batch_size, task.max_length))
        try:
            passed = eval_pass(runner, task.evalset, task.evalset.batches(cfg.throughput_batch_size))
        except Exception as exc:
            return self._stand_in(base, "failed", self._failure("evaluation pass", exc))
        base |= parity(passed.logits, task.reference)
        out = Prepared("ok", base=base)
        if "throughput" in cfg.scenarios:
            _add(out, "throughput", base | passed.throughput_fields() | {"batch_size": cfg.throughput_batch_size})
        if "accuracy" in cfg.scenarios:
            _add(out, "accuracy", base | {"accuracy_by_language": task.evalset.accuracy_by_language(passed.logits.argmax(1))})
        for bs in cfg.batch_sizes:
            for seq in cfg.seq_lens:
                self._running((bs, seq))
                batch = task.evalset.fixed_batch(bs, seq)
                shape_fields = records.shape_fields(batch, counts, base["speedup_mechanism"])
                self.batches[(bs, seq)], self.inputs[(bs, seq)] = batch, runner.inputs(batch.input_ids, batch.attention_mask)
                warm_up(runner, self.inputs[(bs, seq)], cfg.warmup_iters)  # recompiles and graph capture happen here
                out.shapes[(bs, seq)] = shape_fields | {
                    "cost": self.costs[(bs, seq)],
                    "weight_bytes_in_memory": base["weight_bytes"]}
                if "memory" in cfg.scenarios:
                    try:
                        _add(out, "memory", base | shape_fields | memory(runner, batch)
                             | {"weight_bytes_in_memory": out.shapes[(bs, seq)]["weight_bytes_in_memory"]}
                             | self.memory.fields(bs, seq))
                    except Exception as exc:
                        _add(out, "memory", base | shape_fields | self.memory.fields(bs, seq), "failed",
                             self._failure("memory pass", exc).removeprefix("memory pass: "))
        try:
            runner.verify()  # compile: no frame ran eagerly in the passes and warm-ups above
        except Exception as exc:
            return self._stand_in(base, "failed", f"{type(exc).__name__}: {exc}")
        for fields in (out.base, *out.records):  # known only now (compile: graphs, recompiles, graph breaks)
            fields |= runner.runtime_info()
        self.counter = EnergyCounter.open(task.target.device)
        out.base["energy_note"] = self.counter.reason or "NVML total energy counter, over the timed blocks"
        period = self.counter.period_s()
        out.base["energy_counter_period_ms"] = None if period is None else period * 1e3
        if not task.emit_prepared:
            out.records = []
        return out

    def block(self, shape: Shape, iters: int, min_time_s: float) -> Block:
        """One timed block: `measure.block_warmup` untimed calls, then at least `iters` iterations and
        `min_time_s`; energy over the block's window where the device has a counter."""
        from bench.measure.passes import time_block

        if shape != self.at:
            self._running(shape)
        try:
            samples, energy_mj = time_block(self.runner, self.inputs[shape], self.task.measure, iters, min_time_s,
                                            self.counter)
        except Exception as exc:
            from bench.run.memory_estimate import is_oom

            if is_oom(exc):
                raise MemoryError(self._failure("block", exc)) from exc
            raise
        return Block(samples, energy_mj)

    def _stand_in(self, base: dict[str, Any], status: str, error: str) -> Prepared:
        stand_ins = records.stand_ins(self.task.measure, base, status, error)
        scenarios = [r for r in stand_ins if r["scenario"] != "latency"] if self.task.emit_prepared else []
        return Prepared(status, error, scenarios, base)


def _add(out: Prepared, scenario: str, fields: dict[str, Any], status: str = "ok", error: str | None = None) -> None:
    out.records.append({**fields, "scenario": scenario, "status": status, "error": error})


def _weight_bytes(model, target: Target) -> int:
    from bench.measure.weight_bytes import weight_bytes

    return weight_bytes(model, target.torch_dtype)


def realisation_options(task: CellTask) -> dict[str, Any]:
    """The cell's realisation options (not part of the recipe): its sparse kernel, with the variant's block shape
    and the cache that keeps `auto`'s calibration."""
    return {"kernel": task.base.get("sparse_kernel") or "dense", "block_shape": task.base.get("block_shape"),
            "cache_dir": task.export_cache}


class _CompileCache:
    """torch.compile's on-disk caches (FX graph, AOTAutograd, Triton) in a directory of this cell's own, fresh,
    so compile_s never depends on what an earlier cell or run left behind; cache hits are counted and recorded."""

    def __init__(self, workdir: Path) -> None:
        self.directory = workdir / "compile-cache"
        self.saved: dict[str, str | None] = {}
        self.hits_before = self.hits_after = 0

    def __enter__(self) -> _CompileCache:
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)
        for var, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
            self.saved[var] = os.environ.get(var)
            os.environ[var] = str(self.directory / sub)
        self.hits_before = _cache_hits()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hits_after = _cache_hits()
        for var, value in self.saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value

    def fields(self) -> dict[str, Any]:
        return {"compile_cache": "fresh per cell", "compile_cache_hits": self.hits_after - self.hits_before}


def _cache_hits() -> int:
    """FX-graph and AOTAutograd cache hits so far in this process (torch's own counters)."""
    import sys

    if "torch._dynamo.utils" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"])
