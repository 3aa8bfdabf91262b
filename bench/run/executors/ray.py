"""The Ray executor: variant builds and comparison groups as Ray tasks on a cluster; this process (the driver)
stays the one writer of the run directory.

- Session: join the cluster (`executor.address`, else $RAY_ADDRESS, else a Ray instance on this machine), probe
  every node (its fingerprint goes into env.json under "nodes") and decide how artifacts travel: through the cache
  directory when every node sees the driver's (checked with a marker file), else through Ray's object store.
- Builds: one task per variant seed, all submitted at once (`num_gpus=1` on CUDA, `num_cpus=threads` on CPU); a
  lost worker is retried by Ray `max_retries` times, then fails that seed's cells with the reason.
- Groups: one streaming task per group, pinned to one device by the same resources, so that no ratio is ever
  measured across devices (bench.run.executors.ray_groups follows each one).
- Ctrl-C (or any error) cancels every task still running; the sweep then marks the run incomplete.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import MeasureConfig, SweepConfig
from bench.config import ExecutorConfig
from bench.errors import BenchError
from bench.run.cell import CellTask
from bench.run.executors import ray_tasks
from bench.run.executors.ray_groups import GroupRun, lost_reason, raised, resources
from bench.run.group import GroupSink
from bench.run.progress import Progress
from bench.run.variant_build import SeedBuild, SeedJob

PROBE_TIMEOUT_S = 300.0
_COMPARED = ("bench_version", "git_commit", "torch_version", "transformers_version", "onnxruntime_version")


def check_config(sweep: SweepConfig) -> None:
    """What the Ray executor cannot do, said before the run directory exists."""
    require_ray()
    if sweep.measure.device.startswith("cuda:"):
        raise BenchError(f"measure.device '{sweep.measure.device}' names one GPU, but on Ray each group gets its own "
                         "GPU from the cluster: use device 'cuda'")


def require_ray():
    try:
        import ray
    except ImportError:
        raise BenchError("executor 'ray' needs Ray, which is not installed here: pip install 'xglm-bench[ray]' "
                         "(or use --executor local)") from None
    return ray


class RayExecutor:
    kind = "ray"

    def __init__(self, sweep: SweepConfig) -> None:
        check_config(sweep)
        self.cfg: ExecutorConfig = sweep.executor
        self.cache_dir = sweep.cache_dir  # the config's, as each node resolves it
        self.device, self.peaks_mode = sweep.measure.device, sweep.measure.peaks
        import ray

        self.ray = ray
        self.groups: list[GroupRun] = []
        self.pending: list[Any] = []  # build results not collected yet (cancelled on Ctrl-C)
        self.packed: dict[str, Any] = {}  # artifact path on its build node -> ObjectRef of its files
        self.shared = True
        self.nodes: dict[str, dict[str, Any]] = {}
        self.joined_here = False
        self.surveyed = False  # env.json holds the survey; a node seen later is added at once

    # ----------------------------------------------------------------------------------------------- session

    def preflight(self, plan: Any) -> None:
        """Join the cluster and check that one node can hold a group, before the run directory exists."""
        self._join()
        try:
            self.check_feasible(self.device, plan.threads)
        except BaseException:
            if self.joined_here:
                self.ray.shutdown()
                self.joined_here = False
            raise

    @contextmanager
    def session(self, store: Any, console: Any, plan: Any) -> Iterator[None]:
        self.store, self.console, self.plan = store, console, plan
        self._join()
        try:
            self._survey()
            self._calibrate(plan.threads)
            yield
            while self.groups:
                self.pump()
        except BaseException:
            self._cancel()
            raise
        finally:
            if self.joined_here:
                self.ray.shutdown()

    def _join(self) -> None:
        ray = self.ray
        if ray.is_initialized():  # a caller (a test, a notebook) holds the connection: use it, leave it open
            return
        try:
            ray.init(address=self.cfg.address, log_to_driver=True)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError for a malformed address
            where = self.cfg.address or "$RAY_ADDRESS or a new local instance"
            raise BenchError(f"cannot join the Ray cluster at {where}: {type(exc).__name__}: {exc}; start it with "
                             "`ray start --head` or fix --ray-address") from None
        self.joined_here = True

    def _survey(self) -> None:
        """Every live node's fingerprint, and whether it sees the driver's cache directory."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        alive = [n for n in ray.nodes() if n.get("Alive")]
        cache_dir = Path(self.plan.cache_dir).resolve()
        cache_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        marker = f".ray-visibility-{token[:8]}"
        (cache_dir / marker).write_text(token, encoding="utf-8")
        try:
            probe = ray.remote(ray_tasks.probe)
            refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(str(cache_dir), marker, token) for n in alive]
            found = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise BenchError(f"a Ray node did not answer within {PROBE_TIMEOUT_S:.0f} s; check `ray status`") from None
        finally:
            (cache_dir / marker).unlink(missing_ok=True)
        resources_by_node = {n["NodeID"]: n.get("Resources", {}) for n in alive}
        blind = [f"{p['node_hostname']} ({p['node_ip']})" for p in found if not p["sees_cache_dir"]]
        if self.cfg.artifacts == "shared" and blind:
            raise BenchError(f"executor.artifacts = 'shared' but {', '.join(blind)} cannot see the cache directory "
                             f"{cache_dir}; mount it on every node at the same path, or use artifacts = 'auto'")
        self.shared = self.cfg.artifacts == "shared" or (self.cfg.artifacts == "auto" and not blind)
        how = (f"the shared cache directory {cache_dir}" if self.shared else
               "Ray's object store (" + (f"not visible from {', '.join(blind)}" if blind else "executor.artifacts") + ")")
        for probed in found:
            self.note_node(probed | {"resources": resources_by_node.get(probed["node_id"], {})})
        total = {key: sum(r.get(key, 0) for r in resources_by_node.values()) for key in ("CPU", "GPU")}
        self.console.print(f"ray {ray.__version__}: {len(alive)} node(s), {total['CPU']:g} CPUs, {total['GPU']:g} GPUs; "
                           f"artifacts reach the groups through {how}", highlight=False)
        self._write_env({"ray_version": ray.__version__, "address": self.cfg.address, "artifacts": how,
                         "cluster_resources": {k: v for k, v in ray.cluster_resources().items() if "node:" not in k}})
        self._warn_mismatches(found)

    def _calibrate(self, threads: int) -> None:
        """Each node's peaks before any group runs, with the device to itself (a group's resources)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self.peaks_mode != "auto":
            return
        wanted = resources(self.device, threads)
        need = ("GPU", 1) if "num_gpus" in wanted else ("CPU", threads)
        able = [n for n in self.ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(need[0], 0) >= need[1]]
        task = self.ray.remote(ray_tasks.calibrate)
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False), **wanted)
                .remote(self.peaks_mode, self.device, threads, self.cache_dir) for n in able]
        self.pending += refs
        for node, line in zip(able, self.ray.get(refs)):
            if line:
                self.console.print(f"{node['NodeManagerAddress']}: {line}", highlight=False)
        self.pending = [ref for ref in self.pending if ref not in refs]

    def note_node(self, probed: dict[str, Any]) -> None:
        """A node's fingerprint into env.json (nodes seen first by a group, after the survey, too)."""
        node_id = probed["node_id"]
        if node_id in self.nodes and "fingerprint" in self.nodes[node_id]:
            return
        self.nodes[node_id] = {k: v for k, v in probed.items() if k not in ("worker_pid", "device_name")}
        if self.surveyed:
            self._write_env({})

    def _write_env(self, ray_fields: dict[str, Any]) -> None:
        env = self.store.read_json("env.json") or {}
        if ray_fields:
            env["ray"] = ray_fields
        env["nodes"] = (env.get("nodes") or {}) | self.nodes
        self.store.write_json("env.json", env)
        self.surveyed = True

    def _warn_mismatches(self, found: list[dict[str, Any]]) -> None:
        here = self.store.read_json("env.json") or {}
        for probed in found:
            differs = [f"{key} {probed['fingerprint'].get(key)} (driver {here.get(key)})" for key in _COMPARED
                       if probed["fingerprint"].get(key) != here.get(key)]
            if differs:
                self.console.print(f"[yellow]warning[/] node {probed['node_hostname']} ({probed['node_ip']}) runs other "
                                   f"code than this driver: {', '.join(differs)}", highlight=False)

    def _cancel(self) -> None:
        for item in [g.stream for g in self.groups if g.stream is not None] + self.pending:
            try:
                self.ray.cancel(item, force=True)
            except Exception:  # already finished, or its node is gone: nothing left to stop
                pass
        self.groups.clear()

    # ----------------------------------------------------------------------------------------------- the work

    def peaks(self, mode: str, device: str, threads: int, cache_dir: Any, console: Any) -> dict | None:
        return None  # each group calibrates (or reads the cached peaks of) its own node

    def submit_builds(self, jobs: list[SeedJob], console: Any) -> dict[tuple[str, int], RayBuild]:
        if not jobs:
            return {}
        self.check_feasible(jobs[0].inputs.device, jobs[0].threads)
        remote = self.ray.remote(ray_tasks.build).options(
            num_returns=3, max_retries=self.cfg.max_retries, **resources(jobs[0].inputs.device, jobs[0].threads))
        out = {}
        for job in jobs:
            if self.shared:  # one path that means the same directory on every node
                job = replace(job, inputs=replace(job.inputs, cache_dir=Path(job.inputs.cache_dir).resolve()))
            refs = remote.remote(job, self.shared, self.cache_dir)
            self.pending += refs[:1]
            out[job.key] = RayBuild(self, job, refs)
        return out

    def measure_group(self, tasks: list[CellTask], reference: str | None, cfg: MeasureConfig, weight_bytes: int,
                      peaks: dict | None, sink: GroupSink, *, done: set[str], seed: int,
                      progress: Progress | None = None) -> None:
        self.check_feasible(cfg.device, tasks[0].target.threads)
        group = GroupRun(self, tasks, reference, cfg, weight_bytes, sink, done, seed, progress)
        group.submit()
        self.groups.append(group)
        self.pump(block=False)

    def check_feasible(self, device: str, threads: int) -> None:
        wanted = "GPU" if device.startswith("cuda") else "CPU"
        need = 1 if wanted == "GPU" else threads
        if not any(n.get("Alive") and n.get("Resources", {}).get(wanted, 0) >= need for n in self.ray.nodes()):
            fix = "add a GPU node" if wanted == "GPU" else "set measure.threads to what one node has"
            raise BenchError(f"no node of the Ray cluster has {need} {wanted}{'s' if need > 1 else ''} for one group "
                             f"(measure.threads = {threads}); {fix}")

    def pump(self, until: Any = None, block: bool = True) -> None:
        """Hand the groups' events to the sweep as they come; return when `until` (an ObjectRef) is ready, when
        nothing is left to wait for, or at once when not blocking."""
        ray = self.ray
        while True:
            streams = {id(g.stream): g for g in self.groups if g.stream is not None}
            waitables = list(g.stream for g in streams.values()) + ([until] if until is not None else [])
            if not waitables:
                return
            # A bounded wait, so that Ctrl-C is seen within a second.
            ready, _ = ray.wait(waitables, num_returns=1 if block else len(waitables), timeout=1.0 if block else 0)
            for item in ready:
                if id(item) in streams:
                    streams[id(item)].step()
                elif until is not None:
                    return
            if not block:
                return

    def finished(self, group: GroupRun) -> None:
        self.groups.remove(group)


