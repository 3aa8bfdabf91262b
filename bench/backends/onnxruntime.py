"""ONNX Runtime: export with torch.onnx.export(dynamo=True) and dynamic batch and sequence axes, then an
InferenceSession on the CPU or CUDA provider. On CUDA the inputs and outputs stay on the device through IO
binding, so the timed call is the session's compute, not host copies.

optimum cannot export XGLM (no config; it pins transformers < 4.58), hence torch.onnx directly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends.base import Runner, SkipCell, Target, placed_copy
from bench.config import BackendOptions
from bench.measure.timing import stopwatch

INPUT_NAMES = ("input_ids", "attention_mask")
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError:
        raise SkipCell("onnxruntime is not installed (pip install 'xglm-bench[cpu]' or '[gpu]')") from None
    provider = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}[target.device]
    if provider not in ort.get_available_providers():
        raise SkipCell(f"onnxruntime {ort.__version__} has no {provider} (available: {', '.join(ort.get_available_providers())})")
    if target.device == "cpu" and target.dtype != "fp32":
        raise SkipCell(f"ONNX Runtime's CPU provider has no {target.dtype} kernels for this graph; measured in fp32 only")

    path = workdir / "model.onnx"
    workdir.mkdir(parents=True, exist_ok=True)
    with stopwatch() as export:
        export_onnx(placed_copy(model, target), example, path, opset=options.onnxruntime.opset, device=target.torch_device)

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[options.onnxruntime.graph_optimization])
    so.intra_op_num_threads = target.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.onnxruntime.intra_op_spinning else "0")
    so.log_severity_level = 3
    with stopwatch() as session_build:
        session = ort.InferenceSession(str(path), sess_options=so, providers=[provider])
    runner = OrtRunner(session, target)
    runner.build_seconds.update(export_s=export.seconds, session_s=session_build.seconds)
    runner.info.update(
        ort_version=ort.__version__, ort_providers=session.get_providers(), ort_intra_op_threads=target.threads,
        ort_intra_op_spinning=options.onnxruntime.intra_op_spinning,
        ort_graph_optimization=options.onnxruntime.graph_optimization, onnx_opset=options.onnxruntime.opset,
        onnx_bytes=sum(p.stat().st_size for p in workdir.glob("model.onnx*")),
    )
    return runner


def export_onnx(model: torch.nn.Module, example, path: Path, *, opset: int, device: torch.device) -> None:
    """Export with dynamic batch and sequence axes; the exporter's chatter is kept out of the terminal."""
    batch, seq = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    args = tuple(t.to(device) for t in example)
    chatter = io.StringIO()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", irrelevant to XGLM
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                model, args, str(path), dynamo=True, input_names=list(INPUT_NAMES), output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in INPUT_NAMES},
                opset_version=opset, external_data=True, verbose=False,
            )
    except Exception as exc:
        tail = chatter.getvalue().strip().splitlines()[-3:]
        raise RuntimeError(f"ONNX export failed: {exc}" + (f" ({' | '.join(tail)})" if tail else "")) from exc
    finally:
        exporter_log.setLevel(level)


@dataclass
class _Bound:
    binding: Any
    tensors: list[torch.Tensor]  # the bound device buffers must outlive the binding


class OrtRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, session: Any, target: Target) -> None:
        self.session, self.target = session, target
        self.build_seconds, self.info = {}, {}
        self.cuda_events = False  # ORT runs on its own stream; the host clock brackets a synchronous run

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        if self.target.device == "cpu":
            return {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        tensors = [t.to("cuda").contiguous() for t in (input_ids, attention_mask)]
        binding = self.session.io_binding()
        for name, t in zip(INPUT_NAMES, tensors):
            binding.bind_input(name, "cuda", t.device.index or 0, np.int64, tuple(t.shape), t.data_ptr())
        binding.bind_output("logits", "cuda")
        return _Bound(binding, tensors)

    def __call__(self, inputs: Any) -> Any:
        if self.target.device == "cpu":
            return self.session.run(None, inputs)[0]
        self.session.run_with_iobinding(inputs.binding)
        return inputs.binding

    def logits(self, output: Any) -> np.ndarray:
        if self.target.device == "cpu":
            return np.asarray(output, dtype=np.float32)
        return np.asarray(output.copy_outputs_to_cpu()[0], dtype=np.float32)
