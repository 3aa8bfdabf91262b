"""Result records: which fields each record carries, assembled in one place. Flat JSON objects, units in key names.

The keys in REQUIRED_KEYS are promised to other tools (DESIGN.md, "Result records"); every record carries all of
them, null where they do not apply. A record is `make_record(**base, **<scenario fields>)`, where base holds the
variant's, artifact's and cell's fields:

- latency:    base | shape_fields | latency_fields (+ energy, roofline) | versus_dense
- memory:     base | shape_fields | the memory pass's fields | weight bytes
- throughput: base | EvalPass.throughput_fields | batch_size
- accuracy:   base | accuracy_fields (per language, mean, groups); with seeds also seed_aggregate_fields
A cell that could not run has stand_ins: one record per scenario and shape it would have written, with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCHEMA_VERSION = 1

REQUIRED_KEYS = (
    "schema_version", "run_id", "status", "error", "variant", "task", "method", "sparsity", "prompt_length",
    "backend", "device", "dtype", "batch_size", "seq_len", "scenario", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p99", "throughput_samples_per_s", "peak_memory_mb", "accuracy", "accuracy_by_language",
    "params_total", "params_trainable", "speedup_vs_dense",
)
SAMPLES_KEPT = 1000  # raw latency samples stored per record (evenly thinned beyond), for bootstrap ratios
# Fields that belong to one seed's artifact, not to the variant as a whole.
PER_SEED_KEYS = {"seed", "artifact_key", "artifact_built_this_run", "train_s", "train_steps", "train_final_loss"}


def make_record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    record["schema_version"] = SCHEMA_VERSION
    record.update(fields)
    unknown_status = record["status"] not in ("ok", "failed", "skipped")
    if unknown_status:
        raise ValueError(f"record status must be ok, failed or skipped, got {record['status']!r}")
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


def latency_fields(stats, samples_ns: np.ndarray, batch) -> dict[str, Any]:
    """Statistics of the samples, throughput at the median, and the (thinned) raw samples."""
    seconds = stats.p50_ms / 1e3
    return {**stats.to_record(),
            "throughput_samples_per_s": batch.input_ids.shape[0] / seconds,
            "throughput_tokens_per_s": batch.real_tokens / seconds,
            "latency_samples_ms": thin(samples_ns)}


def versus_dense(method: str, dense_ns: np.ndarray, samples_ns: np.ndarray) -> dict[str, Any]:
    """speedup_vs_dense (bootstrap CI of the ratio of medians) against the dense variant's cell of the same task,
    backend, dtype, device and shape; for prompt variants also the prefix's overhead."""
    from bench.measure.stats import ratio_ci95

    ratio, low, high = ratio_ci95(dense_ns, samples_ns)  # median(dense) / median(this)
    out = {"speedup_vs_dense": ratio, "speedup_vs_dense_ci95_low": low, "speedup_vs_dense_ci95_high": high}
    if method == "prompt":
        out["prefix_overhead_vs_dense"] = 1 / ratio  # the prefix's cost at this shape
    return out


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
