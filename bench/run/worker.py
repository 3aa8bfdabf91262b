"""Cell workers: a cell held ready between blocks, either in a long-lived process of its own or in this process.

In its own process (isolation "process", the default) a cell's allocator, compile caches and thread pools never
colour another's, its peak RSS is its own, and a crash or a hang becomes failed records instead of the end of the
sweep. Such a worker dies with its parent (PR_SET_PDEATHSIG on Linux, and a watch on the parent's pid anywhere),
ignores Ctrl-C (the parent ends it), and sleeps on its pipe between blocks. Idle workers take no CPU: ONNX
Runtime's intra-op threads are told not to spin (session option), and OpenMP's spin-wait ends within milliseconds
of a block (GOMP's default); tests/test_workers.py measures an idle worker's CPU time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from bench.measure.rounds import Block, CellLost, Shape
from bench.run.cell import CellRunner, CellTask, Prepared


class LocalWorker:
    """isolation 'none': the cell lives in this process and takes its turn like any other."""

    def __init__(self, task: CellTask) -> None:
        self.name, self.task = task.cell_id, task
        self.cell = CellRunner(task)

    def prepare(self) -> Prepared:
        return self.cell.prepare()

    def block(self, shape: Shape, iters: int, min_time_s: float) -> Block:
        try:
            return self.cell.block(shape, iters, min_time_s)
        except Exception as exc:
            raise CellLost(_error_line(exc, traced=False)) from exc

    def close(self) -> None:
        self.cell = None  # the runner and its model go with it


class ProcessWorker:
    """The cell in a spawned process; commands and results travel over a pipe."""

    def __init__(self, task: CellTask, timeout_s: float) -> None:
        self.name, self.task, self.timeout_s = task.cell_id, task, timeout_s
        self.running: str | None = None  # the child's out-of-memory line for the forward it runs now
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_main, args=(child, task, os.getpid()), daemon=True,
                                   name=f"xglm-bench cell {task.cell_id}")
        with _sigint_ignored():
            self.process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def prepare(self) -> Prepared:
        try:
            reply = self._receive("prepare")
        except CellLost as exc:
            return _lost(self.task, str(exc))
        if reply[0] == "error":
            return _lost(self.task, f"cell process error: {reply[1]}", retryable=False)
        return reply[1]

    def block(self, shape: Shape, iters: int, min_time_s: float) -> Block:
        try:
            self.conn.send(("block", shape, iters, min_time_s))
        except (BrokenPipeError, OSError):
            raise CellLost(self._death()) from None
        reply = self._receive("block")
        if reply[0] == "error":
            raise CellLost(reply[1] if reply[1].startswith("out of memory") else f"cell process error: {reply[1]}")
        return reply[1]

    def _receive(self, what: str) -> tuple:
        try:
            if not self.conn.poll(self.timeout_s):
                self.kill()
                raise CellLost(f"cell exceeded its time limit of {self.timeout_s:.0f} s (measure.cell_timeout_s) "
                               f"in its {what} and was killed")
            reply = self.conn.recv()
            while reply[0] == "at":  # the child starts a forward at a new shape: what an OOM there would say
                self.running = reply[2]
                if not self.conn.poll(self.timeout_s):
                    self.kill()
                    raise CellLost(f"cell exceeded its time limit of {self.timeout_s:.0f} s (measure.cell_timeout_s) "
                                   f"in its {what} and was killed")
                reply = self.conn.recv()
            return reply
        except (EOFError, ConnectionResetError):
            raise CellLost(self._death()) from None

    def _death(self) -> str:
        self.process.join(5)
        if self.process.exitcode == -signal.SIGKILL and self.running:
            return f"{self.running}: the cell's process was killed by SIGKILL, as the kernel's OOM killer does"
        return f"cell process died ({exit_reason(self.process.exitcode)})"

    def close(self) -> None:
        try:
            self.conn.send(("close",))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(10)
        self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _lost(task: CellTask, error: str, retryable: bool = True) -> Prepared:
    from bench.run import records

    stand_ins = [r for r in records.stand_ins(task.measure, dict(task.base), "failed", error)
                 if r["scenario"] != "latency"] if task.emit_prepared else []
    for record in stand_ins:
        record["failure_retryable"] = retryable
    return Prepared("failed", error, stand_ins, dict(task.base), retryable=retryable)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start the child with SIGINT ignored: a spawned Python then installs no KeyboardInterrupt handler at all, so a
    Ctrl-C (which a terminal sends to the whole process group) prints no traceback from a worker still importing
    its modules, before _main could ignore it itself. The parent ends its workers."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " - out of memory?" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


# ------------------------------------------------------------------------------------------------- the child


def _main(conn, task: CellTask, parent: int) -> None:
    """The worker process: prepare, then serve blocks until told to close (or orphaned)."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us
    import torch

    torch.set_num_threads(task.target.threads)
    cell = CellRunner(task)
    cell.notify = lambda shape, oom_line: conn.send(("at", shape, oom_line))
    try:
        conn.send(("prepared", cell.prepare()))
        while True:
            message = conn.recv()
            if message[0] == "close":
                break
            _, shape, iters, min_time_s = message
            try:
                conn.send(("block", cell.block(shape, iters, min_time_s)))
            except Exception as exc:
                conn.send(("error", _error_line(exc)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent is gone or ending us
    except Exception as exc:
        try:
            conn.send(("error", _one_line(exc)))
        except Exception:
            pass
    finally:
        conn.close()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc} ({traceback.format_exc().strip().splitlines()[-1]})"


def _error_line(exc: BaseException, traced: bool = True) -> str:
    """A block's failure; the cell's own out-of-memory line (bench.run.memory_estimate) as it is."""
    if isinstance(exc, MemoryError) and str(exc).startswith("out of memory"):
        return str(exc)
    return _one_line(exc) if traced else f"{type(exc).__name__}: {exc}"


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive its run: on Linux the kernel sends SIGKILL when the parent dies; elsewhere (and as
    a second line) a daemon thread watches the parent's pid."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
