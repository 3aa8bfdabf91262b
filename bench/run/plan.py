"""Preflight: everything that can be checked before work starts (device, model source, lengths, variants, data,
tokenizer) is checked before the run directory exists, so bad input never leaves a run that looks finished.
The result, a Plan, holds the inputs every cell shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch
from rich.console import Console

from bench.build import artifacts
from bench.build.methods import check_variant
from bench.config import SweepConfig, VariantConfig
from bench.data.examples import TaskData
from bench.data.load import load_task_data
from bench.data.local import resolve_data_dir
from bench.data.tokenization import load_tokenizer
from bench.errors import BenchError
from bench.model.source import ModelSource, backbone_config


@dataclass
class Plan:
    """What preflight established: the inputs every cell shares."""

    source: ModelSource
    data: dict[str, TaskData]
    tokenizer: Any
    tokenizer_note: str
    threads: int
    cache_dir: Path


def preflight(cfg: SweepConfig, console: Console) -> Plan:
    if cfg.measure.device == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            f"device 'cuda' requested but CUDA is not available here (torch {torch.__version__}); use --device cpu"
        )
    source = ModelSource.parse(cfg.model.source)
    backbone = backbone_config(source, trust_remote_code=cfg.model.trust_remote_code)
    _check_lengths(cfg, backbone.max_position_embeddings)
    for variant in cfg.variants:
        if variant.prefix_artifact:
            _check_prefix_artifact(variant, backbone)
        check_variant(variant, backbone)
    data_dir = resolve_data_dir(cfg.data.data_dir)
    data = {}
    for task in cfg.data.tasks:
        data[task] = load_task_data(
            task, source=cfg.data.source, data_dir=data_dir, languages=cfg.data.languages,
            eval_split=cfg.data.eval_split, max_train=cfg.data.max_train_samples,
            max_eval_per_language=cfg.data.max_eval_per_language, seed=cfg.seed,
        )
    texts = [t for d in data.values() for ex in [d.train, *d.eval.values()] for t in (*ex.premise, *ex.hypothesis)]
    cache_dir = artifacts.default_cache_dir(cfg.cache_dir)
    tokenizer, note = load_tokenizer(source, texts=texts, cache_dir=cache_dir, trust_remote_code=cfg.model.trust_remote_code)
    threads = cfg.measure.threads or psutil.cpu_count(logical=False) or 1
    return Plan(source, data, tokenizer, note, threads, cache_dir)


def _check_lengths(cfg: SweepConfig, positions: int) -> None:
    """Real tokens follow the prefix, so prefix + tokens must fit the position table."""
    longest = max([cfg.model.max_length, *cfg.measure.seq_lens])
    if longest > positions:
        raise BenchError(f"sequence length {longest} exceeds the model's {positions} positions")
    for v in cfg.variants:
        if v.prompt_length and v.prompt_length + longest > positions:
            raise BenchError(
                f"variant '{v.name}': prompt_length {v.prompt_length} + sequence length {longest} exceeds the "
                f"model's {positions} positions; shorten the prefix or model.max_length / measure.seq_lens"
            )


def _check_prefix_artifact(variant: VariantConfig, backbone) -> None:
    """What can be checked without loading weights: a prompt artifact, for a backbone of this shape."""
    from prompts.method import shape_mismatch

    artifact = artifacts.Artifact.open(Path(variant.prefix_artifact))
    architecture = artifact.meta.get("architecture", {})
    if architecture.get("kind") != "prompt":
        raise BenchError(f"variant '{variant.name}': '{artifact.path}' is not a prompt artifact")
    mismatch = shape_mismatch(architecture, backbone)
    if mismatch:
        raise BenchError(f"variant '{variant.name}': prefix artifact '{artifact.path}' was {mismatch}")
