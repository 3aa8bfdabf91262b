"""Result records: which fields each record carries, assembled in one place. Flat JSON objects, units in key names.

Every key, its type and unit are declared in bench/record_keys/ (the schema: REQUIRED_KEYS, promised to other tools,
are in every record, null where they do not apply); the store validates each record against it as it writes it.
A record is `make_record(**base, **<scenario fields>)`, where base holds the variant's, artifact's and cell's fields:

- latency:    base | shape_fields | latency_fields | energy_fields | roofline | rounds_fields | paired_fields
              (speedup_vs_dense, speedup_vs_eager, speedup_vs_control of a sparse kernel cell over its
              masked-dense control or of a precision cell over its unquantized one, prefix_overhead_vs_dense):
              latency_records
- memory:     base | shape_fields | the memory pass's fields | weight bytes
- throughput: base | EvalPass.throughput_fields | batch_size
- accuracy:   base | accuracy_fields (per language, mean, groups); with seeds also seed_aggregate_fields
A cell that could not run has stand_ins: one record per scenario and shape it would have written, with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.records import REQUIRED_KEYS, SCHEMA_VERSION

SAMPLES_KEPT = 1000  # raw latency samples stored per record (evenly thinned beyond), for bootstrap ratios
# Fields that belong to one seed's artifact, not to the variant as a whole.
PER_SEED_KEYS = {"seed", "artifact_key", "artifact_built_this_run", "train_s", "train_steps", "trained", "train_final_loss"}


def make_record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    record["schema_version"] = SCHEMA_VERSION
    record.update(fields)
    return record


def variant_fields(*, run_id: str, variant, data, device: str, device_name: str | None, source, threads: int,
                   tokenizer_note: str, max_length: int) -> dict[str, Any]:
    """What every record of one variant on one task shares."""
    return {
        "run_id": run_id, "variant": variant.name, "task": data.task.name, "method": variant.method,
        "device": device, "device_name": device_name, "model": str(source), "random_weights": source.random_weights,
        "threads": threads, "data_source": data.source, "train_split": data.train_split,
        "eval_split": data.eval_split, "tokenizer": tokenizer_note, "max_length": max_length,
    }


def artifact_fields(model, artifact, built: bool) -> dict[str, Any]:
    """Parameter counts, trainable share, training cost and the method's own fields, from the artifact's meta."""
    from bench.model.classifier import count_parameters

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
        "trained": None if train.get("steps") is None else train.get("steps", 0) > 0,
        "train_final_loss": train.get("final_loss"),
        **extra,
    }


def accuracy_fields(by_lang: dict[str, float], language_groups: dict[str, list[str]], eval_samples: int) -> dict[str, Any]:
    groups = {g: [lang for lang in langs if lang in by_lang] for g, langs in language_groups.items()}
    return {
        "accuracy_by_language": by_lang, "accuracy": float(np.mean(list(by_lang.values()))),
        "language_groups": {g: langs for g, langs in groups.items() if langs}, "eval_samples": eval_samples,
    }


def seed_aggregate_fields(seeds: list[int], per_seed: list[dict[str, float]], language_groups: dict[str, list[str]],
                          eval_samples: int) -> dict[str, Any]:
    """Accuracy per language as the mean over seeds, with its std (ddof=1) per language and over the means."""
    langs = list(per_seed[0])
    table = np.array([[run[lang] for lang in langs] for run in per_seed])  # [seeds, languages]
    means = dict(zip(langs, table.mean(0).tolist()))
    return accuracy_fields(means, language_groups, eval_samples) | {
        "backend": "eager", "dtype": "fp32", "seed": None, "seeds": seeds, "aggregate": "mean_over_seeds",
        "accuracy_by_language_std": dict(zip(langs, table.std(0, ddof=1).tolist())),
        "accuracy_std": float(table.mean(1).std(ddof=1)),
    }


def shape_fields(batch, counts, mechanism: str) -> dict[str, Any]:
    """A fixed [B, T] batch: its real and padded tokens, and the accounting at that length."""
    bs, seq = batch.input_ids.shape
    return {"batch_size": int(bs), "seq_len": int(seq), "padded_tokens": batch.padded_tokens,
            "real_tokens": batch.real_tokens, **counts.fields(int(seq), mechanism)}


def latency_records(task, tasks, prepared, result, reference: str | None, peaks, info: dict[str, Any],
                    twins: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One cell's latency records from its batch's rounds: per shape, statistics over all of its samples, ratios
    paired round by round with its references measured in the same rounds (dense on the same backend, the same
    variant on eager), energy over its blocks, the roofline, how the rounds went, and the run's resolution floor
    from the A/A twins (`twins`: backend -> the twin's cell id)."""
    from bench.measure.calibrate import roofline_fields  # torch: imported here, so reports can read records without it
    from bench.measure.stats import LatencyStats

    prep = prepared[task.cell_id]
    if prep.status != "ok":
        return [dict(r, failure_retryable=prep.retryable) if prep.status == "failed" else r
                for r in stand_ins(task.measure, prep.base, prep.status, prep.error) if r["scenario"] == "latency"]
    ids = {(t.base["variant"], t.base["backend"]): t.cell_id for t in tasks}
    variant, backend = task.base["variant"], task.base["backend"]
    control = control_of(task.base)
    refs = {"dense": ids.get((reference, backend)) if reference else None, "eager": ids.get((variant, "eager")),
            "control": ids.get((control, backend)) if control else None}
    out = []
    for shape, shaped in prep.shapes.items():
        fields = prep.base | {k: v for k, v in shaped.items() if k != "cost"} | info
        blocks = result.blocks.get(task.cell_id, {}).get(shape, [])
        if not blocks:
            error = result.lost.get(task.cell_id, "no block was measured")
            out.append({**fields, "scenario": "latency", "status": "failed", "error": error, "failure_retryable": True})
            continue
        samples = np.concatenate([b.samples_ns for b in blocks])
        stats = LatencyStats.from_ns(samples)
        fields |= latency_fields(stats, samples, shaped) | energy_fields(blocks, shaped["batch_size"], prep.base)
        fields |= roofline_fields(shaped["cost"], stats.p50_ms / 1e3, task.target.dtype, peaks,
                                  library=prep.base.get("linear_library"))
        if prep.base.get("quantization"):  # int8 / fp8 linears: no peak calibrated, and the bytes are not the dtype's
            fields |= {k: None for k in ("achieved_gbps", "min_bytes_per_forward", "arithmetic_intensity",
                                         "percent_of_peak", "percent_of_library_peak", "bound", "peak_note")}
            fields["roofline_note"] = (f"{prep.base['quantization']} linears: FLOPs as the unquantized model's, no "
                                       f"{prep.base['quantization']} peak calibrated, so no roof")
        fields |= rounds_fields(result, task.cell_id, shape, refs["dense"] or task.cell_id)
        fields |= paired_fields("vs_dense", result, refs["dense"], task.cell_id, shape)
        fields |= paired_fields("vs_eager", result, refs["eager"], task.cell_id, shape)
        fields |= paired_fields("vs_control", result, refs["control"], task.cell_id, shape)  # the kernel's own gain
        fields |= resolution_fields(result, twins, backend, shape)
        if (prep.base.get("prompt_length") or 0) > 0 and fields.get("speedup_vs_dense"):
            fields |= {"prefix_overhead_vs_dense": 1 / fields["speedup_vs_dense"],
                       "prefix_overhead_vs_dense_ci95_low": _inverse(fields.get("speedup_vs_dense_ci95_high")),
                       "prefix_overhead_vs_dense_ci95_high": _inverse(fields.get("speedup_vs_dense_ci95_low"))}
            fields |= {f"prefix_overhead_vs_dense_{k}": fields.get(f"speedup_vs_dense_{k}")
                       for k in ("ci_level", "p_value", "mde_pct")}
        out.append({**fields, "scenario": "latency", "status": "ok", "error": None})
    return out


