"""Progress of a long run: one line after each step, with cells done of total, the current group and an ETA.

Cells finish together when their group's rounds end, so the ETA is computed from the work that has finished:
cell preparations (build, export, compile, evaluation and memory passes) at their mean duration so far, and
rounds at the mean round duration so far, the rounds still expected being the stopping rule's minimum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    total_cells: int
    min_rounds: int
    say: Callable[[str], None]
    done_cells: int = 0
    prepared: int = 0
    group: str = ""
    _prep_seconds: list[float] = field(default_factory=list)
    _round_seconds: list[float] = field(default_factory=list)
    _rounds_left: int = 0  # in the current batch
    _batches_left: int = 0  # batches of all groups not yet timed, the current one excluded
    _started: float = field(default_factory=time.perf_counter)

    def expect(self, batches: int) -> None:
        """A group is about to run `batches` batches (resumed ones already subtracted)."""
        self._batches_left += batches

    def batch_started(self, group: str, cells: int) -> None:
        self.group, self._rounds_left = group, self.min_rounds
        self._batches_left = max(0, self._batches_left - 1)

    def cell_prepared(self, seconds: float) -> None:
        self.prepared += 1
        self._prep_seconds.append(seconds)
        self._show()

    def round_done(self, seconds: float) -> None:
        self._round_seconds.append(seconds)
        self._rounds_left = max(0, self._rounds_left - 1)
        self._show()

    def cells_done(self, count: int) -> None:
        self.done_cells += count
        self._rounds_left = 0
        self._show()

    def eta_s(self) -> float | None:
        if not self._prep_seconds:
            return None
        prep = sum(self._prep_seconds) / len(self._prep_seconds)
        round_s = sum(self._round_seconds) / len(self._round_seconds) if self._round_seconds else 0.0
        unprepared = max(0, self.total_cells - self.prepared)
        later_rounds = self._batches_left * self.min_rounds
        return unprepared * prep + (self._rounds_left + later_rounds) * round_s

    def line(self) -> str:
        eta = self.eta_s()
        elapsed = time.perf_counter() - self._started
        return (f"progress: {self.done_cells}/{self.total_cells} cells done, {self.prepared} prepared · {self.group} · "
                f"{_clock(elapsed)} elapsed" + (f" · ETA {_clock(eta)}" if eta is not None else ""))

    def _show(self) -> None:
        self.say(f"[dim]{self.line()}[/]")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
