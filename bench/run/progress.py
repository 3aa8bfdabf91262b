"""Progress of a long run: one line after each step, with cells done of total, the current group and an ETA.

Cells finish together when their group's rounds end, so the ETA is computed from the work that has finished:
cell preparations (build, export, compile, evaluation and memory passes) at their mean duration so far, and
rounds at the mean round duration so far, the rounds still expected being the stopping rule's minimum. Past the
minimum the rounds go on until the rest of the stopping rule is met, so the ETA then says so (with the bound that
max_rounds sets) instead of counting down to a stuck 0s.

Round lines come at most every `min_interval_s` (the CLI sets 15 s when its output is not a terminal, so a log or a
pipe gets a line per step that matters, not one per second); preparations and finished cells always get theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

PIPED_PROGRESS_INTERVAL_S = 15.0  # between round lines when the output is a log or a pipe


@dataclass
class Progress:
    total_cells: int
    min_rounds: int
    say: Callable[[str], None]
    max_rounds: int | None = None
    min_interval_s: float = 0.0
    done_cells: int = 0
    prepared: int = 0
    group: str = ""
    _prep_seconds: list[float] = field(default_factory=list)
    _round_seconds: list[float] = field(default_factory=list)
    _rounds_left: int = 0  # in the current batch, to its minimum
    _rounds_run: int = 0  # in the current batch
    _shown: float = float("-inf")
    _batches_left: int = 0  # batches of all groups not yet timed, the current one excluded
    _started: float = field(default_factory=time.perf_counter)

    def expect(self, batches: int) -> None:
        """A group is about to run `batches` batches (resumed ones already subtracted)."""
        self._batches_left += batches

    def batch_started(self, group: str, cells: int) -> None:
        self.group, self._rounds_left, self._rounds_run = group, self.min_rounds, 0
        self._batches_left = max(0, self._batches_left - 1)

    def cell_prepared(self, seconds: float) -> None:
        self.prepared += 1
        self._prep_seconds.append(seconds)
        self._show()

    def round_done(self, seconds: float) -> None:
        self._round_seconds.append(seconds)
        self._rounds_left = max(0, self._rounds_left - 1)
        self._rounds_run += 1
        self._show(throttled=True)

    def cells_done(self, count: int) -> None:
        self.done_cells += count
        self._rounds_left, self._rounds_run = 0, 0
        self._show()

    def past_minimum(self) -> bool:
        """The current batch has run its minimum rounds and goes on for the rest of the stopping rule."""
        return self._rounds_run >= self.min_rounds and self._rounds_left == 0

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
        head = (f"progress: {self.done_cells}/{self.total_cells} cells done, {self.prepared} prepared · {self.group} · "
                f"{_clock(elapsed)} elapsed")
        if eta is None:
            return head
        if self.past_minimum():
            later = f" + {_clock(eta)} for the groups after it" if eta >= 1 else ""
            bound = ""
            if self.max_rounds is not None and self._round_seconds:
                left = max(0, self.max_rounds - self._rounds_run) * sum(self._round_seconds) / len(self._round_seconds)
                bound = f", at most {_clock(left)} more (max_rounds {self.max_rounds})"
            return (f"{head} · round {self._rounds_run}: past the minimum {self.min_rounds}, running until the stopping "
                    f"rule is met{bound}{later}")
        return f"{head} · ETA {_clock(eta)}"

    def _show(self, throttled: bool = False) -> None:
        now = time.perf_counter()
        if throttled and now - self._shown < self.min_interval_s:
            return
        self._shown = now
        self.say(f"[dim]{self.line()}[/]")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
