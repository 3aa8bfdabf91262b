"""Result records: flat JSON objects, units in key names. These keys are promised to other tools
(DESIGN.md, "Result records"); every record carries all of them, null where they do not apply.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

REQUIRED_KEYS = (
    "schema_version", "run_id", "status", "error", "variant", "task", "method", "sparsity", "prompt_length",
    "backend", "device", "dtype", "batch_size", "seq_len", "scenario", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p99", "throughput_samples_per_s", "peak_memory_mb", "accuracy", "accuracy_by_language",
    "params_total", "params_trainable", "speedup_vs_dense",
)


def make_record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    record["schema_version"] = SCHEMA_VERSION
    record.update(fields)
    unknown_status = record["status"] not in ("ok", "failed", "skipped")
    if unknown_status:
        raise ValueError(f"record status must be ok, failed or skipped, got {record['status']!r}")
    return record

