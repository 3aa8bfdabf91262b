"""Energy from NVML's total-energy counter (millijoules since driver load), read around a timed region.

Only GPUs from Volta on expose the counter; elsewhere (CPU, older GPUs, no NVML) the reading is None with
the reason, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnergyCounter:
    handle: object | None
    reason: str | None  # why there is no counter, when there is none

    @classmethod
    def open(cls, device: str, index: int = 0) -> "EnergyCounter":
        if device != "cuda":
            return cls(None, "no energy counter for the CPU here (NVML measures GPUs only)")
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises NotSupported before Volta
            return cls(handle, None)
        except ImportError:
            return cls(None, "nvidia-ml-py is not installed")
        except Exception as exc:  # NVMLError subclasses: not supported, no permission, driver missing
            return cls(None, f"NVML energy counter unavailable: {exc}")

    def read_mj(self) -> int | None:
        if self.handle is None:
            return None
        import pynvml

        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))


def energy_fields(start_mj: int | None, end_mj: int | None, samples: int, counter: EnergyCounter) -> dict:
    if start_mj is None or end_mj is None or samples <= 0:
        return {"energy_j_per_sample": None, "samples_per_j": None, "energy_note": counter.reason}
    joules = (end_mj - start_mj) / 1e3
    per_sample = joules / samples
    return {"energy_j": joules, "energy_j_per_sample": per_sample,
            "samples_per_j": 1 / per_sample if per_sample > 0 else None, "energy_note": "NVML total energy counter"}
