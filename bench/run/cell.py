"""One measured cell (variant x backend x dtype x device), runnable in a process of its own.

A cell gets everything as plain data (the artifact's path, the evaluation set, the reference logits, the
settings), loads the model itself, measures, and returns records. In its own process (the default) the
allocators, compile caches and thread pools of one cell never colour the next, peak RSS is this cell's,
and a crash or a hang becomes a failed record instead of the end of the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.backends import SkipCell, Target, prepare
from bench.config import BackendOptions, MeasureConfig
from bench.data.evalset import EvalSet
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
    workdir: str
    peaks: dict[str, Any] | None  # calibrated device peaks, for % of peak
    max_length: int


@dataclass
class CellResult:
    records: list[dict[str, Any]] = field(default_factory=list)  # (scenario, status, error, fields)
    samples: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (batch, seq) -> latency ns


def run_cell(task: CellTask) -> CellResult:
    """Measure one cell in this process. Never raises for a backend's failure: that is a failed record."""
    from bench.build.artifacts import Artifact
    from bench.build.methods import realize
    from sparsify.accounting import count

    result = CellResult()
    base = dict(task.base)
    try:
        model = Artifact.open(Path(task.artifact_path)).load_model()
        # How this method's weights run here (2:4 kernels, smaller GEMMs or dense zeros), decided before the
        # backend sees the model: the backend never learns how the variant was made.
        model, realized = realize(model, base["method"], task.target, base["backend"])
        counts = count(model)  # densities and MACs of exactly what is measured
        base |= realized | counts.fields(task.max_length, realized["speedup_mechanism"])
    except Exception as exc:
        return _all(result, task, base, "failed", f"realize: {type(exc).__name__}: {exc}")
    example = task.evalset.fixed_batch(2, 16)
    try:
        runner = prepare(base["backend"], model, task.target, (example.input_ids, example.attention_mask),
                         task.options, Path(task.workdir))
    except SkipCell as exc:
        return _all(result, task, base, "skipped", str(exc))
    except Exception as exc:
        return _all(result, task, base, "failed", f"prepare: {type(exc).__name__}: {exc}")
    base |= runner.build_seconds | runner.info
    _measure_all(task, runner, model, counts, base, result)
    return result


def _measure_all(task: CellTask, runner, model, counts, base: dict[str, Any], result: CellResult) -> None:
    from bench.measure.passes import eval_pass, latency, memory, parity

    cfg, evalset = task.measure, task.evalset
    batches = evalset.batches(cfg.throughput_batch_size)
    try:
        passed = eval_pass(runner, evalset, batches)
    except Exception as exc:
        _all(result, task, base, "failed", f"evaluation pass: {type(exc).__name__}: {exc}")
        return
    base |= parity(passed.logits, task.reference)
    if "throughput" in cfg.scenarios:
        _add(result, "throughput", base | passed.throughput_fields() | {"batch_size": cfg.throughput_batch_size})
    if "accuracy" in cfg.scenarios:
        _add(result, "accuracy", base | {"accuracy_by_language": evalset.accuracy_by_language(passed.logits.argmax(1))})
    for bs in cfg.batch_sizes:
        for seq in cfg.seq_lens:
            batch = evalset.fixed_batch(bs, seq)
            shape = records.shape_fields(batch, counts, base["speedup_mechanism"])
            if "latency" in cfg.scenarios:
                try:
                    stats, samples, energy = latency(runner, batch, cfg)
                    result.samples[(bs, seq)] = samples
                    _add(result, "latency", base | shape | records.latency_fields(stats, samples, batch) | energy
                         | _roofline(task, model, stats, bs, seq))
                except Exception as exc:
                    _add(result, "latency", base | shape, "failed", f"{type(exc).__name__}: {exc}")
            if "memory" in cfg.scenarios:
                try:
                    _add(result, "memory", base | shape | memory(runner, batch) | _weights(model, task.target))
                except Exception as exc:
                    _add(result, "memory", base | shape, "failed", f"{type(exc).__name__}: {exc}")


def _roofline(task: CellTask, model, stats, bs: int, seq: int) -> dict[str, Any]:
    from bench.measure.calibrate import roofline_fields
    from bench.measure.roofline import forward_cost

    cost = forward_cost(model, bs, seq, task.target.torch_dtype)
    return roofline_fields(cost, stats.p50_ms / 1e3, task.target.dtype, task.peaks)


def _weights(model, target: Target) -> dict[str, Any]:
    from bench.measure.roofline import weight_bytes

    return {"weight_bytes_in_memory": weight_bytes(model, target.torch_dtype)}


def _add(result: CellResult, scenario: str, fields: dict[str, Any], status: str = "ok", error: str | None = None) -> None:
    result.records.append({**fields, "scenario": scenario, "status": status, "error": error})


def _all(result: CellResult, task: CellTask, base: dict[str, Any], status: str, error: str) -> CellResult:
    result.records.extend(records.stand_ins(task.measure, base, status, error))
    return result


def failed(task: CellTask, error: str) -> CellResult:
    return _all(CellResult(), task, dict(task.base), "failed", error)
