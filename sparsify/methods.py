"""The sparse methods' declarations: `unstructured`, `block`, `semi24` (2:4) and `structured`, each with its options.

The masked methods (unstructured, block, semi24) also take `kernels`, a realisation option (never in the recipe):
a masked variant is measured as its masked-dense control (cell '<name>', kernel dense) and through each of its
kernels (cells '<name>@<kernel>', default auto), all from the one artifact, in the same rounds (realised_cells).

Unset options (None) stand for the default in their description, so a recipe carries only what was chosen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bench.plugins.variant import Cell, VariantBase
from bench.plugins.spec import MethodSpec, Style

Importance = Literal["magnitude", "taylor"]
Kernel = Literal["csr", "bsr", "2:4", "auto"]  # sparsify.kernels.KERNELS without dense, which every control runs
DEFAULT_KERNELS = ("auto",)


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


class _Masked(_Sparse):
    kernels: list[Kernel] | None = Field(
        None, json_schema_extra={"realisation": True},
        description="sparse kernels the variant is also measured through, beside its masked-dense control (cell "
                    "'<name>'): one cell '<name>@<kernel>' each (default: auto)")

    @model_validator(mode="after")
    def _kernels_fit(self):
        if self.kernels is None:
            return self
        where = f"variant '{self.name}'"
        repeated = sorted({k for k in self.kernels if self.kernels.count(k) > 1})
        if repeated:
            raise ValueError(f"{where}: repeated kernels {', '.join(repeated)}")
        if "bsr" in self.kernels and self.method != "block":
            raise ValueError(f"{where}: kernel bsr serves block-sparse weights (method 'block'); csr or auto serve "
                             f"'{self.method}'")
        if "2:4" in self.kernels and self.method != "semi24":
            raise ValueError(f"{where}: kernel 2:4 serves 2:4 masks (method 'semi24'); csr or auto serve '{self.method}'")
        return self

    def realised_cells(self) -> list[Cell]:
        """The masked-dense control under the variant's own name (kernel dense), then one cell per kernel as
        '<name>@<kernel>'. A precision cell ('<name>@int8') quantizes the control: the masked weights in int8 dense
        GEMMs, since no sparse kernel here multiplies int8 (MKL's sparse BLAS takes fp32 and fp64)."""
        kernels = self.kernels if self.kernels is not None else DEFAULT_KERNELS
        return [Cell(self.name, "dense"), *(Cell(f"{self.name}@{k}", k) for k in kernels)]



class _Scheduled(_Masked):
    """Masks pruned one-shot or along a schedule (unstructured, block)."""

    schedule: Literal["oneshot", "gradual"] | None = Field(None, description="prune then fine-tune, or Zhu & Gupta's cubic ramp (default oneshot)")
    gradual_fraction: float | None = Field(None, gt=0, le=1, description="share of the training steps the cubic ramp covers (default 0.5)")

    @model_validator(mode="after")
    def _gradual(self):
        if self.gradual_fraction is not None and self.schedule != "gradual":
            raise ValueError(f"variant '{self.name}': gradual_fraction applies to schedule 'gradual' only")
        return self


class UnstructuredVariant(_Scheduled):
    method: Literal["unstructured"] = "unstructured"
    sparsity_scope: Literal["layer", "global"] | None = Field(None, description="rank within each tensor or across all (default layer)")
    sparsity_include: list[Literal["embedding", "head"]] | None = Field(None, description="also prune these (default: decoder linears only)")


class BlockVariant(_Scheduled):
    method: Literal["block"] = "block"
    sparsity: float | None = Field(None, description="fraction of the [rows, cols] blocks removed, in [0, 1)")
    block_shape: tuple[int, int] | None = Field(None, description="the [rows, columns] of a pruned block (default [16, 16])")
    sparsity_scope: Literal["layer", "global"] | None = Field(None, description="rank blocks within each tensor or across all (default layer)")

    @model_validator(mode="after")
    def _block(self):
        if self.block_shape is not None and min(self.block_shape) < 1:
            raise ValueError(f"variant '{self.name}': block_shape must be two positive integers [rows, columns], "
                             f"got {list(self.block_shape)}")
        return self


class Semi24Variant(_Masked):
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
    realize="sparsify.realize_kernels:realize_masked", sparse=True, masked=True,
    style=Style("unstructured sparse", "#D55E00"),
)
SEMI24 = MethodSpec(
    name="semi24", variant=Semi24Variant, build="sparsify.variants:build_semi24",
    description="2:4 semi-structured sparsity (2 of every 4 weights kept), sparse tensor cores on CUDA",
    realize="sparsify.realize_kernels:realize_masked", check="sparsify.variants:check", sparse=True, masked=True,
    style=Style("2:4 sparse", "#E69F00"),
)
BLOCK = MethodSpec(
    name="block", variant=BlockVariant, build="sparsify.variants:build_block",
    description="block sparsity: whole [rows, cols] blocks of lowest norm removed, one-shot or gradual, for BSR kernels",
    realize="sparsify.realize_kernels:realize_masked", check="sparsify.variants:check", sparse=True, masked=True,
    style=Style("block sparse", "#F0E442"),
)
STRUCTURED = MethodSpec(
    name="structured", variant=StructuredVariant, build="sparsify.variants:build_structured",
    description="structured pruning: attention heads and FFN channels removed (smaller dense GEMMs)",
    architecture="structured", load="sparsify.variants:load_structured",
    realize="sparsify.realize:realize_structured", check="sparsify.variants:check", sparse=True, changes_shapes=True,
    style=Style("structured pruning", "#CC79A7"),
)
