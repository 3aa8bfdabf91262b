"""The sparse methods' declarations: `unstructured`, `semi24` (2:4) and `structured`, each with its options.

Unset options (None) stand for the default in their description, so a recipe carries only what was chosen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bench.plugins.variant import VariantBase
from bench.plugins.spec import MethodSpec, Style

Importance = Literal["magnitude", "taylor"]


def _fraction(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError("sparsity must be in [0, 1): the fraction removed (1 would remove everything)")
    return value


class _Sparse(VariantBase):
    sparsity: float | None = Field(None, description="fraction removed, in [0, 1)")
    importance: Importance | None = Field(None, description="|w| or |w * grad| on training batches (default magnitude)")

    @field_validator("sparsity")
    @classmethod
    def _in_range(cls, value: float | None) -> float | None:
        return _fraction(value)

    @model_validator(mode="after")
    def _needs_level(self):
        if self.sparsity is None and self.method != "semi24":
            raise ValueError(f"variant '{self.name}': method '{self.method}' needs sparsity (a fraction in [0, 1))")
        return self


class UnstructuredVariant(_Sparse):
    method: Literal["unstructured"] = "unstructured"
    sparsity_scope: Literal["layer", "global"] | None = Field(None, description="rank within each tensor or across all (default layer)")
    schedule: Literal["oneshot", "gradual"] | None = Field(None, description="prune then fine-tune, or Zhu & Gupta's cubic ramp (default oneshot)")
    gradual_fraction: float | None = Field(None, gt=0, le=1, description="share of the training steps the cubic ramp covers (default 0.5)")
    sparsity_include: list[Literal["embedding", "head"]] | None = Field(None, description="also prune these (default: decoder linears only)")

    @model_validator(mode="after")
    def _gradual(self):
        if self.gradual_fraction is not None and self.schedule != "gradual":
            raise ValueError(f"variant '{self.name}': gradual_fraction applies to schedule 'gradual' only")
        return self


class Semi24Variant(_Sparse):
    method: Literal["semi24"] = "semi24"
    sparsity: float | None = Field(None, description="2 of every 4 weights are kept, so 0.5 (the default)")
    sparsity_include: list[Literal["embedding", "head"]] | None = Field(None, description="also prune these (default: decoder linears only)")

    @model_validator(mode="after")
    def _half(self):
        if self.sparsity not in (None, 0.5):
            raise ValueError(f"variant '{self.name}': method 'semi24' keeps 2 of every 4 weights, so sparsity is 0.5 "
                             f"(got {self.sparsity})")
        return self


class StructuredVariant(_Sparse):
    method: Literal["structured"] = "structured"
    sparsity: float | None = Field(None, description="fraction of heads and FFN channels removed, in [0, 1)")
    sparsity_scope: Literal["layer", "global"] | None = Field(None, description="rank within each layer or across all (default layer)")
    structured_iterative_steps: int | None = Field(None, ge=1, le=64, description="prune-then-fine-tune rounds (default 1)")


UNSTRUCTURED = MethodSpec(
    name="unstructured", variant=UnstructuredVariant, build="sparsify.variants:build_unstructured",
    description="unstructured magnitude or Taylor pruning, one-shot or gradual, masks held while fine-tuning",
    realize="sparsify.realize:realize_unstructured", sparse=True, masked=True,
    style=Style("unstructured sparse", "#D55E00"),
)
SEMI24 = MethodSpec(
    name="semi24", variant=Semi24Variant, build="sparsify.variants:build_semi24",
    description="2:4 semi-structured sparsity (2 of every 4 weights kept), sparse tensor cores on CUDA",
    realize="sparsify.realize:realize_semi24", check="sparsify.variants:check", sparse=True, masked=True,
    style=Style("2:4 sparse", "#E69F00"),
)
STRUCTURED = MethodSpec(
    name="structured", variant=StructuredVariant, build="sparsify.variants:build_structured",
    description="structured pruning: attention heads and FFN channels removed (smaller dense GEMMs)",
    architecture="structured", load="sparsify.variants:load_structured",
    realize="sparsify.realize:realize_structured", check="sparsify.variants:check", sparse=True, changes_shapes=True,
    style=Style("structured pruning", "#CC79A7"),
)
