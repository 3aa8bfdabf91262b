"""Gradual magnitude pruning's schedule (Zhu & Gupta 2017, "To prune, or not to prune", eq. 1).

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt))**3    for t in [t_0, t_0 + n * dt]

Sparsity rises fast while there are many redundant weights and slowly near the target. Here t_0 = 0 and
s_i = 0: the ramp covers the first `fraction` of the training steps (n * dt of them), the rest fine-tunes
at the final sparsity with the masks fixed. Masks are recomputed at n <= UPDATES evenly spaced steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Mask updates over the ramp (Zhu & Gupta's n): enough for a smooth rise, few enough that a global ranking
# of 302M weights at each update stays cheap next to training.
UPDATES = 16


def cubic_sparsity(step: int, final: float, ramp_steps: int, initial: float = 0.0) -> float:
    """Sparsity at `step` (0-based count of steps done) of a cubic ramp from `initial` to `final`."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return final
    progress = max(step, 0) / ramp_steps
    return final + (initial - final) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class CubicSchedule:
    final: float  # target sparsity
    total_steps: int  # optimiser steps of the whole fine-tuning
    fraction: float  # share of the steps over which sparsity rises

    @property
    def ramp_steps(self) -> int:
        return max(1, round(self.fraction * self.total_steps))

    @property
    def update_steps(self) -> list[int]:
        """The steps after which masks are recomputed: every dt steps up to the ramp's end, which is always one."""
        ramp = self.ramp_steps
        dt = max(1, math.ceil(ramp / UPDATES))
        return sorted({*range(dt, ramp, dt), ramp})

    def level(self, step: int) -> float:
        return cubic_sparsity(step, self.final, self.ramp_steps)
