"""The path part of `bench doctor`: every device x backend x dtype on random:tiny (and random:564M on a GPU), each
prepared as a sweep's cell prepares it, then checked on what the records rely on:

- parity: logits within the dtype's tolerance of eager fp32 on the CPU (same weights, same batch);
- timing (GPU, torch backends): the median by CUDA events within 2% of the median by the host clock with a
  synchronise (or within 20 us, for launch-bound tiny models), so neither clock misses queued work;
- memory: `peak_memory_mb` non-null, or null with the reason (never a silent 0);
- energy (GPU): J/sample x samples/s, the mean power, between 5% and 110% of the board's power limit;
- % of peak <= 100 against this machine's calibrated peaks;
- variants: 2:4 weights converted to sparse tensor cores on CUDA in half precision with `speedup_mechanism` set,
  and the structured and prefix variants running and matching their own eager fp32 logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends import SkipCell, Target, prepare
from bench.variants.model_spec import ModelSpec, build_model, realize_for
from bench.config import BackendOptions
from bench.doctor import Check, failed, passed, skipped
from bench.measure.timing import time_iterations

DTYPES = {"cpu": ["fp32"], "cuda": ["fp32", "tf32", "fp16", "bf16"]}
TOLERANCE = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 5e-2, "bf16": 1.5e-1}  # x max(1, |reference logits|)
LARGE = "random:564M"
LARGE_PATHS = {("compile", "bf16"), ("onnxruntime", "fp16")}  # beside eager in every dtype: under 6 min on an H100
VARIANTS = {"semi24": ModelSpec(method="semi24"), "structured": ModelSpec(method="structured", options={"sparsity": 0.5}),
            "prefix": ModelSpec(prefix_length=8)}
SHAPE = {"random:tiny": (4, 32), LARGE: (8, 128)}
TIME_TOLERANCE, TIME_FLOOR_NS = 0.02, 20_000


@dataclass
class Settings:
    devices: list[str]
    backends: list[str]
    dtypes: list[str] | None  # None: DTYPES per device kind
    models: list[str]
    threads: int
    workdir: Path
    peaks: dict[str, dict[str, Any] | None]  # device -> calibrated peaks (None: not calibrated, with the reason)
    peaks_reason: str = ""


def path_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    for device in settings.devices:
        kind = device.partition(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            checks.append(skipped(f"{device} *", "paths", f"CUDA is not available (torch {torch.__version__})"))
            continue
        for model_name in settings.models:
            if model_name == LARGE and kind != "cuda":
                continue
            model, _ = build_model(ModelSpec(model_name))
            batch, reference = _batch_and_reference(model, *SHAPE.get(model_name, (4, 32)))
            for backend in settings.backends:
                for dtype in settings.dtypes or DTYPES[kind]:
                    if model_name == LARGE and backend != "eager" and (backend, dtype) not in LARGE_PATHS:
                        continue
                    target = Target(device, dtype, settings.threads)
                    checks += _path(settings, f"{device} {backend} {dtype} {model_name}", backend, target, model,
                                    "dense", batch, reference)
        checks += variant_checks(settings, device)
    return checks


def variant_checks(settings: Settings, device: str) -> list[Check]:
    """The 2:4, structured and prefix variants on eager: fp32 on the CPU, bf16 on CUDA (where 2:4 kernels run)."""
    dtype = "bf16" if device.startswith("cuda") else "fp32"
    checks = []
    for name, spec in VARIANTS.items():
        area = f"{device} eager {dtype} {name}"
        try:
            model, info = build_model(spec)
        except Exception as exc:
            checks.append(failed(area, "build", f"{type(exc).__name__}: {exc}"))
            continue
        batch, reference = _batch_and_reference(model, *SHAPE["random:tiny"])
        checks += _path(settings, area, "eager", Target(device, dtype, settings.threads), model, info["method"], batch,
                        reference, variant=name)
    return checks


def _batch_and_reference(model, batch_size: int, seq_len: int) -> tuple[tuple[torch.Tensor, torch.Tensor], np.ndarray]:
    """Random ids right-padded to [B, T] (lengths T/2..T), and eager fp32 logits on the CPU: the parity reference."""
    from bench.data.tokenization import pad_batch

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch_size,), generator=g)
    rows = [torch.randint(4, model.config.vocab_size, (int(n),), generator=g).tolist() for n in lengths]
    batch = pad_batch(rows, model.config.pad_token_id, seq_len)
    with torch.inference_mode():
        return batch, model(*batch).float().numpy()


def _path(settings: Settings, area: str, backend: str, target: Target, model, method: str, batch, reference: np.ndarray,
          variant: str | None = None) -> list[Check]:
    workdir = settings.workdir / re.sub(r"[^\w.-]+", "-", area)
    try:
        realized, mechanism = realize_for(model, method, target, backend)
        runner = prepare(backend, realized, target, (batch[0][:2, :16], batch[1][:2, :16]), BackendOptions(), workdir)
    except SkipCell as exc:
        return [skipped(area, "prepare", str(exc))]
    except Exception as exc:
        return [failed(area, "prepare", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")]
    built = ", ".join(f"{k} {v:.1f}" for k, v in runner.build_seconds.items())
    checks = [passed(area, "prepare", f"{type(runner).__name__}{' (' + built + ')' if built else ''}")]
    try:
        inputs = runner.inputs(*batch)
        for _ in range(max(2, runner.warmup_per_shape)):
            runner(inputs)
        checks.append(_parity(area, target.dtype, runner.logits(runner(inputs)), reference))
        if variant:
            checks.append(_mechanism(area, variant, target, runner, mechanism))
            return checks
        p50_s, timing = _timing(area, runner, inputs)
        checks += [timing, _memory(area, runner, inputs), _energy(area, runner, inputs, batch[0].shape[0]),
                   _percent_of_peak(area, model, target, batch[0].shape, p50_s, settings,
                                    runner.info.get("linear_library"))]
    except Exception as exc:
        checks.append(failed(area, "run", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
    return checks


def _parity(area: str, dtype: str, logits: np.ndarray, reference: np.ndarray) -> Check:
    diff, bound = float(np.abs(logits - reference).max()), TOLERANCE[dtype] * max(1.0, float(np.abs(reference).max()))
    detail = f"max |logit - eager fp32| {diff:.2e} (bound {bound:.1e}), logits {logits.dtype}"
    ok = diff <= bound and logits.dtype == np.float32
    return (passed if ok else failed)(area, "parity", detail)


def _mechanism(area: str, variant: str, target: Target, runner, fields: dict[str, Any]) -> Check:
    mechanism, reason = fields.get("speedup_mechanism"), fields.get("speedup_mechanism_reason")
    if not mechanism or not reason:
        return failed(area, "speedup_mechanism", f"not set: {fields}")
    if variant == "structured":
        return (passed if mechanism == "smaller_gemm" else failed)(area, "speedup_mechanism", f"{mechanism}: {reason}")
    if variant == "prefix":
        return passed(area, "speedup_mechanism", f"{mechanism}: {reason}")
    if not target.is_cuda:
        return skipped(area, "2:4 conversion", f"speedup_mechanism {mechanism}: {reason}")
    sparse = [m for m in runner.module.modules() if isinstance(getattr(m, "weight", None), torch.sparse.SparseSemiStructuredTensor)]
    ok = mechanism == "sparse_tensor_cores" and bool(sparse)
    return (passed if ok else failed)(area, "2:4 conversion", f"{mechanism} ({reason}); {len(sparse)} linears converted")


def _timing(area: str, runner, inputs) -> tuple[float, Check]:
    def median_ns(cuda_events: bool) -> float:
        return float(np.median(time_iterations(lambda: runner(inputs), synchronize=runner.synchronize,
                                               cuda_events=cuda_events, warmup=2, min_iters=20, min_time_s=0.3,
                                               max_time_s=5.0)))

    host = median_ns(False)
    if not runner.cuda_events:
        why = ("CUDA events exist only on CUDA" if not runner.target.is_cuda else
               f"{runner.backend} runs on its own stream: timed by the host clock with a synchronise")
        return host / 1e9, skipped(area, "timing", f"{why}; host-clock p50 {host / 1e6:.3f} ms")
    events = median_ns(True)
    gap = abs(events - host)
    detail = f"CUDA events p50 {events / 1e6:.3f} ms vs host clock {host / 1e6:.3f} ms ({events / host - 1:+.1%})"
    ok = gap <= TIME_TOLERANCE * host or gap <= TIME_FLOOR_NS
    return events / 1e9, (passed if ok else failed)(area, "timing", detail)


def _memory(area: str, runner, inputs) -> Check:
    from bench.measure.memory import measure_memory

    runner.release_memory()
    for _ in range(runner.warmup_per_shape):
        runner(inputs)
    fields = measure_memory(lambda: runner(inputs), runner.synchronize, runner.target.device, allocator=runner.allocator)
    value, source = fields["peak_memory_mb"], fields["memory_source"]
    if value is None:
        return (passed if source else failed)(area, "memory", f"null: {source}")
    return passed(area, "memory", f"{value:.0f} MB from {source}")


def _energy(area: str, runner, inputs, batch_size: int) -> Check:
    from bench.measure.energy import EnergyMeter

    meter = EnergyMeter.open(runner.target.device)
    if meter.counter.handle is None:
        return skipped(area, "energy", meter.counter.reason or "no counter")
    meter.start(runner.synchronize)
    samples = time_iterations(lambda: runner(inputs), synchronize=runner.synchronize, cuda_events=runner.cuda_events,
                              warmup=0, min_iters=10, min_time_s=1.0, max_time_s=3.0)
    meter.stop(runner.synchronize, samples=len(samples) * batch_size, seconds=float(samples.sum()) / 1e9)
    fields = meter.fields()
    if fields["energy_j_per_sample"] is None:
        return failed(area, "energy", fields["energy_note"])
    watts = fields["energy_j"] / fields["energy_window_s"]  # J/sample x samples/s
    limit = meter.counter.nvml.nvmlDeviceGetEnforcedPowerLimit(meter.counter.handle) / 1e3  # mW -> W
    detail = (f"{fields['energy_j_per_sample'] * 1e3:.2f} mJ/sample x {len(samples) * batch_size / fields['energy_window_s']:.0f} "
              f"samples/s = {watts:.0f} W (board limit {limit:.0f} W; ±{fields['energy_uncertainty_rel'] or 0:.0%})")
    return (passed if 0.05 * limit <= watts <= 1.1 * limit else failed)(area, "energy", detail)


def _percent_of_peak(area: str, model, target: Target, shape, p50_s: float, settings: Settings,
                     library: str | None = None) -> Check:
    from bench.measure.calibrate import roofline_fields
    from bench.measure.roofline import forward_cost

    peaks = settings.peaks.get(target.device)
    if not peaks:
        return skipped(area, "% of peak", settings.peaks_reason or "no calibrated peaks")
    fields = roofline_fields(forward_cost(model, int(shape[0]), int(shape[1]), target.torch_dtype), p50_s, target.dtype,
                             peaks, library)
    percent = fields["percent_of_peak"]
    if percent is None:
        return skipped(area, "% of peak", f"no calibrated {target.dtype} peak on {target.device}")
    detail = f"{percent:.1f}% of the {fields['bound']} roof ({fields['achieved_tflops']:.3f} TFLOP/s"
    if fields.get("peak_library"):
        detail += f", peak from {fields['peak_library']}"
    if fields.get("percent_of_library_peak") is not None:
        detail += f"; {fields['percent_of_library_peak']:.1f}% of its own {library}"
    detail += ")"
    if fields.get("peak_note"):
        detail += f": {fields['peak_note']} (bench calibrate --refresh)"
    return (passed if percent <= 100 else failed)(area, "% of peak", detail)
