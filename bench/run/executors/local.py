"""The local executor: builds and groups run on this machine, in the order the sweep asks for them.

A build runs when its result is first asked for, and a group is measured before `measure_group` returns, so a
local sweep does exactly what it did before executors existed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.config import MeasureConfig
from bench.run.cell import CellTask
from bench.run.group import GroupSink, default_max_live, run_group
from bench.run.progress import Progress
from bench.run.variant_build import SeedBuild, SeedJob, build_seed


class DeferredBuild:
    """A build that runs here when its result is first asked for."""

    def __init__(self, job: SeedJob, console: Any) -> None:
        self.job, self.console = job, console
        self.outcome: SeedBuild | None = None

    def result(self) -> SeedBuild:
        if self.outcome is None:
            self.outcome = build_seed(self.job, self.console)
        return self.outcome


class LocalExecutor:
    kind = "local"

    def preflight(self, plan: Any) -> None:
        """Nothing to check beyond the sweep's own preflight."""

    @contextmanager
    def session(self, store: Any, console: Any, plan: Any) -> Iterator[None]:
        yield

    def peaks(self, mode: str, device: str, threads: int, cache_dir: Any, console: Any) -> dict | None:
        from bench.measure.calibrate import sweep_peaks

        return sweep_peaks(mode, device, threads, cache_dir, console)

    def submit_builds(self, jobs: list[SeedJob], console: Any) -> dict[tuple[str, int], DeferredBuild]:
        return {job.key: DeferredBuild(job, console) for job in jobs}

    def measure_group(self, tasks: list[CellTask], reference: str | None, cfg: MeasureConfig, weight_bytes: int,
                      peaks: dict | None, sink: GroupSink, *, done: set[str], seed: int,
                      progress: Progress | None = None) -> None:
        run_group(tasks, reference, cfg, default_max_live(cfg, weight_bytes), peaks, sink, done=done, seed=seed,
                  progress=progress)
