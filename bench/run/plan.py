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

from bench.variants import artifacts
from bench.variants.registry import check_variant
from bench.config import SweepConfig, VariantBase
from bench.plugins import backend_kind
from bench.data.examples import TaskData
from bench.data.load import load_task_data
from bench.data.local import require_data_dir
from bench.data.tokenization import load_tokenizer
from bench.errors import BenchError
from bench.model.source import ModelSource, backbone_config
from bench.run.memory_estimate import check_fits


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
    check_device(cfg.measure.device)
    check_semi24(cfg, console)
    source = ModelSource.parse(cfg.model.source)
    if cfg.model.trust_remote_code:
        _warn_remote_code(source, console)
    backbone = backbone_config(source, trust_remote_code=cfg.model.trust_remote_code)
    _check_weights(source)
    _check_lengths(cfg, backbone.max_position_embeddings)
    _warn_padding(cfg, console)
    _warn_untrained(cfg, console)
    for variant in cfg.variants:
        if getattr(variant, "prefix_artifact", None):
            _check_prefix_artifact(variant, backbone)
        check_variant(variant, backbone)
        _check_kernels(cfg, variant)
        _check_precisions(cfg, variant)
    check_fits(cfg, backbone)  # a cell that cannot fit in memory, refused before anything is built
    data_dir = require_data_dir(cfg.data.data_dir)
    data = {}
    for task in cfg.data.tasks:
        data[task] = load_task_data(
            task, source=cfg.data.source, data_dir=data_dir, languages=cfg.data.languages,
            eval_split=cfg.data.eval_split, max_train=cfg.data.max_train_samples,
            max_eval_per_language=cfg.data.max_eval_per_language, seed=cfg.seed,
        )
    texts = [t for d in data.values() for ex in [d.train, *d.eval.values()] for t in (*ex.premise, *ex.hypothesis)]
    cache_dir = artifacts.default_cache_dir(cfg.cache_dir)
    _check_writable(cache_dir)
    tokenizer, note = load_tokenizer(source, texts=texts, cache_dir=cache_dir, trust_remote_code=cfg.model.trust_remote_code)
    threads = cfg.measure.threads or psutil.cpu_count(logical=False) or 1
    return Plan(source, data, tokenizer, note, threads, cache_dir)


def _check_kernels(cfg: SweepConfig, variant) -> None:
    """A sparse kernel that cannot serve the variant on this device and dtype is refused now, in one line."""
    if getattr(variant, "kernels", None):
        from sparsify.realize_kernels import kernel_refusal

        problem = kernel_refusal(variant, cfg.measure.device, cfg.measure.dtypes, cfg.measure.backends)
        if problem:
            raise BenchError(problem)


def _check_precisions(cfg: SweepConfig, variant) -> None:
    """A precision no listed backend can run on this device (fp8 on a CPU or a GPU below 8.9, a library that is not
    installed) is refused now, in one line naming what would run; one that only some backends lack is `skipped`
    there, cell by cell, with the reason (bench.plugins.precision.unavailable)."""
    from bench.plugins.precision import cpu_refusal, unavailable

    device, kinds = cfg.measure.device, [backend_kind(b) for b in cfg.measure.backends]
    capability = torch.cuda.get_device_capability(torch.device(device)) if device.startswith("cuda") else None
    for precision in variant.precisions or ():
        problems = [unavailable(precision, kind, device, capability) for kind in kinds]
        if all(problems):
            cpu_only = not device.startswith("cuda") and cpu_refusal(precision, kinds)
            raise BenchError(f"variant '{variant.name}': {cpu_only or problems[0]}")


def _warn_untrained(cfg: SweepConfig, console: Console) -> None:
    """train.steps = 0 builds untrained variants (speed-only): their accuracy is chance, said once, and every record
    carries trained: false."""
    untrained = [v.name for v in cfg.variants if cfg.train_for(v).steps == 0]
    if untrained:
        console.print(f"[yellow]warning[/] train.steps = 0: {', '.join(untrained)} are not trained (records say "
                      "trained: false); their accuracy is chance, their speed is what it measures")


