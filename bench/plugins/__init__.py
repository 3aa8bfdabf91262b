"""Plug-ins: every method and backend the harness knows, found once from their declarations (bench.plugins.spec).

Built-in declarations are listed below as "module:attribute"; another package adds its own through the entry
points `xglm_bench.methods` and `xglm_bench.backends` (each entry: "package.module:SPEC"), with no edit here.
Declaration modules are light (pydantic only), so finding them keeps `bench` and config validation free of torch.
Hooks inside a declaration are resolved only when they run (`resolve`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from bench.errors import BenchError, did_you_mean
from bench.plugins.spec import BackendSpec, MethodSpec

BUILTIN_METHODS = (
    "bench.variants.methods:DENSE",
    "prompts.methods:PROMPT", "prompts.methods:SOFT_PROMPT", "prompts.methods:LORA",
    "sparsify.methods:UNSTRUCTURED", "sparsify.methods:SEMI24", "sparsify.methods:STRUCTURED",
)
BUILTIN_BACKENDS = ("bench.backends.eager:SPEC", "bench.backends.compile:SPEC", "bench.backends.onnxruntime:SPEC")
METHOD_GROUP, BACKEND_GROUP = "xglm_bench.methods", "xglm_bench.backends"


def resolve(target: str) -> Any:
    """'module:attribute' -> the attribute, imported now."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _found(builtin: tuple[str, ...], group: str, kind: type) -> dict[str, Any]:
    specs: dict[str, Any] = {}
    declared = [(target, "xglm-bench") for target in builtin]
    declared += [(ep.value, ep.dist.name if ep.dist else ep.value) for ep in entry_points(group=group)]
    for target, origin in declared:
        try:
            spec = resolve(target)
        except (ImportError, AttributeError) as exc:
            raise BenchError(f"plug-in '{target}' (from {origin}, entry point group {group}) does not load: {exc}") from None
        if not isinstance(spec, kind):
            raise BenchError(f"plug-in '{target}' (from {origin}) is a {type(spec).__name__}, not a {kind.__name__}")
        if spec.name in specs and specs[spec.name] is not spec:
            raise BenchError(f"two plug-ins declare {kind.__name__} '{spec.name}' ({target} from {origin} is the second)")
        specs[spec.name] = spec
    return specs


@cache
def methods() -> dict[str, MethodSpec]:
    """Every method by name: the built-ins, then the entry points'."""
    return _found(BUILTIN_METHODS, METHOD_GROUP, MethodSpec)


@cache
def backends() -> dict[str, BackendSpec]:
    """Every backend by name: the built-ins, then the entry points'."""
    return _found(BUILTIN_BACKENDS, BACKEND_GROUP, BackendSpec)


def method(name: str) -> MethodSpec:
    found = methods()
    if name not in found:
        raise BenchError(did_you_mean(name, list(found), "method"))
    return found[name]


def methods_where(trait: str) -> tuple[str, ...]:
    """The names of the methods with a trait: methods_where('sparse') -> ('unstructured', 'semi24', 'structured')."""
    return tuple(name for name, spec in methods().items() if getattr(spec, trait))


def backend_names() -> list[str]:
    """Every name `measure.backends` accepts: each backend and `<backend>:<mode>` for each of its modes."""
    return [name for spec in backends().values() for name in spec.names()]


def backend_kind(name: str) -> str:
    """The backend a name runs on: 'compile:max-autotune' -> 'compile'."""
    return name.partition(":")[0]


def backend(name: str) -> BackendSpec:
    return backends()[backend_kind(check_backend_name(name))]


def check_backend_name(name: str) -> str:
    """The name if some backend accepts it, else a ValueError saying what would ('onnx' -> 'onnxruntime')."""
    names = backend_names()
    if name in names:
        return name
    started = [n for n in names if name and n.startswith(name)]  # 'onnx' -> 'onnxruntime', which difflib misses
    if len(started) == 1:
        raise ValueError(f"unknown backend '{name}'; did you mean '{started[0]}'? available: {', '.join(names)}")
    raise ValueError(did_you_mean(name, names, "backend"))


def hook(target: str | None) -> Callable | None:
    return None if target is None else resolve(target)


def inventory() -> dict[str, dict[str, str]]:
    """Which module declares each method and backend (env.json): a run says which plug-ins it ran with."""
    def where(spec: MethodSpec | BackendSpec) -> str:
        return spec.variant.__module__ if isinstance(spec, MethodSpec) else spec.prepare.partition(":")[0]

    return {"methods": {n: where(s) for n, s in methods().items()}, "backends": {n: where(s) for n, s in backends().items()}}
