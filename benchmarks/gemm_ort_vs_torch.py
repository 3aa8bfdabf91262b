"""One decoder linear, ONNX Runtime against torch, in interleaved rounds: is the model's gap a GEMM gap?

    python benchmarks/gemm_ort_vs_torch.py [--tokens 1024] [--threads N] [--rounds 15]

MatMul takes about three quarters of ORT's kernel time on the small preset at b8 s128 (benchmarks/ort_fusions.py
--profile), so ORT's model-level ratio to eager is mostly this ratio. Each shape of the small preset's linears
([tokens, in] x [in, out] + bias: q/k/v/out_proj 512->512, fc1 512->2048, fc2 2048->512) runs as torch's
F.linear (addmm) and as an ONNX graph of MatMul + Add with the weight as an initializer, the form the export
has (ORT pre-packs constant weights), optimised at level all.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import FnCell, machine, print_rows, ratio_rows

from bench.measure.rounds import StopRule, run_rounds

SHAPES = {"proj 512->512": (512, 512), "fc1 512->2048": (512, 2048), "fc2 2048->512": (2048, 512)}


def ort_linear(weight: np.ndarray, bias: np.ndarray, threads: int, directory: Path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    d_in, d_out = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y0"]), helper.make_node("Add", ["y0", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", d_out])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    path = directory / f"linear-{d_in}-{d_out}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024, help="rows: batch x sequence (8 x 128)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    directory = Path(tempfile.mkdtemp(prefix="gemm-"))
    cells, pairs = [], []
    for name, (d_in, d_out) in SHAPES.items():
        x, w, b = torch.randn(args.tokens, d_in, generator=g), torch.randn(d_out, d_in, generator=g), torch.randn(d_out, generator=g)
        session = ort_linear(w.T.contiguous().numpy(), b.numpy(), args.threads, directory)
        feed = {"x": x.numpy()}
        got, want = session.run(None, feed)[0], torch.nn.functional.linear(x, w, b).numpy()
        assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()
        with torch.inference_mode():
            cells += [FnCell(f"torch {name}", {(args.tokens, 0): lambda x=x, w=w, b=b: torch.nn.functional.linear(x, w, b)}),
                      FnCell(f"ort {name}", {(args.tokens, 0): lambda s=session, f=feed: s.run(None, f)})]
        pairs.append((f"torch {name}", f"ort {name}"))
    print(f"machine: {machine()}; {args.tokens} rows")
    with torch.inference_mode():
        result = run_rounds(cells, [(args.tokens, 0)], StopRule(min_rounds=args.rounds, min_iters=1, min_time_s=0.0,
                                                                   max_time_s=600.0, block_iters=20), pairs=pairs)
    print(f"{result.rounds} rounds in {result.seconds:.0f} s; load after: {machine().rsplit('average ', 1)[1]}")
    print_rows(ratio_rows(result, pairs, [(args.tokens, 0)]))


if __name__ == "__main__":
    main()
