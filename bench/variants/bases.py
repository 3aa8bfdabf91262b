"""What a parameter-efficient variant is trained on, and the proof that it is loaded back onto the same thing.

Either the pretrained backbone (named by source and backbone seed; checked by shape and a fingerprint of its
weights) or another variant's artifact, its `base` (named by the artifact's key and a fingerprint of its
weights file). That identity goes into the recipe and the artifact's architecture; loading rebuilds the model
it names and refuses any other with one line. The model comes frozen (requires_grad off) with its head left
trainable: a fresh head on the backbone, the base's trained head on a base.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from bench.variants.artifacts import META_FILE, MODEL_FILE, Artifact
from bench.variants.context import BuildContext
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier, weights_fingerprint
from bench.model.source import ModelSource, load_backbone

SHAPE_KEYS = ("d_model", "num_layers", "attention_heads", "max_position_embeddings")


def file_fingerprint(weights: Path) -> str:
    """A cheap identity of a safetensors file: every tensor's name, shape and first values, hashed (read lazily,
    so a 2 GB file costs milliseconds). A base rebuilt with other weights under the same key changes it."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(weights), framework="pt") as f:
        for name in sorted(f.keys()):
            tensor = f.get_slice(name)
            shape = tensor.get_shape()
            digest.update(f"{name}:{tuple(shape)}".encode())
            if shape:
                head = tensor[: 64 if len(shape) == 1 else 1]  # the first row of a matrix, 64 values of a vector
                digest.update(head.flatten()[:64].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def base_identity(artifact: Artifact) -> dict[str, Any]:
    """How a dependant names its base: variant, method, artifact key, weights fingerprint and directory name."""
    recipe = artifact.meta["recipe"]
    return {"variant": recipe["variant"], "method": recipe["method"], "key": artifact.key,
            "fingerprint": file_fingerprint(artifact.path / MODEL_FILE), "dir": artifact.path.name}


def base_fields(ctx: BuildContext) -> dict[str, Any]:
    """Record fields of what a variant was trained on; `sparsity` is the base's, since the model is the base's."""
    if ctx.base is None:
        return {"sparsity": 0.0}
    recipe = ctx.base.meta["recipe"]
    return {"base_variant": recipe["variant"], "base_method": recipe["method"], "base_artifact_key": ctx.base.key,
            "sparsity": (ctx.base.meta.get("extra") or {}).get("sparsity", 0.0)}


def frozen_model(ctx: BuildContext) -> tuple[XGLMClassifier, dict[str, Any]]:
    """(the model to train on, its identity for the artifact's architecture). Seeds torch with ctx.seed last, so
    what the method initialises next (prompt, adapters) depends on the training seed only."""
    if ctx.base is None:
        backbone = load_backbone(ctx.source, seed=ctx.backbone_seed, trust_remote_code=ctx.trust_remote_code)
        identity: dict[str, Any] = {"backbone_fingerprint": weights_fingerprint(backbone)}
        torch.manual_seed(ctx.seed)
        model = XGLMClassifier(backbone, ctx.task.num_labels)
    else:
        model = ctx.base.load_model()
        if model.head.out_features != ctx.task.num_labels:
            raise BenchError(f"base artifact '{ctx.base.path}' has {model.head.out_features} labels; "
                             f"{ctx.task.name} has {ctx.task.num_labels}")
        identity = {"base": base_identity(ctx.base)}
        torch.manual_seed(ctx.seed)
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    identity |= {"backbone": str(ctx.source), "backbone_seed": ctx.backbone_seed,
                 "backbone_config": model.config.to_dict(), "num_labels": model.head.out_features}
    return model, identity


def load_frozen(architecture: dict[str, Any], weights: Path, what: str) -> XGLMClassifier:
    """The model an artifact's architecture names, checked to be the one it was trained on (else one line).
    A model on a base carries `base_method`: it runs the way its base runs (bench.variants.registry.realize)."""
    where = weights.parent
    base = architecture.get("base")
    if base is None:
        backbone = load_backbone(ModelSource.parse(architecture["backbone"]), seed=architecture["backbone_seed"])
        model = XGLMClassifier(backbone, architecture["num_labels"])
        check_backbone(architecture, model, weights_fingerprint(backbone), where=f"{what} '{where}'")
        return model
    model = open_base(base, where, what).load_model()
    model.base_method = base["method"]
    return model


def open_base(base: dict[str, Any], where: Path, what: str) -> Artifact:
    """The base artifact next to `where` (same cache), refused unless its key and weights are the ones trained on."""
    path = where.parent / base["dir"]
    if not (path / META_FILE).is_file():
        raise BenchError(f"{what} '{where}' was trained on base artifact '{base['dir']}', which is not in "
                         f"{where.parent}; rebuild base variant '{base['variant']}' with the same recipe, or this variant")
    artifact = Artifact.open(path)
    fingerprint = file_fingerprint(path / MODEL_FILE)
    if (artifact.key, fingerprint) != (base["key"], base["fingerprint"]):
        raise BenchError(f"{what} '{where}' was trained on base '{base['variant']}' (key {base['key']}, weights "
                         f"{base['fingerprint']}); '{path.name}' has key {artifact.key}, weights {fingerprint}: "
                         "another base; rebuild this variant on it")
    return artifact


def same_base(saved: dict[str, Any], here: dict[str, Any], *, where: str) -> None:
    """A learned part trained elsewhere (a reused prefix) must come from the base this variant is built on."""
    theirs, ours = saved.get("base"), here.get("base")

    def identity(base: dict[str, Any] | None) -> tuple | None:
        return None if base is None else (base["key"], base["fingerprint"])

    def name(base: dict[str, Any] | None) -> str:
        return f"base '{base['variant']}' (key {base['key']})" if base else "the pretrained backbone"

    if identity(theirs) != identity(ours):
        raise BenchError(f"{where} was trained on {name(theirs)}; this variant is built on {name(ours)}")


def shape_mismatch(architecture: dict[str, Any], config) -> str | None:
    """'d_model 64 vs 512, ...' (saved vs given) where an artifact's backbone shape differs, else None."""
    saved = {k: architecture["backbone_config"].get(k) for k in SHAPE_KEYS}
    here = {k: getattr(config, k) for k in SHAPE_KEYS}
    if saved == here:
        return None
    diff = ", ".join(f"{k} {saved[k]} vs {here[k]}" for k in SHAPE_KEYS if saved[k] != here[k])
    return f"trained for a backbone of another shape ({diff}: saved vs this one)"


def check_backbone(architecture: dict[str, Any], model: XGLMClassifier, fingerprint: str, *, where: str) -> None:
    mismatch = shape_mismatch(architecture, model.config)
    if mismatch:
        raise BenchError(f"{where} was {mismatch}")
    if architecture.get("backbone_fingerprint") != fingerprint:
        raise BenchError(
            f"{where} was trained on other backbone weights ({architecture['backbone']}, fingerprint "
            f"{architecture.get('backbone_fingerprint')}); this backbone's fingerprint is {fingerprint}"
        )
