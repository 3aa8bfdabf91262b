"""The fine-tuning loop shared by every method: AdamW, linear warmup and decay, a Rich progress bar with loss.

Methods decide what trains (the parameters they pass) and what must hold after each step (`after_step`,
e.g. re-applying sparsity masks); the loop itself knows nothing about them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from bench.config import TrainConfig
from bench.errors import BenchError
from bench.measure.timing import stopwatch
from bench.data.tokenization import pad_batch


@dataclass
class TrainResult:
    steps: int
    seconds: float
    examples_seen: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last log)

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


def planned_steps(cfg: TrainConfig, n_examples: int) -> int:
    """steps when given (0: no training, for speed-only runs), else epochs over the examples."""
    if cfg.steps is not None:
        return cfg.steps
    return max(1, math.ceil(cfg.epochs * n_examples / cfg.batch_size))


def train_classifier(
    model: nn.Module,
    params: Iterable[nn.Parameter],
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    cfg: TrainConfig,
    *,
    pad_id: int,
    seed: int,
    device: torch.device,
    console: Console | None = None,
    after_step: Callable[[int], None] | None = None,
    description: str = "training",
) -> TrainResult:
    """Cross-entropy fine-tuning of `params` on (ids, labels); the model is left in eval mode on `device`."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    model.to(device).train()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = planned_steps(cfg, len(ids))
    warmup = int(cfg.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    label_tensor = torch.tensor(list(labels), dtype=torch.long)
    result = TrainResult(steps=0, seconds=0.0, examples_seen=0)
    window: list[float] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
        console=console, transient=False, disable=console is None,
    )
    with progress, stopwatch() as elapsed:
        bar = progress.add_task(description, total=total, loss="-")
        while result.steps < total:
            order = torch.randperm(len(ids), generator=generator)
            for start_idx in range(0, len(order), cfg.batch_size):
                if result.steps >= total:
                    break
                rows = order[start_idx : start_idx + cfg.batch_size].tolist()
                input_ids, attention_mask = pad_batch([ids[r] for r in rows], pad_id)
                logits = model(input_ids.to(device), attention_mask.to(device))
                loss = nn.functional.cross_entropy(logits.float(), label_tensor[rows].to(device))
                if not torch.isfinite(loss):
                    raise NonFiniteTraining(description, loss.item(), result.steps + 1, total, cfg)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                if not torch.isfinite(norm):
                    raise NonFiniteTraining(description, float(norm), result.steps + 1, total, cfg, "gradient norm")
                optimizer.step()
                schedule.step()
                result.steps += 1
                result.examples_seen += len(rows)
                if after_step is not None:
                    after_step(result.steps)
                window.append(loss.item())
                if result.steps % cfg.log_every == 0 or result.steps == total:
                    mean = sum(window) / len(window)
                    result.losses.append((result.steps, mean))
                    window.clear()
                    progress.update(bar, loss=f"{mean:.4f}")
                progress.advance(bar)
    result.seconds = elapsed.seconds
    if any(not torch.isfinite(p).all() for p in params):  # the last step's update, which no later loss saw
        raise NonFiniteTraining(description, float("nan"), result.steps, total, cfg, "weights")
    model.eval()
    return result


class NonFiniteTraining(BenchError):
    """Training diverged: the build fails at that step and nothing is cached (the artifact is saved after training)."""

    def __init__(self, description: str, value: float, step: int, total: int, cfg: TrainConfig,
                 what: str = "loss") -> None:
        super().__init__(f"{description}: the {what} became {value} at step {step} of {total} (train.lr {cfg.lr:g}); "
                         "training diverged and nothing was cached: lower the learning rate or max_grad_norm")
