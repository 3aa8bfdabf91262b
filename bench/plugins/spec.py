"""The declarations a method or a backend makes once, and everything else derives from: `MethodSpec`, `BackendSpec`,
and `Strict`, the base of every options model.

Declarations are plain data: hooks are "module:attribute" strings, resolved when a hook runs, so a declaration module
imports pydantic and nothing heavy, and validating a config never imports torch. A plug-in from another package
declares the same objects and names them in its entry points (bench.plugins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """An options model: unknown keys and bad values are errors, assignment is validated."""

    # allow_inf_nan=False: inf and nan are refused in every float field (an lr of inf trains to NaN).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Style:
    """How reports draw a method (colour) or a backend (marker and line style), the same in every table and plot."""

    label: str
    colour: str = "#999999"
    marker: str = "D"
    line: str = "-."


@dataclass(frozen=True)
class MethodSpec:
    """One fine-tuning or compression method.

    variant: the pydantic model of a `[[variants]]` entry of this method (bench.config.VariantBase and the method's
    own options; its `method` field is Literal[name]). build: "module:function(BuildContext) -> BuiltVariant".
    architecture / load: the kind written in its artifacts' meta.json and "module:function(weights, architecture)"
    that rebuilds the model (None: its artifacts are plain classifiers). realize: "module:function(model, target,
    backend) -> (model, record fields)", how its weights run on one backend (None: dense weights as they are).
    check: "module:function(variant, backbone_config)", refusals that need the backbone's shapes (preflight).
    """

    name: str
    variant: type[BaseModel]
    build: str
    description: str
    architecture: str | None = None
    load: str | None = None
    realize: str | None = None
    check: str | None = None
    # traits
    sparse: bool = False  # removes weights: reported against density, beside the dense reference
    masked: bool = False  # zeros kept in the weights' own shapes (a masked-dense control on dense kernels)
    changes_shapes: bool = False  # smaller dense matrices than the backbone's
    parameter_efficient: bool = False  # a frozen model plus a few trainable parameters
    adds_prompt: bool = False  # puts P positions in front of the input (prefix or soft prompt)
    trains_on_base: bool = False  # `base` may name another variant whose frozen model it is trained on
    style: Style = field(default_factory=lambda: Style("other"))
    record_keys: tuple[Any, ...] = ()  # bench.records.Key of each record field its hooks add

    @property
    def full_model(self) -> bool:
        """Its artifact is a whole model, so a parameter-efficient variant may be trained on it."""
        return not self.parameter_efficient


@dataclass(frozen=True)
class BackendSpec:
    """One inference backend.

    prepare: "module:function(model, target, example, options, workdir, **extra) -> Runner" (bench.backends.base).
    options: the model of its `[backend.<name>]` section, or None. modes: `<name>:<mode>` runs it in that mode
    (options.mode set to it), each a cell of its own. devices / dtypes: what it can be asked to run, checked when a
    config is validated; available: "module:function() -> str | None", why it cannot run on this machine (None: it
    can). uses_export_cache: prepare takes `export_cache`, the directory that keeps its exports across runs.
    """

    name: str
    prepare: str
    description: str
    options: type[BaseModel] | None = None
    modes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16")
    available: str | None = None
    uses_export_cache: bool = False
    style: Style = field(default_factory=lambda: Style("other"))
    record_keys: tuple[Any, ...] = ()  # bench.records.Key of each record field its runner adds

    def names(self) -> list[str]:
        """Every name `measure.backends` accepts for it: the backend and each of its modes."""
        return [self.name, *(f"{self.name}:{mode}" for mode in self.modes)]

    def with_mode(self, options: Any, mode: str) -> Any:
        """The backend's options section with `mode` set (for a name `<backend>:<mode>`)."""
        return options.model_copy(update={"mode": mode})