def latency_fields(stats, samples_ns: np.ndarray, shaped: dict[str, Any]) -> dict[str, Any]:
    """Statistics of the samples, throughput at the median, and the (thinned) raw samples."""
    seconds = stats.p50_ms / 1e3
    return {**stats.to_record(),
            "throughput_samples_per_s": shaped["batch_size"] / seconds,
            "throughput_tokens_per_s": shaped["real_tokens"] / seconds,  # real tokens only, padding excluded
            "latency_samples_ms": thin(samples_ns)}


def paired_fields(name: str, result, reference_id: str | None, cell_id: str, shape) -> dict[str, Any]:
    """speedup_<name> = median over rounds of median(reference block) / median(this cell's block), with its
    order-statistic interval over rounds (`_ci95_low/_high`: at least 95 %, the exact coverage in `_ci_level`;
    marginal, for this ratio alone), the sign test's p-value against 1.0 (`_p_value`, for the Findings' Holm
    procedure) and the smallest effect it could have shown (`_mde_pct`); 1.0 for the reference itself; null with a
    note when it could not be paired."""
    from bench.measure.rounds import paired_ratio

    key = f"speedup_{name}"
    if reference_id is None:
        return {}
    if reference_id == cell_id:
        return {key: 1.0}
    ratio = paired_ratio(result.blocks.get(reference_id, {}).get(shape, []), result.blocks[cell_id][shape])
    if ratio is None:
        why = result.lost.get(reference_id, "its reference was not measured in the same rounds")
        return {key: None, f"{key}_note": f"not paired: {why}"}
    return {key: ratio.value, f"{key}_ci95_low": ratio.low, f"{key}_ci95_high": ratio.high,
            f"{key}_ci_level": ratio.level, f"{key}_p_value": ratio.p_value, f"{key}_mde_pct": ratio.mde_pct,
            "ratio_ci_method": RATIO_CI_METHOD}


RATIO_CI_METHOD = ("order statistics of the per-round ratios (binomial, distribution-free); marginal: each interval "
                   "covers its own ratio")


