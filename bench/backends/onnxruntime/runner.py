"""ONNX Runtime: export with torch.onnx.export(dynamo=True) and dynamic batch and sequence axes, fused and optimised
offline for the cell's provider (bench.backends.onnxruntime.export), then an InferenceSession on the CPU or CUDA provider. On CUDA the inputs and outputs stay on the device through IO
binding, so the timed call is the session's compute, not host copies.

Half precision: the exported graph ends with a cast of the logits to float32 (`Float32Logits`), so every session
hands out float32 whatever it computes in. numpy has no bf16, and a bf16 output could not reach the host; on CUDA
the float32 logits land in a torch buffer bound as the output. Whether ORT's CUDA provider can run the graph in a
dtype is its kernels' business: where it cannot (bf16 on some versions), the cell is skipped with the reason
(bench.backends.onnxruntime.session), never run on the CPU under a CUDA label.

optimum cannot export XGLM (no config; it pins transformers < 4.58), hence torch.onnx directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends.onnxruntime import session as ort_session
from bench.backends.onnxruntime.export_cache import cached_export
from bench.backends.onnxruntime.export_key import export_key
from bench.backends.onnxruntime.export import INPUT_NAMES, OUTPUT_NAME, OrtExport, export_for_ort, skip_layer_norm_wanted
from bench.backends.base import Runner, SkipCell, Target, check_target, placed_copy
from bench.config import BackendOptions
from bench.measure.timing import stopwatch
from bench.model.dtypes import HALF, tf32_fields


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path,
            export_cache: Path | None = None) -> Runner:
    """export_cache: the cache directory whose exports/ keeps this export for later runs (bench.backends.onnxruntime.export_cache);
    None: export into `workdir`, uncached."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SkipCell("onnxruntime is not installed (pip install 'xglm-bench[cpu]' or '[gpu]')") from None
    check_target(target)
    provider = ort_session.requested_provider(target)
    preloaded = ort_session.preload_cuda_libraries(ort) if target.is_cuda else None
    if provider not in ort.get_available_providers():
        raise SkipCell(f"onnxruntime {ort.__version__} has no {provider} (available: {', '.join(ort.get_available_providers())})")
    if not target.is_cuda and target.dtype != "fp32":
        raise SkipCell(f"ONNX Runtime's CPU provider has no {target.dtype} kernels for this graph; measured in fp32 only")

    ort_options = options.onnxruntime
    workdir.mkdir(parents=True, exist_ok=True)  # the session's profile lands here, whatever the export's home
    skip_ln = skip_layer_norm_wanted(ort_options.skip_layer_norm, target)
    request = getattr(model, "quantization", None)  # a precision cell's linears, quantized in the graph (quantize)
    settings = dict(opset=ort_options.opset, graph_optimization=ort_options.graph_optimization,
                    skip_layer_norm=skip_ln, attention_path=model.attention_path,
                    quantization=request.key() if request is not None else None)

    def make(directory: Path, manifest: dict[str, Any] | None = None) -> None:
        # The model is copied to the device only when it is exported: a cache hit never holds it there.
        export_for_ort(exportable(placed_copy(model, target), target), example, directory, target=target,
                       manifest=manifest, **settings)

    if export_cache is None:
        make(workdir)
        exported, cache_fields = OrtExport.load(workdir), {"export_cache_hit": False}
    else:
        with stopwatch() as keying:  # hashing the weights: about 1.5 s per GB on 2 busy cores
            key, key_inputs = export_key(model, example, target, **settings)
        use = cached_export(export_cache, key, lambda d: make(d, {"key": key, "key_inputs": key_inputs}))
        exported, cache_fields = OrtExport.load(use.directory), use.fields()
        cache_fields["export_cache_s"] += keying.seconds
    # The graph is optimised already (export_for_ort): the session loads it as it is.
    so = ort_session.session_options(ort, target, "disable", workdir / "ort-profile", spinning=ort_options.intra_op_spinning)
    with stopwatch() as session_build:
        session = ort_session.create_session(ort, exported.model_path, target, so)
    runner = OrtRunner(session, target)
    placement = first_run_placement(runner, example)
    ort_session.check_placement(placement, target)
    runner.build_seconds.update(**exported.seconds, session_s=session_build.seconds)
    runner.info.update(
        ort_version=ort.__version__, ort_providers=session.get_providers(), ort_intra_op_threads=target.threads,
        ort_intra_op_spinning=ort_options.intra_op_spinning, ort_graph_optimization=ort_options.graph_optimization,
        onnx_opset=ort_options.opset, ort_skip_layer_norm=skip_ln, ort_fused_ops=exported.fused_ops,
        onnx_bytes=exported.bytes, onnx_initializer_bytes=exported.initializer_bytes, **cache_fields,
        ort_provider_options=ort_session.provider_options(target), ort_output_dtype="float32",
        linear_library="mlas" if not target.is_cuda else "cublas",
        **({"ort_preload_dlls": preloaded} if preloaded else {}), **ort_session.placement_fields(placement),
    )
    return runner


