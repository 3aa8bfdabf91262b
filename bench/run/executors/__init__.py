"""Executors carry out what the sweep plans: build each variant's seeds, then measure each comparison group.

`local` does both on this machine, one group after another (bench.run.group). `ray` (bench.run.executors.ray)
sends the builds and the groups to a Ray cluster, one group per device, and streams the records back to this
process, the one writer of the run directory. The sweep talks to either through the same four calls.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from bench.config import MeasureConfig, SweepConfig
from bench.run.cell import CellTask
from bench.run.executors.local import LocalExecutor
from bench.run.group import GroupSink
from bench.run.progress import Progress
from bench.run.variant_build import SeedBuild, SeedJob


class PendingBuild(Protocol):
    def result(self) -> SeedBuild: ...


class Executor(Protocol):
    kind: str

    def preflight(self, plan: Any) -> None:
        """What must hold before the run directory exists (Ray: the cluster answers and one node can hold a group)."""

    def session(self, store: Any, console: Any, plan: Any) -> AbstractContextManager[None]:
        """Around the whole sweep: connect, describe the machines in env.json; on the way out, wait for what is
        still running, or cancel it when the sweep is interrupted."""

    def peaks(self, mode: str, device: str, threads: int, cache_dir: Any, console: Any) -> dict | None:
        """The device peaks for % of peak, where they can be measured here (None: each group measures its own)."""

    def submit_builds(self, jobs: list[SeedJob], console: Any) -> dict[tuple[str, int], PendingBuild]:
        """Start building (or leave for later): one pending result per (variant, seed)."""

    def measure_group(self, tasks: list[CellTask], reference: str | None, cfg: MeasureConfig, weight_bytes: int,
                      peaks: dict | None, sink: GroupSink, *, done: set[str], seed: int,
                      progress: Progress | None = None) -> None:
        """Measure one comparison group on one device; its results reach `sink` (maybe after this returns), and
        `progress` hears of prepared and finished cells."""


def make_executor(cfg: SweepConfig) -> Executor:
    if cfg.executor.kind == "ray":
        from bench.run.executors.ray import RayExecutor

        return RayExecutor(cfg)
    return LocalExecutor()