def resolution_fields(result, twins: dict[str, str] | None, backend: str, shape) -> dict[str, Any]:
    """The run's resolution floor from its A/A twin: the dense reference measured again in a worker of its own,
    paired with the reference like any cell. Its ratio should contain 1.0 (`aa_ratio*`); its interval's half-width
    (`resolution_pct`) is the smallest effect this group's ratios resolve. The twin of this record's backend where
    there is one (measure.aa_control = "all"), else the group's one twin; `aa_backend` says which."""
    from bench.measure.rounds import paired_ratio

    if not twins:
        return {}
    twin_backend = backend if backend in twins else next(iter(twins))
    twin = twins[twin_backend]
    reference = twin_reference(twin)
    blocks = result.blocks.get(twin, {}).get(shape, [])
    ratio = paired_ratio(result.blocks.get(reference, {}).get(shape, []), blocks) if blocks else None
    if ratio is None:
        why = result.lost.get(twin, "the A/A twin was not measured in these rounds")
        return {"aa_backend": twin_backend, "resolution_pct": None, "resolution_note": f"no floor: {why}"}
    return {"aa_backend": twin_backend, "aa_ratio": ratio.value, "aa_ratio_ci95_low": ratio.low,
            "aa_ratio_ci95_high": ratio.high, "aa_ratio_ci_level": ratio.level, "aa_ratio_p_value": ratio.p_value,
            "aa_significant": not ratio.low <= 1.0 <= ratio.high, "resolution_pct": ratio.half_width_pct}


def control_of(base: dict[str, Any]) -> str | None:
    """The cell a kernel or precision cell is a realisation of, measured in the same rounds: a kernel cell's
    masked-dense control, a precision cell's unquantized variant (speedup_vs_control pairs them)."""
    return base.get("quant_control") or base.get("kernel_control")


def twin_id(reference_id: str) -> str:
    """The cell id of a reference's A/A twin."""
    return f"{reference_id}{_TWIN}"


def twin_reference(twin: str) -> str:
    """The reference cell id of an A/A twin's id."""
    return twin.removesuffix(_TWIN)


_TWIN = "~aa"


def rounds_fields(result, cell_id: str, shape, reference_id: str) -> dict[str, Any]:
    """How this cell was measured: in how many rounds, why they stopped, and the drift of its reference over them
    (the median of the reference's last quarter of blocks over its first quarter: 1.10 = 10% slower at the end)."""
    from bench.measure.rounds import drift, rounds_of

    blocks = result.blocks[cell_id][shape]
    return {"measure_scheme": "interleaved rounds", "rounds": rounds_of(blocks), "blocks": len(blocks),
            "rounds_stopped_by": result.stopped_by,
            "block_iters_median": float(np.median([b.samples_ns.size for b in blocks])),
            "latency_drift": drift(blocks), "reference_drift": drift(result.blocks.get(reference_id, {}).get(shape, []))}


def energy_fields(blocks, batch_size: int, base: dict[str, Any]) -> dict[str, Any]:
    """Energy over all of a cell's timed blocks at one shape (each read after a synchronise), with the counter's
    step period and the uncertainty it implies (bench.measure.energy)."""
    from bench.measure.energy import EnergyCounter, energy_fields_from

    if any(b.energy_mj is None for b in blocks):
        return energy_fields_from(0.0, None, 0, 0, EnergyCounter(None, base.get("energy_note")))
    period_ms = base.get("energy_counter_period_ms")
    return energy_fields_from(sum(b.energy_mj for b in blocks) / 1e3, sum(float(b.samples_ns.sum()) for b in blocks) / 1e9,
                              sum(len(b.samples_ns) for b in blocks) * batch_size, len(blocks), EnergyCounter(None, None),
                              period_s=None if period_ms is None else period_ms / 1e3)


def _inverse(value: float | None) -> float | None:
    return 1 / value if value else None


def shape_key(record: dict[str, Any]) -> tuple:
    """Cells whose latencies may be compared: same task, backend, dtype, device and shape."""
    return (record["task"], record["backend"], record["dtype"], record["device"], record["batch_size"], record["seq_len"])


def thin(samples_ns: np.ndarray) -> list[float]:
    """At most SAMPLES_KEPT samples in ms (0.1 us resolution), evenly spaced over the run."""
    if len(samples_ns) > SAMPLES_KEPT:
        samples_ns = samples_ns[np.linspace(0, len(samples_ns) - 1, SAMPLES_KEPT).astype(int)]
    return [round(float(s) / 1e6, 4) for s in samples_ns]


def stand_ins(cfg, base: dict[str, Any], status: str, error: str) -> list[dict[str, Any]]:
    """One record per scenario (and shape) a cell would have produced, each saying why it is missing, so that
    every view sees the gap and its reason."""
    out = []
    for scenario in cfg.scenarios:
        if scenario in ("latency", "memory"):
            shapes = [(b, s) for b in cfg.batch_sizes for s in cfg.seq_lens]
        else:
            shapes = [(cfg.throughput_batch_size if scenario == "throughput" else None, None)]
        out += [{**base, "batch_size": bs, "seq_len": seq, "scenario": scenario, "status": status, "error": error}
                for bs, seq in shapes]
    return out