class Float32Logits(torch.nn.Module):
    """The classifier with its logits cast to float32 inside the graph: [B, labels] float32 from any dtype."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask).float()


def exportable(model: torch.nn.Module, target: Target) -> torch.nn.Module:
    """What is exported: half-precision models get their float32 cast at the end of the graph."""
    return Float32Logits(model).eval() if target.dtype in HALF else model


def first_run_placement(runner: OrtRunner, example) -> dict[str, Any]:
    """Run the example once with profiling on (the session was built with it), end profiling, and read which
    provider ran each node; later runs are not profiled."""
    runner(runner.inputs(*example))
    runner.synchronize()
    return ort_session.node_placement(runner.session.end_profiling())


@dataclass
class _Bound:
    binding: Any
    tensors: list[torch.Tensor]  # the bound device buffers (inputs, then the float32 logits) must outlive the binding

    @property
    def output(self) -> Any:
        """The float32 logits buffer; the binding itself when ORT allocates the output (labels not static)."""
        return self.tensors[-1] if len(self.tensors) > len(INPUT_NAMES) else self.binding


class OrtRunner(Runner):
    backend = "onnxruntime"
    allocator = "onnxruntime"  # ORT's CUDA arena: torch's statistics never see it

    def __init__(self, session: Any, target: Target) -> None:
        self.session, self.target = session, target
        self.build_seconds, self.info = {}, tf32_fields(target.dtype)
        self.cuda_events = False  # ORT runs on its own stream; the host clock brackets a synchronous run
        self._run_options: Any = None  # set for one run by release_memory (arena shrinkage)

    @property
    def num_labels(self) -> int | None:
        labels = self.session.get_outputs()[0].shape[-1]
        return labels if isinstance(labels, int) else None

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        if not self.target.is_cuda:
            return {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return self.bind(input_ids, attention_mask)

    def bind(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Bound:
        """IO binding on the cell's GPU: int64 inputs and a float32 [B, labels] logits buffer, all torch tensors."""
        device, index = self.target.torch_device, self.target.cuda_index
        tensors = [t.to(device=device, dtype=torch.int64).contiguous() for t in (input_ids, attention_mask)]
        binding = self.session.io_binding()
        for name, t in zip(INPUT_NAMES, tensors):
            binding.bind_input(name, "cuda", index, np.int64, tuple(t.shape), t.data_ptr())
        if self.num_labels is None:  # not static in the graph: ORT allocates the output on the device
            binding.bind_output(OUTPUT_NAME, "cuda", index)
        else:
            logits = torch.empty((int(input_ids.shape[0]), self.num_labels), dtype=torch.float32, device=device)
            binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, tuple(logits.shape), logits.data_ptr())
            tensors.append(logits)
        # The copies above were queued on torch's stream; ORT reads the buffers on its own.
        torch.cuda.synchronize(device)
        return _Bound(binding, tensors)

    def __call__(self, inputs: Any) -> Any:
        if not self.target.is_cuda:
            return self.session.run(None, inputs)[0]
        run_options, self._run_options = self._run_options, None
        self.session.run_with_iobinding(inputs.binding, run_options)  # returns after ORT synchronised its stream
        return inputs.output

    def logits(self, output: Any) -> np.ndarray:
        if isinstance(output, torch.Tensor):
            return output.float().cpu().numpy()
        if hasattr(output, "copy_outputs_to_cpu"):  # an IO binding whose output ORT allocated (float32 by the graph)
            return np.asarray(output.copy_outputs_to_cpu()[0], dtype=np.float32)
        return np.asarray(output, dtype=np.float32)

    def release_memory(self) -> None:
        """torch's cache (the bound buffers) is emptied; ORT's CUDA arena shrinks at the end of the next run
        (run option memory.enable_memory_arena_shrinkage), so that shape's footprint starts from the weights."""
        super().release_memory()
        if self.target.is_cuda:
            import onnxruntime as ort

            options = ort.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", f"gpu:{self.target.cuda_index}")
            self._run_options = options
