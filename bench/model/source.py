"""Where a backbone comes from: a hub id, a local save_pretrained directory, or a named random-weight preset.

Configs are read and checked to be XGLM before any run exists (preflight); loading from the hub falls back to
the local Hugging Face cache at once when the hub is unreachable, and every load error becomes one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import XGLMConfig, XGLMModel

from bench.errors import BenchError, did_you_mean, one_line
from bench.model.hub import check_reachable

# Named architectures with random weights (gpt-fast style presets). 564M is facebook/xglm-564M's shape.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, num_layers=2, attention_heads=4, ffn_dim=128, vocab_size=1024, max_position_embeddings=512),
    "small": dict(d_model=512, num_layers=4, attention_heads=8, ffn_dim=2048, vocab_size=8192, max_position_embeddings=2048),
    "564M": dict(d_model=1024, num_layers=24, attention_heads=16, ffn_dim=4096, vocab_size=256008, max_position_embeddings=2048),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a backbone comes from: `random:<preset>`, a local directory, or a hub id."""

    kind: Literal["random", "local", "hub"]
    name: str

    @classmethod
    def parse(cls, spec: str) -> "ModelSource":
        if spec.startswith("random:"):
            preset = spec.removeprefix("random:")
            if preset not in PRESETS:
                raise BenchError(did_you_mean(preset, list(PRESETS), "model preset") + " (use random:<preset>)")
            return cls("random", preset)
        path = Path(spec).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise BenchError(f"model directory '{spec}' has no config.json; save one with save_pretrained()")
            return cls("local", str(path.resolve()))
        if _HUB_ID.match(spec) and not spec.startswith((".", "~")):
            return cls("hub", spec)
        raise BenchError(
            f"model '{spec}' is neither a directory nor a hub id (org/name) nor random:<preset> "
            f"(presets: {', '.join(PRESETS)})"
        )

    @property
    def random_weights(self) -> bool:
        return self.kind == "random"

    def __str__(self) -> str:
        return f"random:{self.name}" if self.kind == "random" else self.name


def preset_config(preset: str) -> XGLMConfig:
    return XGLMConfig(**PRESETS[preset])


def backbone_config(source: ModelSource, *, trust_remote_code: bool = False) -> XGLMConfig:
    """The backbone's config, checked to be XGLM; cheap, so preflight calls it before any run exists."""
    if source.kind == "random":
        return preset_config(source.name)
    with _loading(source) as offline:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source.name, trust_remote_code=trust_remote_code, local_files_only=offline)
    if config.model_type != "xglm":
        raise BenchError(f"model '{source.name}' is a {config.model_type} model, not XGLM")
    if not isinstance(config, XGLMConfig):  # trust_remote_code: the directory's own class, claiming to be xglm
        raise BenchError(f"model '{source.name}': its code loads {type(config).__module__}.{type(config).__name__}, "
                         "not transformers' XGLMConfig; this harness measures XGLM only: set "
                         "model.trust_remote_code = false to use transformers' XGLM classes")
    return config


def remote_code_files(source: ModelSource) -> list[str]:
    """The Python files trust_remote_code would run: a local directory's *.py (a hub repository's are only known
    once downloaded, so the repository is named instead)."""
    if source.kind == "local":
        return sorted(path.name for path in Path(source.name).glob("*.py"))
    return []


def load_backbone(source: ModelSource, *, seed: int = 0, trust_remote_code: bool = False) -> XGLMModel:
    """An fp32 XGLMModel; random presets are initialised from `seed` so a recipe rebuilds identically."""
    config = backbone_config(source, trust_remote_code=trust_remote_code)
    if source.kind == "random":
        torch.manual_seed(seed)
        return XGLMModel(config).eval()
    with _loading(source) as offline, _quiet_transformers():
        # XGLMModel takes the base weights out of an XGLMForCausalLM checkpoint ("model." prefix); the checkpoint's
        # lm_head (tied to the embedding) is the one key it does not use. Anything else left over, or missing, is a
        # checkpoint of another shape: refused, instead of transformers' load table and randomly initialised weights.
        model, info = XGLMModel.from_pretrained(
            source.name, config=config, dtype=torch.float32, trust_remote_code=trust_remote_code,
            local_files_only=offline, output_loading_info=True,
        )
    unused = sorted(set(info.get("unexpected_keys", ())) - {"lm_head.weight"})
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys", ()))
    if missing or unused or mismatched:
        parts = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unused), ("mismatched", mismatched)) if keys]
        raise BenchError(f"model '{source.name}': its weights do not fit its config.json ({'; '.join(parts)})")
    return model.eval()


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints a multi-line table of unused keys on every XGLMForCausalLM -> XGLMModel load (the keys
    are checked in load_backbone instead) and a progress bar per load."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # "Loading weights" bars in a run's output
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


@contextmanager
def _loading(source: ModelSource) -> Iterator[bool]:
    """Yields whether to stay offline (hub unreachable: the local cache only); load errors become one line."""
    why_offline = hub_unreachable() if source.kind == "hub" else None
    try:
        yield why_offline is not None
    except (OSError, ValueError) as exc:
        if source.kind == "local":
            raise BenchError(f"could not load model directory '{source.name}': {one_line(exc)}") from exc
        why = f"the hub is unreachable ({why_offline}) and it is not in the local cache" if why_offline else one_line(exc)
        raise BenchError(
            f"could not load model '{source.name}' from the hub: {why}; download it where the hub is reachable "
            "or pass a local directory"
        ) from exc


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now, or None; offline, loading falls back to the local cache."""
    try:
        check_reachable()
    except BenchError as exc:
        return str(exc)
    return None
