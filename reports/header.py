"""What every report starts with: the run and its status, the hardware and software it was measured on,
the model and whether its weights are random, the data, and the seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.table import Tone

RANDOM_WARNING = "random-weight backbone: accuracy measures nothing about the task; latency and memory are real"

_STATUS_TONE: dict[str, Tone] = {"complete": "better", "complete_with_failures": "worse", "incomplete": "worse",
                                  "interrupted": "worse", "failed": "worse", "running": "worse"}


@dataclass(frozen=True)
class HeaderLine:
    label: str
    text: str
    tone: Tone = None


def header_lines(records: list[dict[str, Any]], env: dict[str, Any] | None, manifest: dict[str, Any],
                 run_id: str) -> list[HeaderLine]:
    from bench.rundir import short_summary

    status = str(manifest.get("status", "unknown"))
    lines = [HeaderLine("run", run_id), HeaderLine("status", status, _STATUS_TONE.get(status))]
    if manifest.get("reason"):
        lines.append(HeaderLine("reason", str(manifest["reason"]), "worse"))
    lines.append(HeaderLine("machine", short_summary(env) if env else "unknown (no env.json)"))
    devices = sorted({f"{r.get('device')}: {r['device_name']}" for r in records if r.get("device_name")})
    if devices:
        lines.append(HeaderLine("device", "; ".join(devices)))
    if env and (env.get("python_version") or env.get("transformers_version")):
        lines.append(HeaderLine("software", f"python {env.get('python_version') or '?'}, "
                                            f"transformers {env.get('transformers_version') or '?'}"))
    models = sorted({str(r["model"]) for r in records if r.get("model")})
    if models:
        lines.append(HeaderLine("model", ", ".join(models)))
    if any(r.get("random_weights") for r in records):
        lines.append(HeaderLine("weights", RANDOM_WARNING, "worse"))
    elif any(r.get("random_weights") is False for r in records):
        lines.append(HeaderLine("weights", "pretrained"))
    sources = sorted({f"{r.get('task')}: {r['data_source']} ({r.get('train_split') or '?'} split for training)"
                      for r in records if r.get("data_source")})
    if sources:
        lines.append(HeaderLine("data", "; ".join(sources)))
    seeds = sorted({r["seed"] for r in records if r.get("seed") is not None})
    if len(seeds) > 1:
        lines.append(HeaderLine("seeds", f"{', '.join(map(str, seeds))}: accuracy is mean ± std over seeds; "
                                         "timings are the seed with the median p50"))
    return lines
