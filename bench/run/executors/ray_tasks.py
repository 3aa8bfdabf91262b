"""What runs on the nodes of a Ray cluster: a probe of each node, a variant seed's build, and one comparison group.

Plain functions that the driver (bench.run.executors.ray) submits with `ray.remote(...).options(...)`. None of
them writes to the run directory: builds write to a cache directory, groups keep their exports in their node's
cache (exports/, shared with the node's other groups and later runs) and their scratch files in a temporary
directory (removed when the group ends), and everything the driver records comes back as return values or streamed
events.
"""

from __future__ import annotations

import io
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.config import MeasureConfig
from bench.run.cell import CellTask, Prepared
from bench.run.variant_build import SeedBuild, SeedJob, build_seed

_END = object()


@dataclass
class GroupPayload:
    tasks: list[CellTask]
    reference: str | None
    measure: MeasureConfig
    weight_bytes: int
    seed: int
    done: set[str]  # cells whose records the driver holds already
    artifacts: dict[str, Any]  # artifact path on its build node -> ObjectRef of its packed files (object-store mode)
    cache_dir: str | None  # the config's cache_dir: where this node keeps artifacts it unpacks and its peaks
    attempt: int


def node_info(device: str) -> dict[str, Any]:
    """Which node and device this process runs on, as every record of the group names them."""
    import ray

    from bench.measure.device import device_name, torch_gpus

    info: dict[str, Any] = {
        "node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
        "node_hostname": socket.gethostname(), "worker_pid": os.getpid(), "device_name": _safe(device_name, device),
    }
    if device.startswith("cuda"):  # Ray hands the task its GPU through CUDA_VISIBLE_DEVICES: cuda:0 is that GPU
        gpus = _safe(torch_gpus) or []
        info |= {"device_uuid": gpus[0]["uuid"] if gpus else None, "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    return info


def probe(cache_dir: str, marker: str, token: str) -> dict[str, Any]:
    """A node's fingerprint, and whether it sees the driver's cache directory (the marker the driver wrote)."""
    from bench.run.env import fingerprint

    path = Path(cache_dir) / marker
    sees = path.is_file() and path.read_text(encoding="utf-8") == token
    return node_info("cpu") | {"sees_cache_dir": sees, "fingerprint": fingerprint()}


def build(job: SeedJob, shared: bool, cache_dir: str | None) -> tuple[SeedBuild, dict[str, Any], dict | None]:
    """(outcome, {log, node}, packed artifact files or None). Without a shared cache directory the artifact is
    built into this node's own cache and travels back packed, for the groups to unpack on theirs."""
    from bench.variants.artifacts import default_cache_dir

    if not shared:
        job = replace(job, inputs=replace(job.inputs, cache_dir=default_cache_dir(cache_dir)))
    console = Console(file=io.StringIO(), width=160)
    with tempfile.TemporaryDirectory(prefix="xglm-bench-build-") as scratch:
        outcome = build_seed(replace(job, workdir=scratch), console)
    packed = _pack(outcome.artifact.path) if outcome.artifact is not None and not shared else None
    return outcome, {"log": console.file.getvalue(), "node": node_info("cpu")}, packed


def calibrate(mode: str, device: str, threads: int, cache_dir: str | None) -> str:
    """This node's device peaks (bench calibrate), measured once and cached, before the groups start."""
    from bench.measure.calibrate import sweep_peaks

    log = Console(file=io.StringIO(), width=160)
    sweep_peaks(mode, device, threads, _cache(cache_dir), log)
    return log.file.getvalue().strip()


def measure_group(payload: GroupPayload) -> Iterator[tuple]:
    """A streaming task: ("started", node, fingerprint), then the group's ("announce", line), ("prepared", cell_id,
    Prepared) and ("measured", cell_id, records) events as bench.run.group produces them."""
    from bench.run.env import fingerprint

    cfg = payload.measure
    node = node_info(cfg.device)
    yield ("started", node, fingerprint())
    with tempfile.TemporaryDirectory(prefix="xglm-bench-group-") as scratch:  # compile caches, ORT profiles
        yield from _measure(payload, _localize(payload, node, Path(scratch)))


def _measure(payload: GroupPayload, tasks: list[CellTask]) -> Iterator[tuple]:
    from bench.measure.calibrate import sweep_peaks
    from bench.run.group import GroupSink, default_max_live, run_group

    cfg = payload.measure
    # Peaks were calibrated per node before any group ran (calibrate below): a calibration here would load the
    # machine while the groups beside this one are timing.
    mode = "off" if cfg.peaks == "off" else "cached"
    peaks = sweep_peaks(mode, cfg.device, tasks[0].target.threads, _cache(payload.cache_dir), None)
    if peaks is None and mode == "cached":
        yield ("announce", "no calibrated peaks for this node (it joined after the start): % of peak left out")
    events: queue.Queue = queue.Queue()
    sink = GroupSink(prepared=lambda task, prepared: events.put(("prepared", task.cell_id, _light(prepared))),
                     measured=lambda task, records: events.put(("measured", task.cell_id, records)),
                     announce=lambda line: events.put(("announce", str(line))))

    def work() -> None:
        try:
            run_group(tasks, payload.reference, cfg, default_max_live(cfg, payload.weight_bytes), peaks, sink,
                      done=payload.done, seed=payload.seed)
        except BaseException as exc:  # raised again below, so the driver sees it as this task's error
            events.put(("error", exc))
        finally:
            events.put(_END)

    threading.Thread(target=work, daemon=True, name="xglm-bench group").start()
    while (event := events.get()) is not _END:
        if event[0] == "error":
            raise event[1]
        yield event


def _localize(payload: GroupPayload, node: dict[str, Any], scratch: Path) -> list[CellTask]:
    """The cells as this node runs them: artifacts unpacked here when they came through the object store, exports
    in this node's cache (shared by its groups: bench.backends.onnxruntime.export_cache), scratch files in a directory of this
    group, and the node and device named in every record."""
    import ray

    where = {k: node[k] for k in ("node_id", "node_ip", "node_hostname", "device_name", "device_uuid") if k in node}
    unpacked: dict[str, str] = {}
    out = []
    for task in payload.tasks:
        path = task.artifact_path
        if payload.artifacts.get(path) is not None:
            if path not in unpacked:
                unpacked[path] = str(_unpack(ray.get(payload.artifacts[path]), _cache(payload.cache_dir), Path(path).name))
            path = unpacked[path]
        base = task.base | where | {"executor": "ray", "ray_attempt": payload.attempt}
        out.append(replace(task, artifact_path=path, base=base, workdir=str(scratch / Path(task.workdir).name),
                           export_cache=str(_cache(payload.cache_dir))))
    return out


def _pack(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _unpack(files: dict[str, bytes], cache_dir: Path, name: str) -> Path:
    """Into this node's cache, apart from the artifacts built here (artifacts-received/), written aside and renamed
    so that a concurrent group on the same node never sees half an artifact; one already there is kept."""
    import shutil

    target = cache_dir / "artifacts-received" / name
    if _holds(target, files):
        return target
    tmp = target.parent / f".{name}.unpack-{os.getpid()}-{threading.get_ident()}"
    for relative, data in files.items():
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / relative).write_bytes(data)
    shutil.rmtree(target, ignore_errors=True)  # a stale copy under the same name
    try:
        tmp.rename(target)
    except OSError:  # another group of this node unpacked it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not _holds(target, files):
            raise
    return target


def _holds(target: Path, files: dict[str, bytes]) -> bool:
    meta = target / "meta.json"
    return meta.is_file() and meta.read_bytes() == files.get("meta.json")


def _light(prepared: Prepared) -> Prepared:
    """What the driver needs of a prepared cell: its records (the timing state stays here)."""
    return Prepared(prepared.status, prepared.error, prepared.records, retryable=prepared.retryable)


def _cache(configured: str | None) -> Path:
    from bench.variants.artifacts import default_cache_dir

    return default_cache_dir(configured)


def _safe(probe_fn, *args: Any) -> Any:
    try:
        return probe_fn(*args)
    except Exception:  # a name we cannot read stays null; it never stops a group
        return None