def _warn_remote_code(source: ModelSource, console: Console) -> None:
    from bench.model.source import remote_code_files

    files = remote_code_files(source)
    what = (", ".join(files) + f" in {source.name}") if files else (
        f"the Python files of the hub repository '{source.name}'" if source.kind == "hub" else "no files (none found)")
    console.print(f"[yellow]warning[/] model.trust_remote_code = true: transformers will import and run {what}")


def _check_lengths(cfg: SweepConfig, positions: int) -> None:
    """Real tokens follow the prefix, so prefix + tokens must fit the position table."""
    longest = max([cfg.model.max_length, *cfg.measure.seq_lens])
    if longest > positions:
        raise BenchError(f"sequence length {longest} exceeds the model's {positions} positions")
    for v in cfg.variants:
        if getattr(v, "prompt_length", None) and v.prompt_length + longest > positions:
            raise BenchError(
                f"variant '{v.name}': prompt_length {v.prompt_length} + sequence length {longest} exceeds the "
                f"model's {positions} positions; shorten the prefix or model.max_length / measure.seq_lens"
            )


def _check_weights(source: ModelSource) -> None:
    """A local model's safetensors files are whole (their headers cover them): a truncated download is one line now,
    not a failed build in every cell."""
    if source.kind != "local":
        return
    safetensors = sorted(Path(source.name).glob("*.safetensors"))
    for path in safetensors:
        problem = artifacts.safetensors_problem(path)
        if problem:
            raise BenchError(f"model directory '{source.name}': {problem}; download or save the model again")
    if not safetensors:  # transformers reads pickled weights (pytorch_model*.bin) only where there is no safetensors
        for path in sorted(Path(source.name).glob("pytorch_model*.bin")):
            _check_pickle(path)


def _check_pickle(path: Path) -> None:
    """A pickled checkpoint is read with torch.load(weights_only=True), which refuses (never runs) anything but
    tensors; refused here in one line, memory-mapped so a large file costs no memory, instead of failing in the build
    with torch's advice to turn the protection off."""
    import pickle

    try:
        torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise BenchError(f"model directory '{path.parent}': {path.name} is a pickle that holds more than tensors, and "
                         "code in it is never run; convert the weights to safetensors (model.safetensors) where they "
                         "came from, or use a checkpoint of tensors only") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise BenchError(f"model directory '{path.parent}': {path.name} is unreadable ({type(exc).__name__}); "
                         "download or save the model again") from None


def _warn_padding(cfg: SweepConfig, console: Console) -> None:
    """Pairs are encoded to at most model.max_length tokens, so a latency shape longer than that is mostly padding:
    it times the padding, not the text."""
    timed = {"latency", "memory"} & set(cfg.measure.scenarios)
    for seq in sorted(s for s in cfg.measure.seq_lens if s > cfg.model.max_length and timed):
        share = 1 - cfg.model.max_length / seq
        console.print(f"[yellow]warning[/] measure.seq_lens {seq} exceeds model.max_length {cfg.model.max_length}: "
                      f"every row is at most {cfg.model.max_length} real tokens, so at least {share:.0%} of each "
                      f"[B, {seq}] batch is padding; raise model.max_length to {seq} to time real text")


def _check_writable(cache_dir: Path) -> None:
    """Artifacts, tokenizers and calibrations are written here; a read-only or full cache is one line now, not a
    traceback mid-run."""
    import tempfile

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BenchError(f"cache directory '{cache_dir}' is not writable ({exc.strerror or exc}); set "
                         "BENCH_CACHE_DIR or cache_dir to a writable directory") from None


