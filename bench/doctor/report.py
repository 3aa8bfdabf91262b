"""Running `bench doctor` as a whole: the stack, then the paths; a Rich table and a JSON file of every check."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.doctor import Check
from bench.doctor.paths import Settings, path_checks
from bench.doctor.stack import stack_checks

STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def settings_for(*, device: str | None, backends: str, dtypes: str | None, models: str | None, peaks: str,
                 threads: int | None, workdir: Path, console: Console) -> Settings:
    """What to prove: cpu and cuda (its rows skipped where there is none) unless one device is named; random:tiny,
    plus random:564M where a GPU is present; peaks calibrated once per device unless `peaks` is cached or off."""
    import psutil
    import torch

    from bench.variants.artifacts import default_cache_dir
    from bench import plugins
    from bench.errors import BenchError
    from bench.measure.calibrate import sweep_peaks
    from bench.run.plan import check_device

    split = lambda text: [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
    devices = [device] if device else ["cpu", "cuda"]
    if device:
        check_device(device)
    names = plugins.backend_names()  # every declared backend and mode, plug-ins' too (`compile:max-autotune`)
    unknown = set(split(backends)) - set(names) or set(split(dtypes or "")) - {"fp32", "tf32", "fp16", "bf16"}
    if unknown or peaks not in ("auto", "cached", "off"):
        raise BenchError(f"unknown {', '.join(sorted(unknown)) or 'peaks mode ' + repr(peaks)}; backends: "
                         f"{', '.join(names)}; dtypes: fp32, tf32, fp16, bf16; peaks: auto, cached, off")
    gpu = torch.cuda.is_available()
    threads = threads or psutil.cpu_count(logical=False) or 1
    found = {d: sweep_peaks(peaks, d, threads, default_cache_dir(), console) for d in devices
             if d == "cpu" or gpu}
    return Settings(devices=devices, backends=split(backends), dtypes=split(dtypes) if dtypes else None,
                    models=split(models) if models else ["random:tiny", *(["random:564M"] if gpu else [])],
                    threads=threads, workdir=workdir, peaks=found,
                    peaks_reason="--peaks off: no calibrated peaks" if peaks == "off" else "no calibration cached (bench calibrate)")


def run_doctor(settings: Settings, console: Console) -> tuple[list[Check], float]:
    import torch

    started = time.perf_counter()
    torch.set_num_threads(settings.threads)  # as a sweep pins them: oversubscribed threads make CPU times meaningless
    checks = stack_checks()
    usable = [d for d in settings.devices if not d.startswith("cuda") or torch.cuda.is_available()]
    absent = [d for d in settings.devices if d not in usable]
    note = f" ({', '.join(absent)}: CUDA is not available, skipped)" if absent else ""
    console.print(f"stack checked; proving {', '.join(usable) or 'no device'} x {len(settings.backends)} backend(s) "
                  f"on {', '.join(settings.models)}{note}...")
    checks += path_checks(settings)
    return checks, time.perf_counter() - started


def render(checks: list[Check], seconds: float, console: Console) -> None:
    table = Table(title="bench doctor", show_lines=False)
    for column in ("where", "check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.area, check.name, f"[{STYLE[check.status]}]{check.status}[/]", check.detail)
    console.print(table)
    counts = {status: sum(c.status == status for c in checks) for status in STYLE}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped in {seconds:.0f} s",
                  style="bold red" if counts["fail"] else "bold green")


def write_json(checks: list[Check], seconds: float, settings: Settings, path: Path) -> dict[str, Any]:
    from bench.run.env import fingerprint

    document = {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
        "python": platform.python_version(),
        "settings": {"devices": settings.devices, "backends": settings.backends, "dtypes": settings.dtypes,
                     "models": settings.models, "threads": settings.threads},
        "summary": {status: sum(c.status == status for c in checks) for status in STYLE},
        "checks": [c.to_json() for c in checks],
        "env": fingerprint(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str))
    return document
