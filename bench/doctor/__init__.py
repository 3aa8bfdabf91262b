"""`bench doctor`: checks this machine's stack and proves every measurement path the harness has here.

stack.py checks the software and hardware (torch and CUDA builds, cuDNN, cuSPARSELt, ONNX Runtime providers each
running a real session, NVML, the TF32 policy); paths.py runs every available device x backend x dtype on
random:tiny (and random:564M on a GPU) and checks what a sweep's records rely on (parity with eager fp32, CUDA-event
vs host-clock time, memory sources, energy, % of peak, 2:4 conversion, structured and prefix variants); report.py
shows the pass / fail / skip table and writes the JSON file. A check that cannot apply here is skipped with the
reason, never passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Check:
    """One row of the doctor's table."""

    area: str  # "stack" or the path, e.g. "cpu eager fp32 random:tiny"
    name: str  # what is checked: "parity", "timing", "ORT CUDAExecutionProvider", ...
    status: str  # pass | fail | skip
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(area: str, name: str, detail: str) -> Check:
    return Check(area, name, "pass", detail)


def failed(area: str, name: str, detail: str) -> Check:
    return Check(area, name, "fail", detail)


def skipped(area: str, name: str, detail: str) -> Check:
    return Check(area, name, "skip", detail)
