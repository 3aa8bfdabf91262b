"""Which variants are built on which (`base`): the rules, their one-line refusals, and the order a sweep builds
variants in (bases first). Pure Python over config objects, so config validation can call it.

- A base is a full model, dense or sparse fine-tuning: its artifact holds every weight.
- Built on a base are the methods that freeze what they are given (bench.variants.options.ON_BASE_METHODS).
- LoRA merged into a masked base (unstructured, semi24) would fill the pruned zeros (W + BA is dense): refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.errors import did_you_mean

BASE_METHODS = ("dense", "unstructured", "semi24", "structured")
MASKED_METHODS = ("unstructured", "semi24")


def base_problem(variants: Sequence[Any]) -> str | None:
    """The first thing wrong with the variants' bases (unknown name, cycle, a base that is not a full model, a
    merge that would undo a base's sparsity), as one line, or None."""
    by_name = {v.name: v for v in variants}
    for v in variants:
        if v.base is None:
            continue
        where = f"variant '{v.name}'"
        if v.base not in by_name:
            others = [name for name in by_name if name != v.name]
            return f"{where}: {did_you_mean(v.base, others, 'base variant')} (base names another [[variants]] entry)"
        chain = [v.name]
        node = by_name[v.base]
        while True:
            chain.append(node.name)
            if node.name in chain[:-1]:
                return f"{where}: its bases form a cycle ({' -> '.join(chain)}); a base must not be built on its dependants"
            if node.base is None or node.base not in by_name:
                break
            node = by_name[node.base]
        base = by_name[v.base]
        if base.method not in BASE_METHODS:
            return (f"{where}: base '{base.name}' is a {base.method} variant; a base must be a full model "
                    f"({', '.join(BASE_METHODS)})")
        if v.method == "lora" and v.lora_merge is not False and base.method in MASKED_METHODS:
            return (f"{where}: merging LoRA into the {base.method} base '{base.name}' would fill its pruned zeros "
                    "(W + BA is dense); set lora_merge = false to keep the adapters apart")
    return None


def build_order(variants: Sequence[Any], first: str | None = None) -> list[Any]:
    """Every base before the variants built on it, otherwise the config's order, with `first` (the dense reference
    of speedups) leading. Assumes base_problem found nothing."""
    by_name = {v.name: v for v in variants}
    placed: set[str] = set()
    order: list[Any] = []

    def place(v: Any) -> None:
        if v.name in placed:
            return
        placed.add(v.name)
        if v.base is not None:
            place(by_name[v.base])
        order.append(v)

    for v in sorted(variants, key=lambda v: v.name != first):
        place(v)
    return order
