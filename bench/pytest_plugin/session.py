"""The `xglm_bench` fixture's object: models and prepared runners built once per session, random right-padded
batches with their eager fp32 reference, and the timed run that fills `benchmark.extra_info`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bench.pytest_plugin.settings import DEVICES, DTYPES, Settings, known_device, regression_line
from bench.variants.model_spec import ModelSpec, build_model, realize_for

if TYPE_CHECKING:
    import numpy as np
    import torch

    from bench.backends import Runner, Target
    from bench.model.classifier import XGLMClassifier


@dataclass(frozen=True)
class BenchBatch:
    """One benchmark input and what eager fp32 makes of it: the reference of the parity check."""

    input_ids: torch.Tensor  # [B, T] int64, right padded
    attention_mask: torch.Tensor  # [B, T] 0/1
    reference_logits: np.ndarray  # [B, labels] float32: the same model in eager fp32 on the CPU
    info: dict[str, Any]  # model and input description, copied into extra_info

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())


class XglmBench:
    """The `xglm_bench` fixture: one per session, holding the models and prepared runners it built."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings, self.workdir = settings, workdir
        self._models: dict[tuple, tuple[XGLMClassifier, dict[str, Any]]] = {}
        self._runners: dict[tuple, Runner] = {}

    def model(self, spec: ModelSpec | str = "random:tiny") -> tuple[XGLMClassifier, dict[str, Any]]:
        """(fp32 classifier on the CPU, its description for extra_info), built once per session."""
        spec = ModelSpec(spec) if isinstance(spec, str) else spec
        if spec.key not in self._models:
            self._models[spec.key] = build_model(spec)
        return self._models[spec.key]

    def runner(
        self, model: ModelSpec | str = "random:tiny", backend: str = "eager", *, batch_size: int = 8, seq_len: int = 64,
        device: str | None = None, dtype: str | None = None, threads: int | None = None,
    ) -> tuple[Runner, BenchBatch]:
        """A prepared runner (shared across the session) and a fresh batch of exactly [batch_size, seq_len]."""
        from bench.backends import Target

        spec = ModelSpec(model) if isinstance(model, str) else model
        target = Target(device or self.settings.device, dtype or self.settings.dtype, threads or self.settings.threads)
        _check_target(backend, target)
        classifier, info = self.model(spec)
        batch = _random_batch(classifier, info, batch_size, seq_len, spec.seed)
        key = (spec.key, backend, target)
        if key not in self._runners:
            self._runners[key] = self._prepare(backend, classifier, info["method"], target, batch)
        return self._runners[key], batch

    def run(
        self, benchmark: Any, runner: Runner, batch: BenchBatch, *, rounds: int | None = None, warmup_rounds: int | None = None,
    ) -> dict[str, Any]:
        """Time `runner` on `batch` with benchmark.pedantic; returns what it put into benchmark.extra_info."""
        from bench.measure.passes import parity
        from bench.measure.memory import measure_memory

        rounds = self.settings.rounds if rounds is None else rounds
        warmup_rounds = self.settings.warmup_rounds if warmup_rounds is None else warmup_rounds
        inputs = runner.inputs(batch.input_ids, batch.attention_mask)  # on the device once, outside any round

        def step() -> None:
            runner(inputs)
            runner.synchronize()  # the host clock must see the device's work finished

        if benchmark.group is None:  # a table per variant and shape, backends side by side
            benchmark.group = f"{batch.info['variant']} {batch.batch_size}x{batch.seq_len}"
        with _torch_threads(runner.target.threads):
            # setup: each round starts on an idle device (the input copy above is asynchronous on CUDA).
            benchmark.pedantic(step, setup=runner.synchronize, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
            seconds, source, samples = _median_seconds(benchmark, runner, inputs, rounds, warmup_rounds)
            memory = measure_memory(lambda: runner(inputs), runner.synchronize, runner.target.device,
                                    allocator=runner.allocator)
            logits = runner.logits(runner(inputs))
        info = {
            **batch.info, "backend": runner.backend, "device": runner.target.device, "dtype": runner.target.dtype,
            "threads": runner.target.threads, "batch_size": batch.batch_size, "seq_len": batch.seq_len,
            "rounds": rounds, "warmup_rounds": warmup_rounds,
            "latency_ms_median": seconds * 1e3, "latency_source": source,
            **_interval_fields(samples),
            "throughput_samples_per_s": batch.batch_size / seconds,
            "throughput_tokens_per_s": batch.real_tokens / seconds,  # real tokens only
            "throughput_padded_tokens_per_s": batch.batch_size * batch.seq_len / seconds,
            **runner.build_seconds, **runner.info, **memory, **parity(logits, batch.reference_logits),
        }
        benchmark.extra_info.update(info)
        self._gate(benchmark, info)
        return info

    def _gate(self, benchmark: Any, info: dict[str, Any]) -> None:
        """Against --xglm-bench-baseline: a warning when the threads differ from the baseline's (the latencies are
        then not comparable), and the regression gate: one line, no traceback, on a clear regression."""
        settings = self.settings
        name = getattr(benchmark, "fullname", None) or getattr(benchmark, "name", "")
        baseline = (settings.baseline or {}).get(name)
        if not baseline:
            return
        if baseline.get("threads") not in (None, info["threads"]):
            warnings.warn(f"{name}: ran with {info['threads']} thread(s), the baseline with {baseline['threads']}: "
                          "its latencies are not comparable (set --xglm-bench-threads to the baseline's)", stacklevel=2)
        if settings.fail_on_regression is not None:
            line = regression_line(name, info["latency_samples_ms"], baseline["latency_samples_ms"],
                                   settings.fail_on_regression)
            if line:
                pytest.fail(line, pytrace=False)

    def _prepare(self, backend: str, model: XGLMClassifier, method: str, target: Target, batch: BenchBatch) -> Runner:
        from bench.backends import SkipCell, prepare
        from bench.config import BackendOptions

        workdir = self.workdir / f"runner-{len(self._runners)}-{backend}"
        try:
            # As in a sweep's cell: the method's weights realised for this target (2:4 kernels, smaller GEMMs).
            model, realized = realize_for(model, method, target, backend)
            with _torch_threads(target.threads):  # compile's first call runs here
                runner = prepare(backend, model, target, (batch.input_ids, batch.attention_mask), BackendOptions(), workdir)
        except SkipCell as exc:
            pytest.skip(f"{backend} on {target.device} {target.dtype}: {exc}")
        runner.info.update(realized)
        return runner


def _check_target(backend: str, target: Target) -> None:
    """A misspelt name is the caller's error; a capability this machine lacks is a skip."""
    import torch

    from bench.plugins import backend_names
    from bench.errors import BenchError, did_you_mean

    names = ((backend, backend_names(), "backend"), (target.dtype, DTYPES, "dtype"), (target.device, [*DEVICES, "cuda:N"], "device"))
    for value, allowed, what in names:
        if value not in allowed and not (what == "device" and known_device(value)):
            raise BenchError(did_you_mean(value, list(allowed), what))
    # Before the model is built: a 564M model costs seconds that a skip should not.
    if target.device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"{backend} on cuda: CUDA is not available on this machine (torch {torch.__version__})")


