"""Cell isolation: run_cell in a fresh (spawned) process, so allocators, compile caches and thread pools of one
cell never colour the next, peak RSS is the cell's own, and a crash or a hang becomes failed records."""

from __future__ import annotations

import multiprocessing as mp
import traceback

from bench.run.cell import CellResult, CellTask, failed, run_cell



def run_isolated(task: CellTask, timeout_s: float) -> CellResult:
    """run_cell in a fresh (spawned) process; a crash, a hang past timeout_s or an error become failed records."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(task, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            process.kill()
            process.join()
            return failed(task, f"cell exceeded its time limit of {timeout_s:.0f} s (measure.cell_timeout_s) and was killed")
        outcome = receiver.recv()
    except EOFError:  # the child died before sending anything
        process.join()
        return failed(task, f"cell process died ({_exit_reason(process.exitcode)})")
    except KeyboardInterrupt:
        process.kill()
        process.join()
        raise
    process.join()
    if isinstance(outcome, str):  # an unexpected error inside the child, with its traceback's last line
        return failed(task, f"cell process error: {outcome}")
    return outcome


def _child(task: CellTask, sender) -> None:
    import torch

    torch.set_num_threads(task.target.threads)
    try:
        sender.send(run_cell(task))
    except Exception as exc:
        sender.send(f"{type(exc).__name__}: {exc} ({traceback.format_exc().strip().splitlines()[-1]})")
    finally:
        sender.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        name = signal.Signals(-code).name
        hint = " - out of memory?" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"
