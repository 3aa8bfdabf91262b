"""A backend whose `<name>:<variant>` names set more than `options.mode`: each variant is the options it sets, so that
one sweep measures a CPU fast path (oneDNN linears in eager, inductor's freezing) interleaved with the plain backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.plugins.spec import BackendSpec


@dataclass(frozen=True)
class VariantBackendSpec(BackendSpec):
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant name -> options it sets

    def with_mode(self, options: Any, mode: str) -> Any:
        return options.model_copy(update=self.variants.get(mode, {"mode": mode}))
