"""The effect of each ONNX Runtime step on the CPU, in interleaved rounds: what the harness's onnxruntime backend
builds, step by step, against eager on the same attention path.

    python benchmarks/ort_fusions.py [--preset small] [--prefix 0] [--shape 8x128] [--rounds 12] [--profile]

Cells, all prepared by bench.backends.prepare (so each is exactly what a sweep's cell runs), fp32, same threads:
  eager-masked    eager with the [B, 1, T, P+T] padding mask (the path before mask-free attention)
  eager           eager without a padding mask (attention_path causal, the default)
  ort18-masked    opset 18, padding mask: SDPA and GELU decomposed (the backend before these steps)
  ort23-masked    step 1, opset 23: onnx::Attention (one kernel) and Gelu, which ORT fuses into BiasGelu
  ort23           step 2, + no padding mask: Attention(is_causal), or a [T, P+T] mask with a prefix (the default)
  ort23-skipln    step 3, + SkipLayerNormalization fused before ORT's optimiser (off by default on the CPU)
  ort23-online    (with --cells) ort23's export optimised by its own session at load, not offline: a check that
                  the saved optimised graph runs as fast as ORT optimising in place
Each ORT cell is compared with the eager cell on its own attention path, and each step with the one before.
--profile then runs ORT's profiler on the `ort23` graph and prints the time per operator type.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import torch
from _common import FnCell, machine, padded_batch, print_rows, ratio_rows

from bench.backends import Target, prepare
from bench.backends.onnxruntime.export import OPTIMIZED
from bench.config import BackendOptions
from bench.measure.rounds import StopRule, run_rounds
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone

CELLS = {  # name -> (backend, options)
    "eager-masked": ("eager", {"attention": "masked"}),
    "eager": ("eager", {}),
    "ort18-masked": ("onnxruntime", {"attention": "masked", "onnxruntime": {"opset": 18, "skip_layer_norm": "off"}}),
    "ort23-masked": ("onnxruntime", {"attention": "masked", "onnxruntime": {"skip_layer_norm": "off"}}),
    "ort23": ("onnxruntime", {"onnxruntime": {"skip_layer_norm": "off"}}),
    "ort23-skipln": ("onnxruntime", {"onnxruntime": {"skip_layer_norm": "on"}}),
}
PAIRS = [  # (reference, cell): speedup = reference time / cell time
    ("eager-masked", "eager"), ("eager-masked", "ort18-masked"), ("eager-masked", "ort23-masked"),
    ("eager", "ort23"), ("eager", "ort23-skipln"),
    ("ort18-masked", "ort23-masked"), ("ort23-masked", "ort23"), ("ort23", "ort23-skipln"), ("ort23", "ort23-online"),
]


def build(preset: str, prefix: int) -> XGLMClassifier:
    model = XGLMClassifier(load_backbone(ModelSource.parse(f"random:{preset}"), seed=0), num_labels=3).eval()
    g = torch.Generator().manual_seed(1)
    for attn in model.attentions:
        if prefix:
            shape = (1, attn.num_heads, prefix, attn.head_dim)
            attn.set_prefix(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    return model


def online_runner(exported: Path, target: Target):
    """A runner on the exporter's graph, optimised at level all by its own session when it loads."""
    import onnxruntime as ort

    from bench.backends.onnxruntime import session as ort_session
    from bench.backends.onnxruntime.runner import OrtRunner

    so = ort_session.session_options(ort, target, "all", exported.parent / "online-profile")
    so.enable_profiling = False
    return OrtRunner(ort_session.create_session(ort, exported, target, so), target)


def profile_ops(path: Path, feed: dict, threads: int, runs: int = 20) -> dict[str, float]:
    """ORT's profiler over `runs` runs of the saved graph: kernel milliseconds per forward, per operator type."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph is optimised already
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling, so.profile_file_prefix = True, str(path.parent / "fusions-profile")
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    time_by_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            time_by_op[event["args"]["op_name"]] += event["dur"]
    return {op: round(us / 1e3 / runs, 2) for op, us in time_by_op.most_common() if us / 1e3 / runs >= 0.05}


def profile_torch(runner, inputs, runs: int = 20) -> dict[str, float]:
    """torch.profiler over `runs` eager forwards: self CPU milliseconds per forward, per aten op."""
    from torch.profiler import ProfilerActivity, profile

    runner(inputs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            runner(inputs)
    totals = {e.key: e.self_cpu_time_total / 1e3 / runs for e in prof.key_averages()}
    return {op: round(ms, 2) for op, ms in sorted(totals.items(), key=lambda kv: -kv[1]) if ms >= 0.05}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--prefix", type=int, default=0, help="prefix length P (a random folded prefix)")
    parser.add_argument("--shape", default="8x128", help="BATCHxSEQ")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block-iters", type=int, default=5)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = tuple(int(x) for x in args.shape.split("x"))
    model = build(args.preset, args.prefix)
    ids, mask = padded_batch(*shape, vocab=model.config.vocab_size)
    target, example = Target("cpu", "fp32", args.threads), (ids[:2, :16], mask[:2, :16])
    names = args.cells.split(",")
    runners, workdirs, cells = {}, {}, []
    for name in names:
        if name == "ort23-online":
            continue
        backend, options = CELLS[name]
        workdirs[name] = workdir = Path(tempfile.mkdtemp(prefix=f"ort-fusions-{name}-"))
        runners[name] = runner = prepare(backend, model, target, example, BackendOptions.model_validate(options), workdir)
        inputs = runner.inputs(ids, mask)
        cells.append(FnCell(name, {shape: lambda r=runner, x=inputs: r(x)}))
        ops = runner.info.get("ort_fused_ops")
        print(f"{name}: {runner.info['attention_mask_form']}" + (f"; optimised graph: {ops}" if ops else ""))
    if "ort23-online" in names:
        runner = online_runner(workdirs["ort23"] / "model.onnx", target)
        cells.append(FnCell("ort23-online", {shape: lambda r=runner, x=runner.inputs(ids, mask): r(x)}))
    print(f"machine: {machine()}\nmodel: random:{args.preset}, prefix {args.prefix}, batch {shape[0]} x {shape[1]}")
    pairs = [p for p in PAIRS if p[0] in names and p[1] in names]
    result = run_rounds(cells, [shape], StopRule(min_rounds=args.rounds, min_iters=1, min_time_s=0.0, max_time_s=600.0,
                                                 block_iters=args.block_iters), pairs=pairs)
    print(f"{result.rounds} rounds in {result.seconds:.0f} s; load after: {machine().rsplit('average ', 1)[1]}")
    rows = ratio_rows(result, pairs, [shape])
    print_rows(rows)
    shares = eager_ops = None
    if args.profile and "ort23" in runners:
        feed = runners["ort23"].inputs(ids, mask)
        shares = profile_ops(workdirs["ort23"] / OPTIMIZED, feed, args.threads)
        print(f"ORT profile of ort23 (kernel ms per forward, {sum(shares.values()):.1f} in all):",
              ", ".join(f"{op} {ms}" for op, ms in shares.items()))
    if args.profile and "eager" in runners:
        eager_ops = profile_torch(runners["eager"], runners["eager"].inputs(ids, mask))
        print("torch profile of eager (self CPU ms per forward):", ", ".join(f"{op} {ms}" for op, ms in eager_ops.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "preset": args.preset, "prefix": args.prefix, "rows": rows,
                       "fused_ops": {n: r.info.get("ort_fused_ops") for n, r in runners.items()},
                       "profile_ort23_ms": shares, "profile_eager_ms": eager_ops}, f, indent=2)


if __name__ == "__main__":
    main()
