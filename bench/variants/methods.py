"""The dense method's declaration: full fine-tuning, every parameter trains; the reference every ratio is taken to."""

from __future__ import annotations

from typing import Literal

from bench.plugins.variant import VariantBase
from bench.plugins.spec import MethodSpec, Style


class DenseVariant(VariantBase):
    method: Literal["dense"] = "dense"


DENSE = MethodSpec(
    name="dense", variant=DenseVariant, build="bench.variants.dense:build",
    description="full fine-tuning: every parameter trains; the dense reference of every comparison",
    architecture="classifier", load="bench.variants.dense:load",
    style=Style("full fine-tuning", "#000000"),
)
