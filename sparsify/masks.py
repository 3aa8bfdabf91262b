"""Masks from scores (unstructured layer-wise or global, 2:4 semi-structured), and the keeper that holds pruned
weights at exactly zero while a model trains.

A mask is a bool tensor shaped like its weight, True = keep. Masks are exact: layer-wise and global masks
remove round(sparsity x count) weights, ties at the threshold included; a 2:4 mask keeps the two highest
scores of every four consecutive weights along the input dimension (the layout sparse tensor cores read).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from bench.errors import BenchError

SCOPES = ("layer", "global")


def unstructured_masks(scores: dict[str, torch.Tensor], sparsity: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Remove the lowest-scoring round(sparsity x n) weights of each tensor (layer) or of all of them (global)."""
    _check_level(sparsity)
    if scope == "layer":
        return {name: _keep_top(s, round(sparsity * s.numel())) for name, s in scores.items()}
    if scope == "global":
        return _global_masks(scores, sparsity)
    raise ValueError(f"unknown sparsity scope '{scope}'; available: {', '.join(SCOPES)}")


def semi24_masks(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the 2 highest scores in each group of 4 consecutive weights along the input dimension (dim 1)."""
    bad = {name: tuple(s.shape) for name, s in scores.items() if s.dim() != 2 or s.shape[1] % 4}
    if bad:
        name, shape = next(iter(bad.items()))
        raise BenchError(
            f"2:4 sparsity needs every pruned weight's input dimension (dim 1 of [out, in]) to be a multiple of 4; "
            f"{name} is {list(shape)}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
        )
    masks = {}
    for name, s in scores.items():
        groups = s.reshape(s.shape[0], -1, 4)  # [out, in/4, 4]
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(-1, groups.topk(2, dim=-1).indices, True)
        masks[name] = keep.reshape(s.shape)
    return masks


def is_semi24(weight: torch.Tensor) -> bool:
    """Every group of 4 consecutive weights along the input dimension has at least two zeros."""
    return weight.dim() == 2 and weight.shape[1] % 4 == 0 and bool(
        ((weight.reshape(weight.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    )


def _check_level(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise BenchError(f"sparsity must be in [0, 1) (the fraction of weights removed); got {sparsity}")


def _keep_top(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    """Keep all but the n_prune lowest scores (a selection by threshold: kthvalue is several times faster than
    topk on the ~1M-element tensors that gradual pruning re-masks at every update)."""
    if n_prune == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    flat = scores.reshape(-1).float()
    threshold = flat.kthvalue(n_prune).values  # the n_prune-th smallest score
    keep = flat > threshold
    _give_back_ties([(flat, keep)], threshold, int((~keep).sum()) - n_prune)
    return keep.view(scores.shape)


def _global_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    flat = torch.cat([s.reshape(-1).float() for s in scores.values()])
    n_prune = round(sparsity * flat.numel())
    if n_prune == 0:
        return {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    threshold = flat.kthvalue(n_prune).values  # the n_prune-th smallest score
    del flat
    masks = {name: s.float() > threshold for name, s in scores.items()}
    surplus = sum(int((~m).sum()) for m in masks.values()) - n_prune
    _give_back_ties([(s.reshape(-1).float(), masks[name].view(-1)) for name, s in scores.items()], threshold, surplus)
    return masks


def _give_back_ties(pairs: list[tuple[torch.Tensor, torch.Tensor]], threshold: torch.Tensor, surplus: int) -> None:
    """Scores equal to the threshold were all pruned; keep `surplus` of them so exactly n_prune go."""
    for flat, keep in pairs:
        if surplus <= 0:
            return
        ties = ((flat == threshold) & ~keep).nonzero().squeeze(1)[:surplus]
        keep[ties] = True
        surplus -= ties.numel()


class MaskKeeper:
    """Holds masked weights at exactly zero through training.

    While attached: each masked weight's gradient is multiplied by its mask (so clipping and the optimiser
    never see pruned entries), and after every optimiser step the weights and the optimiser's per-weight
    state (Adam's exp_avg and exp_avg_sq, SGD's momentum) are masked again. A weight pruned mid-training
    (gradual pruning) therefore has no momentum left that could move it off zero. The optimiser belongs to
    bench.variants.train, so the keeper finds it through torch's global optimiser step hook, filtered to its own
    weights and removed on detach.
    """

    def __init__(self, params: dict[str, nn.Parameter]) -> None:
        self.params = params
        self.masks: dict[str, torch.Tensor] = {}
        self._optimizers: weakref.WeakSet = weakref.WeakSet()
        self._ids = {id(p): name for name, p in params.items()}

    @torch.no_grad()
    def set(self, masks: dict[str, torch.Tensor]) -> None:
        """Adopt new masks (a subset of the names is fine) and apply them to weights and optimiser state now."""
        for name, mask in masks.items():
            self.masks[name] = mask.to(self.params[name].device)
        self.apply()
        for optimizer in list(self._optimizers):
            self._mask_state(optimizer)

    @torch.no_grad()
    def apply(self) -> None:
        for name, mask in self.masks.items():
            weight = self.params[name]
            if mask.device != weight.device:  # the trainer moved the model
                mask = self.masks[name] = mask.to(weight.device)
            weight.masked_fill_(~mask, 0.0)

    @contextmanager
    def attached(self) -> Iterator[MaskKeeper]:
        handles = [p.register_hook(self._grad_hook(name)) for name, p in self.params.items()]
        handles.append(register_optimizer_step_post_hook(self._after_step))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self._optimizers = weakref.WeakSet()

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            mask = self.masks.get(name)
            return grad if mask is None else grad * mask.to(grad.device)

        return hook

    def _after_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        if not any(id(p) in self._ids for group in optimizer.param_groups for p in group["params"]):
            return  # someone else's optimiser
        self._optimizers.add(optimizer)
        self.apply()
        self._mask_state(optimizer)

    @torch.no_grad()
    def _mask_state(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                name = self._ids.get(id(p))
                if name is None or name not in self.masks:
                    continue
                for value in optimizer.state.get(p, {}).values():
                    if torch.is_tensor(value) and value.shape == p.shape:
                        value.masked_fill_(~self.masks[name].to(value.device), 0.0)
