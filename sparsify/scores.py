"""Importance scores: one non-negative number per weight, higher = more worth keeping. Scores only; masks.py
and structured.py decide what to remove from them.

- magnitude: |w|.
- taylor: |w * dL/dw| summed over a few training batches (first-order Taylor estimate of the loss change
  when w is set to zero; Molchanov et al. 2017/2019), with the classifier's own cross-entropy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from bench.data.tokenization import pad_batch

IMPORTANCES = ("magnitude", "taylor")
# Training batches a Taylor score is summed over: enough to average out one batch's noise, cheap next to training.
TAYLOR_BATCHES = 8

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids [B, T], attention_mask [B, T], labels [B]


def magnitude(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: p.detach().abs() for name, p in params.items()}


def taylor(model: nn.Module, params: dict[str, nn.Parameter], batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
    """sum over batches of |w * grad| for each tensor in `params`; the model's .grad fields are left alone."""
    names, tensors = list(params), list(params.values())
    scores = {name: torch.zeros_like(t, dtype=torch.float32) for name, t in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the score of a fixed model on fixed batches
    device = tensors[0].device
    seen = 0
    try:
        for ids, mask, labels in batches:
            logits = model(ids.to(device), mask.to(device))
            loss = nn.functional.cross_entropy(logits.float(), labels.to(device))
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            for name, p, g in zip(names, tensors, grads):
                if g is not None:
                    scores[name] += (p.detach() * g).abs().float()
            seen += 1
    finally:
        model.train(was_training)
    if not seen:
        raise ValueError("Taylor importance needs at least one training batch; the training set is empty")
    return scores


def score(
    importance: str, model: nn.Module, params: dict[str, nn.Parameter], batches: Iterable[Batch] | None = None
) -> dict[str, torch.Tensor]:
    if importance == "magnitude":
        return magnitude(params)
    if importance == "taylor":
        if batches is None:
            raise ValueError("Taylor importance needs training batches")
        return taylor(model, params, batches)
    raise ValueError(f"unknown importance '{importance}'; available: {', '.join(IMPORTANCES)}")


def training_batches(
    ids: Sequence[Sequence[int]], labels: Sequence[int], *, batch_size: int, pad_id: int, seed: int,
    count: int = TAYLOR_BATCHES,
) -> Iterator[Batch]:
    """Up to `count` right-padded batches of the training rows, in a seeded order."""
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()
    label_tensor = torch.tensor(list(labels), dtype=torch.long)
    for start in range(0, min(len(order), count * batch_size), batch_size):
        rows = order[start : start + batch_size]
        input_ids, attention_mask = pad_batch([ids[r] for r in rows], pad_id)
        yield input_ids, attention_mask, label_tensor[rows]