def _check_prefix_artifact(variant: VariantBase, backbone) -> None:
    """What can be checked without loading weights: a prompt artifact, for a backbone of this shape."""
    from prompts.ptuning import shape_mismatch

    try:
        artifact = artifacts.Artifact.open(Path(variant.prefix_artifact))
    except BenchError as exc:
        raise BenchError(f"variant '{variant.name}': prefix_artifact {exc}") from None
    architecture = artifact.meta.get("architecture", {})
    if architecture.get("kind") != "prompt":
        raise BenchError(f"variant '{variant.name}': '{artifact.path}' is not a prompt artifact")
    mismatch = shape_mismatch(architecture, backbone)
    if mismatch:
        raise BenchError(f"variant '{variant.name}': prefix artifact '{artifact.path}' was {mismatch}")


def check_device(device: str) -> None:
    """A device name torch knows; cuda and cuda:N need CUDA, and N a device torch sees (CUDA_VISIBLE_DEVICES applied)."""
    kind, colon, index = device.partition(":")
    if not (kind == "cpu" and not colon or kind == "cuda" and (not colon or index.isdigit())):
        raise BenchError(f"unknown device '{device}'; available: cpu, cuda, cuda:N")
    if kind == "cpu":
        return
    if not torch.cuda.is_available():
        raise BenchError(f"device '{device}' requested but CUDA is not available here (torch {torch.__version__}); use --device cpu")
    index = torch.device(device).index
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise BenchError(f"device '{device}' requested but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1}; "
                         "CUDA_VISIBLE_DEVICES renumbers them)")


def check_semi24(cfg: SweepConfig, console: Console) -> None:
    """2:4 variants measured on CUDA in half precision by eager or compile: the GPU must have sparse tensor cores
    (compute capability >= 8.0; otherwise the cells run dense zeros, said once here), and torch's 2:4 kernel
    (cuSPARSELt, or CUTLASS where torch has no cuSPARSELt) must convert and multiply a small 2:4 matrix here, now,
    rather than fail in every cell."""
    device, dtypes = cfg.measure.device, [d for d in cfg.measure.dtypes if d in ("fp16", "bf16")]
    if (not device.startswith("cuda") or not dtypes or not {"eager", "compile"} & {backend_kind(b) for b in cfg.measure.backends}
            or not any(v.method == "semi24" for v in cfg.variants)):
        return
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    if (major, minor) < (8, 0):
        console.print(f"[yellow]note[/] semi24 on {torch.cuda.get_device_name(torch.device(device))} (compute capability "
                      f"{major}.{minor} < 8.0): no sparse tensor cores, the 2:4 zeros run dense (speedup_mechanism none)")
        return
    for dtype in dtypes:
        problem = semi24_kernel_problem(device, dtype)
        if problem:
            raise BenchError(f"semi24 variants on {device} in {dtype}: {problem}; fix the torch install (cuSPARSELt) "
                             "or leave semi24 out of this sweep")


def semi24_kernel_problem(device: str, dtype: str) -> str | None:
    """None when torch's 2:4 kernel converts a [128, 128] 2:4 matrix and multiplies with it as a dense one would."""
    from sparsify.realize import _kernel_class
    from bench.model.dtypes import TORCH_DTYPES

    kernel = _kernel_class()  # cuSPARSELt, or CUTLASS where this torch has no cuSPARSELt
    half = TORCH_DTYPES[dtype]
    try:
        weight = torch.tensor([1.0, 0.0, 2.0, 0.0], device=device).repeat(128, 32).to(half)  # [128, 128], 2:4
        x = torch.randn(128, 128, device=device).to(half)
        sparse = torch.sparse.to_sparse_semi_structured(weight)
        got, want = torch.nn.functional.linear(x, sparse), torch.nn.functional.linear(x, weight)
        torch.cuda.synchronize(torch.device(device))
    except Exception as exc:
        return f"torch's 2:4 kernel ({kernel.BACKEND}) failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if not torch.allclose(got.float(), want.float(), rtol=2e-2, atol=2e-2):
        return f"torch's 2:4 kernel ({kernel.BACKEND}) gave results that differ from the dense product"
    return None
