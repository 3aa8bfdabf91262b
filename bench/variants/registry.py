"""A method's hooks, looked up in its declaration (bench.plugins): the builder, the loader of its artifacts'
architecture kind, the realisation on a backend, and the preflight check.

Each hook is a "module:attribute" string in the MethodSpec, imported only when it runs, so that `import bench` and
config validation stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins

if TYPE_CHECKING:
    from bench.config import VariantBase
    from bench.model.classifier import XGLMClassifier
    from bench.variants.context import BuildContext, BuiltVariant


def builder(method: str) -> Callable[[BuildContext], BuiltVariant]:
    return plugins.resolve(plugins.method(method).build)


def realize(model, method: str, target, backend: str) -> tuple[Any, dict[str, Any]]:
    """The module a backend should prepare for this method and target, and the record fields that say how. A
    variant trained on a base (a prompt or LoRA on a sparse model) runs the way its base runs."""
    method = getattr(model, "base_method", None) or method  # set by bench.variants.bases.load_frozen
    spec = plugins.method(method)
    if spec.realize is None:
        return model, {"speedup_mechanism": "none", "speedup_mechanism_reason": f"method '{method}' runs dense weights"}
    return plugins.resolve(spec.realize)(model, target, backend)


def check_variant(variant: VariantBase, backbone_config) -> None:
    spec = plugins.method(variant.method)
    if spec.check is not None:
        plugins.resolve(spec.check)(variant, backbone_config)


def loaders() -> dict[str, str]:
    """architecture kind (an artifact's meta.json) -> "module:loader(weights_path, architecture)"."""
    return {spec.architecture: spec.load for spec in plugins.methods().values() if spec.architecture and spec.load}


def load_artifact_model(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    kind, known = architecture.get("kind"), loaders()
    if kind not in known:
        raise ValueError(f"unknown architecture kind {kind!r}; known: {', '.join(known)}")
    return plugins.resolve(known[kind])(weights, architecture)
