"""Backends: one module each behind one small interface. `prepare(name, ...) -> Runner`.

A backend never knows how a variant was made: it receives a classifier module and an example batch.
Adding a backend is adding a module and a line in BACKENDS.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from bench.backends.base import Runner, SkipCell, Target
from bench.config import BackendOptions

BACKENDS: dict[str, str] = {
    "eager": "bench.backends.eager:prepare",
    "compile": "bench.backends.compile:prepare",
    "onnxruntime": "bench.backends.onnxruntime:prepare",
}

__all__ = ["BACKENDS", "Runner", "SkipCell", "Target", "prepare"]


def prepare(name: str, model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    """Build a runner for `model` on `target`; raises SkipCell when the backend cannot serve that target."""
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)(model, target, example, options, workdir)
