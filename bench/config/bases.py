"""Which variants are built on which (`base`): the rules, their one-line refusals, and the order a sweep builds
variants in (bases first). Pure Python over config objects, so config validation can call it.

- A base is a full model, dense or sparse fine-tuning: its artifact holds every weight.
- Built on a base are the methods that freeze what they are given (MethodSpec.trains_on_base).
- LoRA merged into a masked base (unstructured, semi24) would fill the pruned zeros (W + BA is dense): refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import plugins
from bench.errors import did_you_mean


def base_problem(variants: Sequence[Any]) -> str | None:
    """The first thing wrong with the variants' bases (unknown name, cycle, a base that is not a full model, a
    merge that would undo a base's sparsity), as one line, or None."""
    by_name = {v.name: v for v in variants}
    full_models, masked = plugins.methods_where("full_model"), plugins.methods_where("masked")
    for v in variants:
        if v.built_on is None:
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
            if node.built_on is None or node.built_on not in by_name:
                break
            node = by_name[node.built_on]
        base = by_name[v.base]
        if base.method not in full_models:
            return (f"{where}: base '{base.name}' is a {base.method} variant; a base must be a full model "
                    f"({', '.join(full_models)})")
        if v.method == "lora" and v.lora_merge is not False and base.method in masked:
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
        if v.built_on is not None:
            place(by_name[v.built_on])
        order.append(v)

    for v in sorted(variants, key=lambda v: v.name != first):
        place(v)
    return order