class RayBuild:
    """One seed's build on the cluster; its result is collected when the sweep asks for it, while the groups
    already running go on streaming."""

    def __init__(self, executor: RayExecutor, job: SeedJob, refs: list[Any]) -> None:
        self.executor, self.job, self.refs = executor, job, refs
        self.outcome: SeedBuild | None = None

    def result(self) -> SeedBuild:
        if self.outcome is not None:
            return self.outcome
        ex, ray = self.executor, self.executor.ray
        ex.pump(until=self.refs[0])
        ex.pending.remove(self.refs[0])
        try:
            outcome, info = ray.get(self.refs[:2])
        except ray.exceptions.RayTaskError as exc:
            raise raised(exc) from None
        except ray.exceptions.RayError as exc:  # its worker or node was lost, Ray's retries included
            reason = f"ray worker lost: {lost_reason(exc)}; tried {ex.cfg.max_retries + 1} times (executor.max_retries)"
            outcome, info = SeedBuild(error=reason, message=reason), None
        if info is not None:
            node = info["node"]
            ex.console.print(f"  {self.job.variant.name} seed {self.job.seed}: ready on {node['node_hostname']} "
                             f"({node['node_ip']})", highlight=False)
            if info["log"].strip():
                ex.console.print(info["log"].rstrip(), markup=False, highlight=False)
        if outcome.artifact is not None and not ex.shared:
            ex.packed[str(outcome.artifact.path)] = self.refs[2]
        self.outcome = outcome
        return outcome
