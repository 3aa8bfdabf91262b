"""How much memory a cell will need, estimated from the model's shape before anything is built, and how much there
is. Preflight refuses a cell that cannot fit (one line, naming the largest batch that would); every memory record
carries the estimate beside the measured peak (`estimated_peak_memory_mb` beside `peak_memory_mb`), so the
estimate's error is visible in every run; an out-of-memory in a cell is one failed record that says what was
estimated and what was free.

A cell's peak is
- the runtime: on CPU the resident memory of a process that has imported torch, transformers and the harness (this
  process's RSS, measured, since a cell worker imports the same); on CUDA nothing (the CUDA context is outside
  torch's allocator and is not counted);
- the weights, in the measured dtype, once per copy the backend keeps: eager and compile hold the module; ONNX
  Runtime holds the module, the session's initializers and the MLAS pre-packed GEMM weights;
- the activations of the largest forward the cell runs (the evaluation pass at measure.throughput_batch_size x
  model.max_length, and every measure.batch_sizes x seq_lens shape): per layer the residual stream, layer norm,
  q, k, v and attention output (6 x B x T x d), the FFN's two B x T x ffn tensors, and the B x heads x T x (P + T)
  attention scores of SDPA's math path; ONNX Runtime's CPU arena grows by doubling, so up to twice that;
- a prefix's K/V ([1, heads, P, head_dim] per layer for keys and values), and a soft prompt's P extra tokens.

Everything in it is affine in the batch size B, which is how the largest batch that fits is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GiB = 2**30
MB = 2**20
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}
# Copies of the weights a cell's process holds, per backend kind (see the module docstring).
WEIGHT_COPIES = {"eager": 1, "compile": 1, "onnxruntime": 3}
ARENA_FACTOR = {"eager": 1.0, "compile": 1.0, "onnxruntime": 2.0}  # ORT's BFC arena extends to the next power of 2
HEADROOM = 0.9  # of the free memory a cell may plan to use: the OS, page cache and other processes need the rest


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a backbone: XGLMConfig's sizes, and the parameter count."""

    d_model: int
    layers: int
    heads: int
    ffn: int
    params: int

    @classmethod
    def of(cls, config: Any) -> "Shape":
        return cls(config.d_model, config.num_layers, config.attention_heads, config.ffn_dim, parameter_count(config))


