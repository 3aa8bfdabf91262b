"""One comparison group on a Ray cluster, followed from the driver: submitted as a streaming task pinned to one
device, its events handed to the sweep's sink, and a lost worker or node met by running it again
(`executor.max_retries`), then by failed records that say why.

A cell's records reach the sink together when the cell is finished (its prepared records with its latency
records), never half: a group that dies mid-way leaves nothing of its unfinished cells behind, so a retry, or a
`--resume` after the driver itself was killed, measures exactly those cells again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape

from bench.config import MeasureConfig
from bench.errors import BenchError
from bench.run import records
from bench.run.cell import CellTask, Prepared
from bench.run.executors.ray_tasks import GroupPayload, measure_group
from bench.run.group import GroupSink
from bench.run.progress import Progress

if TYPE_CHECKING:
    from bench.run.executors.ray import RayExecutor

_NODE_KEYS = ("node_id", "node_ip", "node_hostname", "device_name", "device_uuid")


def resources(device: str, threads: int) -> dict[str, Any]:
    """One device per task: a GPU, or `threads` CPU cores."""
    return {"num_gpus": 1} if device.startswith("cuda") else {"num_cpus": threads}


def raised(exc: Exception) -> BaseException:
    """What a task raised, as the driver raises it again: a BenchError keeps its one line; anything else is the
    task's own exception (Ray's wrapper carries the remote traceback in its text)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BenchError):
        return BenchError(str(cause))
    return cause if isinstance(cause, BaseException) else exc


def lost_reason(exc: Exception) -> str:
    """'WorkerCrashedError: The worker died unexpectedly while executing this task': the type and first sentence."""
    text = str(exc).strip()
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class GroupRun:
    def __init__(self, executor: RayExecutor, tasks: list[CellTask], reference: str | None, cfg: MeasureConfig,
                 weight_bytes: int, sink: GroupSink, done: set[str], seed: int, progress: Progress | None) -> None:
        self.executor, self.tasks, self.reference, self.cfg = executor, tasks, reference, cfg
        self.weight_bytes, self.sink, self.done, self.seed, self.progress = weight_bytes, sink, done, seed, progress
        self.by_id = {t.cell_id: t for t in tasks}
        self.label = f"{tasks[0].base['task']} {tasks[0].base['dtype']}"
        self.stream: Any = None
        self.attempt = 0
        self.node: dict[str, Any] | None = None
        self.held: dict[str, Prepared] = {}  # prepared records of cells whose latency is still being measured

    def submit(self) -> None:
        ex = self.executor
        self.attempt += 1
        self.node, self.held = None, {}
        payload = GroupPayload(
            tasks=self.tasks, reference=self.reference, measure=self.cfg, weight_bytes=self.weight_bytes,
            seed=self.seed, done={cell for cell in self.by_id if cell in self.done},
            artifacts={t.artifact_path: ex.packed.get(t.artifact_path) for t in self.tasks},
            cache_dir=ex.cache_dir, attempt=self.attempt,
        )
        remote = ex.ray.remote(measure_group).options(num_returns="streaming", max_retries=0,
                                                      **resources(self.cfg.device, self.tasks[0].target.threads))
        self.stream = remote.remote(payload)

    def step(self) -> None:
        """The next event of this group (the driver's wait said one is ready)."""
        ray = self.executor.ray
        try:
            event = ray.get(next(self.stream))
        except StopIteration:
            self.stream = None
            self.executor.finished(self)
            return
        except ray.exceptions.RayTaskError as exc:
            cause = raised(exc)
            if not isinstance(cause, ray.exceptions.RayError):  # the group itself raised: the run fails, as locally
                raise cause from None
            self._lost(lost_reason(cause))  # Ray failed inside it (an artifact lost with its node)
            return
        except ray.exceptions.RayError as exc:  # its worker or node was lost
            self._lost(lost_reason(exc))
            return
        kind = event[0]
        if kind == "started":
            self.node = event[1]
            self.executor.note_node(self.node | {"fingerprint": event[2]})
            self._say(f"started on {self.node['node_hostname']} ({self.node['node_ip']}), worker pid "
                      f"{self.node['worker_pid']}, attempt {self.attempt}, device {self.node.get('device_name')}")
        elif kind == "announce":
            self._say(event[1])
        elif kind == "prepared":
            task = self.by_id[event[1]]
            self._count(prepared=1)
            if "latency" in self.cfg.scenarios:
                self.held[event[1]] = event[2]
            else:
                self.sink.prepared(task, event[2])
                self._count(done=1)
        elif kind == "measured":
            task = self.by_id[event[1]]
            if event[1] in self.held:
                self.sink.prepared(task, self.held.pop(event[1]))
            self.sink.measured(task, event[2])
            self._count(done=1)

    def _lost(self, why: str) -> None:
        where = f"{self.node['node_hostname']} ({self.node['node_ip']})" if self.node else "a node not yet known"
        retries = self.executor.cfg.max_retries
        if self.attempt <= retries:
            self._say(f"[yellow]lost[/] on {escape(where)}: {escape(why)}; running the group again "
                      f"(attempt {self.attempt + 1} of {retries + 1})", markup=True)
            self.submit()
            return
        reason = (f"ray worker lost: {why} on {where}; the group ran {self.attempt} time(s) "
                  f"(executor.max_retries = {retries})")
        self._say(f"[red]lost[/] on {escape(where)}: {escape(why)}; its unfinished cells are failed", markup=True)
        self.stream = None
        self.executor.finished(self)
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        """Failed records for every cell of the group not finished yet, naming the node the group was lost on."""
        where = {k: self.node[k] for k in _NODE_KEYS if self.node and k in self.node}
        for cell_id, task in self.by_id.items():
            if cell_id in self.done:
                continue
            self._count(done=1)
            base = task.base | where | {"executor": "ray", "ray_attempt": self.attempt}
            stand_ins = records.stand_ins(self.cfg, base, "failed", reason)
            for record in stand_ins:
                record["failure_retryable"] = True
            self.sink.prepared(task, Prepared("failed", reason, [r for r in stand_ins if r["scenario"] != "latency"],
                                              base, retryable=True))
            if "latency" in self.cfg.scenarios:
                self.sink.measured(task, [r for r in stand_ins if r["scenario"] == "latency"])

    def _count(self, prepared: int = 0, done: int = 0) -> None:
        """The sweep's progress line, without an ETA: groups run side by side, so the local estimate does not hold."""
        if self.progress is None:
            return
        self.progress.group = f"{len(self.executor.groups)} group(s) running"
        self.progress.prepared += prepared
        if done:
            self.progress.cells_done(done)
        elif prepared:
            self.progress.say(f"[dim]{self.progress.line()}[/]")

    def _say(self, line: str, markup: bool = False) -> None:
        text = line if markup else escape(line)
        self.sink.announce(f"{escape(f'[{self.label}]')} {text}")
