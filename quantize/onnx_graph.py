"""An exported ONNX graph's decoder MatMuls quantized with onnxruntime.quantization, before ORT optimises it.

- int8: `quantize_dynamic`, per-channel symmetric int8 weights, activations quantized at every call
  (DynamicQuantizeLinear + MatMulInteger). Only MatMul and Gemm are named (`op_types_to_quantize`): ORT's quantizer
  routes by op type and would send the opset-23 Attention node to its contrib QAttention.
- int8-weight: `MatMulNBitsQuantizer` with 8 bits, blocks of 32 input features, at accuracy level 0 (fp32 compute:
  weight-only; a higher level would quantize the activations too).

The nodes are the decoder linears' MatMuls, found by the module path torch.onnx records in each node's
`pkg.torch.onnx.name_scopes`; a graph where none or only some are found is an error, not a partial quantization.
torch.onnx's value_info carries shapes the quantizer's shape inference contradicts ("Inferred shape and existing
shape differ"); it is dropped first (ORT infers shapes when it loads the graph). `quant_pre_process` is not run:
its symbolic shape inference fails on these graphs, and with that step skipped it changed the int8 graph's speed-up
by no more than the spread of the medians (2.99x against 2.87x without it).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

# What runs the quantized MatMuls once ORT has optimised the graph (ort_fused_ops counts each).
ENGINES = {"int8": "onnxruntime integer MatMuls (DynamicQuantizeMatMul, MatMulIntegerToFloat after fusion)",
           "int8-weight": "onnxruntime MatMulNBits (8 bits)"}
INTEGER_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits")
SCOPES = "pkg.torch.onnx.name_scopes"
WEIGHT_BLOCK = 32


def linear_nodes(graph, linears: tuple[str, ...]) -> list[str]:
    """Names of the MatMul / Gemm nodes that compute the given linears (by torch.onnx's name scopes)."""
    wanted, found = set(linears), {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES), "")
        hit = wanted.intersection(s.strip(" '\"") for s in scopes.strip("[]").split(","))
        if hit:
            found[hit.pop()] = node.name
    missing = [name for name in linears if name not in found]
    if missing:
        raise ValueError(f"the exported graph has no MatMul recorded for {len(missing)} of {len(linears)} linears "
                         f"(first: {missing[0]}); torch.onnx did not keep their name scopes")
    return list(found.values())


def quantize_graph(path: Path, scheme: str, linears: tuple[str, ...]) -> int:
    """Rewrite the ONNX model at `path` with the linears quantized; returns how many nodes were."""
    import onnx

    model = onnx.load(str(path))
    nodes = linear_nodes(model.graph, linears)
    del model.graph.value_info[:]
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # its INFO lists every node it skips
    with _without_preprocess_advice():
        _quantize(model, path, scheme, nodes)
    return len(nodes)


class _PreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocess_advice():
    """quantize_dynamic advises quant_pre_process on the root logger; it fails on these graphs (module docstring)."""
    advice = _PreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _quantize(model, path: Path, scheme: str, nodes: list[str]) -> None:
    if scheme == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(model, path, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=nodes,
                         per_channel=True, weight_type=QuantType.QInt8, use_external_data_format=True)
    elif scheme == "int8-weight":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=WEIGHT_BLOCK, is_symmetric=True, accuracy_level=0,
                                         nodes_to_include=nodes, op_types_to_quantize=("MatMul",))
        quantizer.process()
        quantizer.model.save_model_to_file(str(path), use_external_data_format=True)
    else:
        raise ValueError(f"no ONNX quantizer for precision {scheme}")
