"""Helpers the test modules share (fixtures are in conftest.py): padded token batches, a tiny build context, the
`bench` command run in-process or as a process, terminal text without colour, and the one check every bad-input
test makes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The states of a run directory that would pass for a result (or for a run still being written).
FINISHED = frozenset({"complete", "complete_with_failures", "running"})


# ------------------------------------------------------------------------------------------------- tensors


def padded(lengths: list[int], seed: int = 0, vocab: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids [B, max(lengths)] right-padded with XGLM's pad id 1, and their attention mask (1 = real token)."""
    g = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    mask = (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long()
    return torch.randint(4, vocab, (len(lengths), seq), generator=g).masked_fill(mask == 0, 1), mask


def tiny_context(variant, *, steps: int, rows: int = 32, seed: int = 0, base=None, **train: Any):
    """A BuildContext on random:tiny for XNLI with `rows` random training sequences (6 to 19 tokens, labels i % 3);
    `train` overrides the TrainConfig fields set here (batch 16, lr 3e-2, no weight decay, a loss logged every 5)."""
    from bench.variants.context import BuildContext
    from bench.config import TrainConfig
    from bench.data.tasks import get_task
    from bench.model.source import ModelSource

    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(4, 1024, (int(n),), generator=g).tolist() for n in torch.randint(6, 20, (rows,), generator=g)]
    options = {"batch_size": 16, "lr": 3e-2, "weight_decay": 0.0, "log_every": 5} | train
    return BuildContext(
        variant=variant, task=get_task("xnli"), source=ModelSource.parse("random:tiny"),
        train=TrainConfig(steps=steps, **options), seed=seed, backbone_seed=0, train_ids=ids,
        train_labels=[i % 3 for i in range(rows)], pad_id=1, device=torch.device("cpu"), base=base,
    )


# ------------------------------------------------------------------------------------------ the command line


def plain(text: str) -> str:
    """Terminal output without its colour codes."""
    return ANSI.sub("", text)


def squashed(text: str) -> str:
    """Terminal output without colour, every run of white space one space (rich wraps long lines)."""
    return " ".join(plain(text).split())


def invoke(*argv: Any, **kwargs: Any):
    """`bench ARGV` in this process (typer's CliRunner); an exception that escaped the CLI's own error path fails
    the test here, with its type."""
    from typer.testing import CliRunner

    from bench.cli import app

    result = CliRunner().invoke(app, [str(a) for a in argv], **kwargs)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception!r}\n{result.output}"
    )
    return result


@dataclass(frozen=True)
class Outcome:
    """What a `bench` command left: its exit status and its two streams."""

    code: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, result) -> "Outcome":
        """From a CliRunner result (see invoke)."""
        return cls(result.exit_code, result.stdout, result.stderr)


def bench_process(*argv: Any, timeout: float = 300) -> Outcome:
    """`python -m bench ARGV` as a real process (the entry point, its imports and its exit status for real)."""
    done = subprocess.run([sys.executable, "-m", "bench", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout)
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_user_error(outcome, runs: Path, *needles: str, code: int | None = 2, prefix: str = "error: ") -> str:
    """Bad input as the project promises it: exit `code` (None: any non-zero), exactly one line on stderr that starts
    with `prefix` ('failed: ' for a run that measured nothing) and names every needle, no traceback anywhere, and no run directory under `runs` that looks finished.
    `outcome`: an Outcome or a CliRunner result. Returns the line."""
    if not isinstance(outcome, Outcome):
        outcome = Outcome.of(outcome)
    stdout, stderr = plain(outcome.stdout), plain(outcome.stderr)
    said = f"exit {outcome.code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert outcome.code != 0 and (code is None or outcome.code == code), said
    assert "Traceback" not in stdout + stderr, said
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{said}"
    line = lines[0]
    assert line.startswith(prefix), said
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:
        assert (run / "run.json").is_file(), f"{run} was left without run.json: {sorted(p.name for p in run.iterdir())}"
        status = json.loads((run / "run.json").read_text()).get("status")
        assert status not in FINISHED, f"{run} looks finished: status {status!r}"
    return line
