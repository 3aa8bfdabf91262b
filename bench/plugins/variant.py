"""What every `[[variants]]` entry has, whatever its method: `VariantBase`, and the training settings it may
override (`TrainConfig`, `TrainOverrides`). Each method's own options extend VariantBase in its declaration
(bench.plugins); bench.config joins them into one union, discriminated on `method`.

Part of the plug-in interface, and light (pydantic only): method declarations import it, and bench.config joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, create_model, model_validator

from bench.plugins.precision import Precision
from bench.plugins.spec import Strict

# What the recipe of every variant carried before each method had its own options: the P-tuning v2 fields, always
# present, with these defaults. Kept in every recipe so that cached artifacts keep their keys (bench.variants.variant).
LEGACY_RECIPE_OPTIONS: dict[str, Any] = {
    "prompt_length": None, "prompt_mlp": False, "prompt_mlp_hidden": 512, "prompt_dropout": 0.1, "prefix_artifact": None,
}


class TrainConfig(Strict):
    steps: int | None = Field(None, ge=0, description="optimiser steps; overrides epochs; 0 = untrained (speed-only)")
    epochs: float = Field(1.0, gt=0, description="passes over the training set (when steps is unset)")
    batch_size: int = Field(16, ge=1, description="training batch size")
    lr: float = Field(2e-5, gt=0, description="peak learning rate (AdamW, linear warm-up and decay)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of the steps spent warming the learning rate up")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    log_every: int = Field(10, ge=1, description="steps between loss lines in the log")


# Any [train] field, each optional, with the same bounds: a method's policy or a variant's own overrides. A typed
# model (not a dict) so that a bad value is named by its full path, e.g. variants[2].train.lr.
TrainOverrides = create_model(
    "TrainOverrides", __base__=Strict,
    **{name: (Annotated[field.annotation, *field.metadata] | None, Field(None, description=field.description))
       for name, field in TrainConfig.model_fields.items()},
)


class VariantBase(Strict):
    """The fields of every variant. A method's variant model adds its options and narrows `method` to its name."""

    name: str = Field(min_length=1, pattern=r"^[\w.+-]+$", description="the variant's name in records and reports")
    method: str = Field("dense", description="the method that builds it (a registered MethodSpec)")
    train: TrainOverrides = Field(default_factory=TrainOverrides, description="overrides of [train] for this variant")
    seeds: list[int] | None = Field(None, min_length=1, description="training seeds; default: the sweep's seed")
    precisions: list[Precision] | None = Field(
        None, json_schema_extra={"realisation": True},
        description="quantized precisions the variant is also measured in, beside itself: one cell '<name>@<precision>' "
                    "each (int8: dynamic activations; int8-weight: weight-only; fp8: CUDA 8.9+), from the same artifact")

    # Options whose unset value (None) stands for a default: left out of recipes, so adding an option to a method
    # leaves the recipes (and cached artifacts) of its existing variants as they were.
    @model_validator(mode="after")
    def _distinct_seeds(self) -> "VariantBase":
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"variant '{self.name}': repeated seeds {self.seeds}")
        if self.precisions is not None and len(set(self.precisions)) != len(self.precisions):
            raise ValueError(f"variant '{self.name}': repeated precisions {self.precisions}")
        return self

    def cells(self) -> list[Cell]:
        """Every cell the variant is measured as, all from its one artifact: the ways its method runs
        (`realised_cells`), then each precision on its reference cell as '<name>@<precision>'. '@' is not allowed in
        a variant's name, so these never collide with another variant's."""
        own = self.realised_cells()
        return own + [Cell(f"{self.name}@{p}", own[0].kernel, p) for p in self.precisions or ()]

    def realised_cells(self) -> list[Cell]:
        """The cells of the method's own realisation choices (a masked method: its control and kernels), reference
        first; a method without such choices is one cell, itself."""
        return [Cell(self.name)]

    def recipe_options(self) -> dict[str, Any]:
        """The options that determine the weights: the method's own, those left unset (None) omitted."""
        own = self.model_dump(exclude={"name", "train", "method", "seeds", *self.realisation_options()})
        return LEGACY_RECIPE_OPTIONS | {k: v for k, v in own.items() if v is not None or k in LEGACY_RECIPE_OPTIONS}

    @classmethod
    def realisation_options(cls) -> set[str]:
        """Options that choose how the weights run (a kernel, a precision), not what they are: never in a recipe,
        so a variant and the same variant run another way share one artifact."""
        return {name for name, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("realisation")}

    @property
    def built_on(self) -> str | None:
        """The variant this one is trained on (`base`, for methods that take one), or None."""
        return getattr(self, "base", None)

    def seeds_or(self, default: int) -> list[int]:
        return self.seeds or [default]


@dataclass(frozen=True)
class Cell:
    """One way a variant is measured: its name in records, its sparse kernel (masked methods; None elsewhere) and
    its quantized precision (None: the sweep's dtype as it is)."""

    name: str
    kernel: str | None = None
    precision: str | None = None

    def fields(self, variant: str) -> dict[str, Any]:
        """What a record of this cell says about it beyond its variant's fields: a kernel cell names its
        masked-dense control (the control names itself), a precision cell the cell it quantizes."""
        if self.precision is not None:
            return {"variant": self.name, "sparse_kernel": self.kernel, "quantization": self.precision,
                    "quant_control": variant}
        if self.kernel is not None:
            return {"variant": self.name, "sparse_kernel": self.kernel, "kernel_control": variant}
        return {}