def _random_batch(model: XGLMClassifier, info: dict[str, Any], batch_size: int, seq_len: int, seed: int) -> BenchBatch:
    """Random token ids, lengths between seq_len/2 and seq_len (the first row full), right padded to seq_len.
    Latency does not depend on which tokens they are; padding and the pooled position do."""
    import torch

    from bench.errors import BenchError
    from bench.data.tokenization import pad_batch

    config = model.config
    if model.prefix_length + seq_len > config.max_position_embeddings:
        raise BenchError(
            f"seq_len {seq_len} + prefix {model.prefix_length} exceeds the model's {config.max_position_embeddings} positions"
        )
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, seq_len // 2), seq_len + 1, (batch_size,), generator=g)
    lengths[0] = seq_len
    rows = [torch.randint(4, config.vocab_size, (int(n),), generator=g).tolist() for n in lengths]
    input_ids, attention_mask = pad_batch(rows, config.pad_token_id, seq_len)
    with torch.inference_mode():
        reference = model(input_ids, attention_mask).float().numpy()
    note = (
        f"random token ids (seed {seed}), not text; lengths {seq_len // 2 or 1}..{seq_len}, right padded: "
        f"{int(attention_mask.sum())} of {batch_size * seq_len} tokens real"
    )
    return BenchBatch(input_ids, attention_mask, reference, {**info, "input": note})


def _median_seconds(benchmark: Any, runner: Runner, inputs: Any, rounds: int, warmup: int) -> tuple[float, str, list[float]]:
    """The benchmark's own median and per-round seconds; under --benchmark-disable (no stats), a short measurement
    of our own."""
    import numpy as np

    from bench.measure.timing import time_iterations

    if benchmark.stats:
        return (float(benchmark.stats.stats.median), "pytest-benchmark median",
                [float(x) for x in benchmark.stats.stats.data])
    samples = time_iterations(
        lambda: runner(inputs), synchronize=runner.synchronize, cuda_events=runner.cuda_events,
        warmup=warmup, min_iters=rounds, min_time_s=0.0, max_time_s=60.0,
    )
    return (float(np.median(samples)) / 1e9, "bench.measure.timing median (pytest-benchmark disabled)",
            [float(x) / 1e9 for x in samples])


def _interval_fields(seconds: list[float]) -> dict[str, Any]:
    """The median's order-statistic interval with its exact level, and the samples (ms) a later gate compares."""
    from bench.measure.stats import median_interval

    ms = [s * 1e3 for s in seconds]
    interval = median_interval(ms)
    return {"latency_ms_ci95_low": interval.low, "latency_ms_ci95_high": interval.high,
            "latency_ms_ci_level": interval.level, "latency_samples_ms": [round(x, 4) for x in ms[:1000]]}


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Pin torch's intra-op threads as the sweep does, and give the session back its own setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
