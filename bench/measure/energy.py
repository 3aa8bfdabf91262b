"""Energy from NVML's total-energy counter (millijoules since driver load), read around timed windows.

- The counter is the GPU the cell runs on, found by UUID (bench.measure.device.nvml_handle), not NVML's index 0.
- It is read only after the device is synchronised (`EnergyMeter.start/stop` take the runner's synchronize), so
  queued warm-up work is not charged to the window and the window's own work is all in it.
- The counter is coarse: it moves in steps (about every 10-100 ms, by GPU and driver). Its step period is probed
  once per process; a window's energy is uncertain by up to one step at each end, so windows accumulate (several
  blocks of a round add up) and the record carries `energy_uncertainty_rel` = 2 x period / total window, with a note
  when that exceeds MAX_UNCERTAINTY, and no value at all when the window is shorter than two steps.
Only GPUs from Volta on expose the counter; elsewhere (CPU, older GPUs, no NVML) the value is None with the
reason, never 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_UNCERTAINTY = 0.05  # a window shorter than 40 counter periods is flagged
_PERIODS: dict[str, float | None] = {}  # device -> probed step period in seconds, once per process


@dataclass
class EnergyCounter:
    handle: object | None
    reason: str | None  # why there is no counter, when there is none
    nvml: Any = None  # the pynvml module the handle belongs to
    device: str = ""

    @classmethod
    def open(cls, device: str) -> EnergyCounter:
        """The counter of `device` ("cuda", "cuda:N"); a counter-less stand-in with the reason elsewhere."""
        if not device.startswith("cuda"):
            return cls(None, "no energy counter for the CPU here (NVML measures GPUs only)")
        try:
            import pynvml
        except ImportError:
            return cls(None, "nvidia-ml-py is not installed (pip install 'xglm-bench[gpu]')")
        try:
            from bench.measure.device import nvml_handle

            pynvml.nvmlInit()
            handle = nvml_handle(pynvml, device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises NotSupported before Volta
            return cls(handle, None, pynvml, device)
        except Exception as exc:  # NVMLError subclasses: not supported, no permission, driver missing
            return cls(None, f"NVML energy counter unavailable: {type(exc).__name__}: {exc}")

    def read_mj(self) -> int | None:
        if self.handle is None:
            return None
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def period_s(self, timeout_s: float = 1.0) -> float | None:
        """The counter's step period: the time between two changes of its value, probed once per process."""
        if self.handle is None:
            return None
        if self.device not in _PERIODS:
            _PERIODS[self.device] = probe_period(self.read_mj, timeout_s)
        return _PERIODS[self.device]


def probe_period(read: Callable[[], int | None], timeout_s: float = 1.0, poll_s: float = 0.001) -> float | None:
    """Seconds between the 1st and 3rd change of a stepping counter, halved (two full steps: the first change only
    ends a partial step). None when it does not step twice within `timeout_s` (an idle GPU may not)."""
    changes: list[int] = []
    last = read()
    deadline = time.perf_counter_ns() + int(timeout_s * 1e9)  # probing the counter's clock, not timing work
    while len(changes) < 3 and time.perf_counter_ns() < deadline:
        time.sleep(poll_s)
        value = read()
        if value != last:
            changes.append(time.perf_counter_ns())
            last = value
    return (changes[2] - changes[0]) / 2e9 if len(changes) == 3 else None


@dataclass
class EnergyMeter:
    """Energy over one or more timed windows of one cell at one shape. start/stop synchronise the device before
    reading, so that only the window's own work is counted; windows accumulate until `fields()`."""

    counter: EnergyCounter
    joules: float = 0.0
    seconds: float = 0.0
    samples: int = 0
    windows: int = 0
    _start: int | None = field(default=None, repr=False)

    @classmethod
    def open(cls, device: str) -> EnergyMeter:
        return cls(EnergyCounter.open(device))

    def start(self, synchronize: Callable[[], None]) -> None:
        synchronize()  # queued warm-up work finishes before the first reading
        self._start = self.counter.read_mj()

    def stop(self, synchronize: Callable[[], None], *, samples: int, seconds: float) -> None:
        """End a window that ran `samples` samples (batch rows) in `seconds` of timed work."""
        synchronize()  # the window's own queued work finishes before the last reading
        end = self.counter.read_mj()
        if self._start is not None and end is not None:
            self.add_window(end - self._start, samples=samples, seconds=seconds)
        self._start = None

    def add_window(self, millijoules: float, *, samples: int, seconds: float) -> None:
        self.joules += millijoules / 1e3
        self.samples += samples
        self.seconds += seconds
        self.windows += 1

    def fields(self) -> dict[str, Any]:
        return energy_fields_from(self.joules, self.seconds, self.samples, self.windows, self.counter)


def energy_fields_from(joules: float, seconds: float | None, samples: int, windows: int, counter: EnergyCounter,
                       period_s: float | None = None) -> dict[str, Any]:
    """Record fields of accumulated windows: J/sample and samples/J where the windows are long enough for the
    counter's step period to matter little; the uncertainty and window length always, when there is a counter."""
    empty = {"energy_j": None, "energy_j_per_sample": None, "samples_per_j": None, "energy_window_s": None,
             "energy_windows": None, "energy_counter_period_ms": None, "energy_uncertainty_rel": None}
    if windows == 0 or samples <= 0:
        return empty | {"energy_note": counter.reason or "no timed window"}
    period = counter.period_s() if period_s is None else period_s
    out = empty | {"energy_window_s": seconds, "energy_windows": windows,
                   "energy_counter_period_ms": None if period is None else period * 1e3}
    if period is None or seconds is None:
        note = "NVML total energy counter, read after a synchronise; uncertainty unknown (" + (
            "window length not given)" if seconds is None else "the counter's step period could not be probed)")
    elif seconds < 2 * period:
        return out | {"energy_note": f"window {seconds * 1e3:.0f} ms is shorter than two counter steps "
                                     f"({period * 1e3:.0f} ms each): no energy figure"}
    else:
        uncertainty = 2 * period / seconds
        out["energy_uncertainty_rel"] = uncertainty
        note = "NVML total energy counter, read after a synchronise"
        if uncertainty > MAX_UNCERTAINTY:
            note += f"; window {seconds:.2f} s is short for the counter's {period * 1e3:.0f} ms steps (±{uncertainty:.0%})"
    per_sample = joules / samples
    return out | {"energy_j": joules, "energy_j_per_sample": per_sample,
                  "samples_per_j": 1 / per_sample if per_sample > 0 else None, "energy_note": note}


def energy_fields(start_mj: int | None, end_mj: int | None, samples: int, counter: EnergyCounter,
                  seconds: float | None = None) -> dict[str, Any]:
    """One window read by the caller (start and end in mJ, both after a synchronise)."""
    if start_mj is None or end_mj is None:
        return energy_fields_from(0.0, 0.0, 0, 0, counter)
    return energy_fields_from((end_mj - start_mj) / 1e3, seconds, samples, 1, counter)