@dataclass(frozen=True)
class Estimate:
    """A cell's estimated peak in bytes, by part; `per_sample` is what one more row of the batch adds."""

    runtime: int
    weights: int
    prefix: int
    activations: int
    per_sample: float  # activation bytes per row at the largest shape's sequence length
    batch: int
    seq: int

    @property
    def total(self) -> int:
        return self.runtime + self.weights + self.prefix + self.activations

    def largest_batch(self, free: int) -> int:
        """The largest batch at this shape's sequence length whose estimate fits in HEADROOM x free (0: none)."""
        room = HEADROOM * free - (self.runtime + self.weights + self.prefix)
        return max(0, int(room // self.per_sample)) if self.per_sample else 0

    def parts(self) -> str:
        return (f"runtime {self.runtime / GiB:.2f}, weights {self.weights / GiB:.2f}, "
                f"activations {self.activations / GiB:.2f} GiB")


def parameter_count(config: Any) -> int:
    """Parameters and buffers of XGLMModel (embedding, sinusoidal position table of max_position_embeddings + 2
    rows, per layer q/k/v/out projections, two layer norms, fc1 and fc2; the final layer norm) plus a 3-way head.
    Equal to counting XGLMModel on the meta device (tests/test_memory_estimate.py), without importing what that
    pulls in."""
    d, ffn = config.d_model, config.ffn_dim
    layer = 4 * (d * d + d) + 2 * 2 * d + (d * ffn + ffn) + (ffn * d + d)
    return (config.vocab_size * d + (config.max_position_embeddings + 2) * d + config.num_layers * layer + 2 * d
            + 3 * (d + 1))


def activation_bytes(shape: Shape, batch: int, seq: int, dtype: str, backend_kind: str, prefix: int = 0,
                     input_prompt: int = 0) -> float:
    """The largest layer's live tensors in one forward at batch x seq (see the module docstring): `prefix` K/V
    positions in front of every layer's keys, `input_prompt` embeddings in front of the tokens."""
    tokens = seq + input_prompt
    per_row = tokens * (6 * shape.d_model + 2 * shape.ffn) + shape.heads * tokens * (tokens + prefix)
    return ARENA_FACTOR[backend_kind] * DTYPE_BYTES[dtype] * batch * per_row


def estimate(shape: Shape, shapes: Iterable[tuple[int, int]], dtype: str, backend_kind: str, *, runtime: int,
             prefix: int = 0, input_prompt: int = 0) -> Estimate:
    """The cell's peak over every (batch, seq) forward it runs: the largest one's activations on top of the rest."""
    size = DTYPE_BYTES[dtype]
    largest = max(shapes, key=lambda bs: activation_bytes(shape, *bs, dtype, backend_kind, prefix, input_prompt))
    batch, seq = largest
    per_sample = activation_bytes(shape, 1, seq, dtype, backend_kind, prefix, input_prompt)
    return Estimate(runtime=runtime, weights=WEIGHT_COPIES[backend_kind] * shape.params * size,
                    prefix=2 * shape.layers * prefix * shape.d_model * size,
                    activations=int(per_sample * batch), per_sample=per_sample, batch=batch, seq=seq)


def runtime_bytes(device: str) -> int:
    """What a cell's process holds before its model: on CPU this process's RSS (it has imported what a worker
    imports); on CUDA 0, since torch's allocator and the free figure both leave the CUDA context out."""
    if device.startswith("cuda"):
        return 0
    import psutil

    return psutil.Process().memory_info().rss


def free_bytes(device: str) -> int:
    """Memory a cell may use now: the CPU's available memory (psutil), or the GPU's free memory (torch)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def cell_shapes(measure: Any, max_length: int) -> list[tuple[int, int]]:
    """Every (batch, seq) forward a cell runs: the evaluation pass's batches and the measured shapes."""
    shapes = [(measure.throughput_batch_size, max_length)] if {"throughput", "accuracy"} & set(measure.scenarios) else []
    return shapes + [(b, s) for b in measure.batch_sizes for s in measure.seq_lens]


def prompt_of(variant: Any) -> tuple[int, int]:
    """(prefix K/V positions, input prompt embeddings) of a variant: P-tuning's prefix and a folded (kv) soft prompt
    sit in front of the keys; an input soft prompt runs its P embeddings through every layer."""
    length = getattr(variant, "prompt_length", None) or 0  # each method's variant type has its own options
    if variant.method == "soft_prompt":
        mode = getattr(variant, "soft_prompt_inference", None) or "input"
        return (0, length) if mode == "input" else (length, 0)
    return (length, 0) if variant.method == "prompt" else (0, 0)


def check_fits(cfg: Any, backbone: Any) -> None:
    """Refuse the sweep, in one line, when one of its cells cannot fit in the memory free now."""
    from bench.plugins import backend_kind
    from bench.errors import BenchError

    device = cfg.measure.device
    shape, free, runtime = Shape.of(backbone), free_bytes(device), runtime_bytes(device)
    where = "free GPU memory" if device.startswith("cuda") else "available RAM"
    shapes = cell_shapes(cfg.measure, cfg.model.max_length)
    for variant in cfg.variants:
        prefix, input_prompt = prompt_of(variant)
        for backend in cfg.measure.backends:
            for dtype in cfg.measure.dtypes:
                est = estimate(shape, shapes, dtype, backend_kind(backend), runtime=runtime, prefix=prefix,
                               input_prompt=input_prompt)
                if est.total <= HEADROOM * free:
                    continue
                fits = est.largest_batch(free)
                knob = ("measure.throughput_batch_size" if (est.batch, est.seq) == shapes[0] and
                        cfg.measure.throughput_batch_size == est.batch and est.seq == cfg.model.max_length
                        else "measure.batch_sizes")
                advice = (f"the largest batch that fits at sequence {est.seq} is {fits}: lower {knob}" if fits
                          else "not even batch 1 fits: use a smaller model, dtype or sequence, or a larger machine")
                raise BenchError(
                    f"variant '{variant.name}' on {backend} {dtype}: batch {est.batch} x {est.seq} needs an estimated "
                    f"{est.total / GiB:.1f} GiB ({est.parts()}), {where} is {free / GiB:.1f} GiB; {advice}")


def oom_message(batch: int | None, seq: int | None, estimated: float | None, free: float | None) -> str:
    """The failed record's error for a cell that ran out of memory (MemoryError, CUDA OOM, the OOM killer)."""
    at = f" at batch {batch} x {seq}" if batch is not None else ""
    known = [f"estimated {estimated / GiB:.2f} GiB" if estimated is not None else None,
             f"free {free / GiB:.2f} GiB" if free is not None else None]
    detail = ", ".join(k for k in known if k)
    return f"out of memory{at}" + (f" ({detail})" if detail else "")


def is_oom(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA), or ONNX Runtime's failed allocation."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "Failed to allocate memory" in text or "bad_alloc" in text or "CUDA out of memory" in text


class CellMemory:
    """A cell's estimate and the memory free when it started, inside its worker: what its memory records carry and
    what an out-of-memory there says."""

    def __init__(self, model: Any, measure: Any, max_length: int, dtype: str, backend_kind: str, device: str,
                 runtime: int, free: int) -> None:
        config = model.config
        params = sum(t.numel() for t in (*model.parameters(), *model.buffers()))  # pruned variants are smaller
        self.shape = Shape(config.d_model, config.num_layers, config.attention_heads, config.ffn_dim, params)
        self.dtype, self.kind, self.free, self.runtime = dtype, backend_kind, free, runtime
        self.prompt = (model.prefix_length, model.input_prompt_length)
        self.eval_shapes = cell_shapes(measure, max_length)[:1] if {"throughput", "accuracy"} & set(measure.scenarios) else []

    def at(self, batch: int, seq: int) -> Estimate:
        """The process's peak by the end of the forward at batch x seq: its RSS keeps what the evaluation pass grew."""
        return estimate(self.shape, [*self.eval_shapes, (batch, seq)], self.dtype, self.kind, runtime=self.runtime,
                        prefix=self.prompt[0], input_prompt=self.prompt[1])

    def fields(self, batch: int, seq: int) -> dict[str, Any]:
        est = self.at(batch, seq)
        return {"estimated_peak_memory_mb": est.total / MB, "memory_free_at_start_mb": self.free / MB,
                "memory_estimate_parts": est.parts()}

    def oom(self, batch: int, seq: int) -> str:
        return oom_message(batch, seq, self.at(batch, seq).total, self.free)
