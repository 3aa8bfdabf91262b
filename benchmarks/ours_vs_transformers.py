"""Our eager classifier backbone against transformers' own XGLMModel, on the same weights, in interleaved rounds.

    python benchmarks/ours_vs_transformers.py [--preset small] [--threads N] [--rounds 10] [--json out.json]

Cells, each timed in blocks in every round (bench.measure.rounds), on right-padded batches (see _common):
- `transformers`: XGLMModel(input_ids, attention_mask).last_hidden_state (its eager bmm attention with the padding
  mask; transformers 5 has no SDPA path for XGLM);
- `ours`: XGLMClassifier.forward, as every backend runs it: SDPA without a padding mask (attention_path causal);
- `ours-masked`: the same with the [B, 1, T, T] padding mask (attention_path masked), to show what the mask costs.
Ours also pools the last real token and applies the head (a [B, D] x [D, 3] product: nothing next to the backbone).
Both run in this process on the same torch threads. Before timing, the hidden states are checked equal at every
real position. Ratios are transformers' block median over ours, per round; their median and bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from _common import FnCell, machine, padded_batch, print_rows, ratio_rows

from bench.measure.rounds import StopRule, run_rounds
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone

SHAPES = [(1, 128), (8, 128), (1, 512), (8, 512)]


def build(preset: str) -> tuple[XGLMClassifier, torch.nn.Module]:
    backbone = load_backbone(ModelSource.parse(f"random:{preset}"), seed=0)
    reference = copy.deepcopy(backbone).eval()  # transformers' module, attention untouched
    return XGLMClassifier(backbone, num_labels=3).eval(), reference


def check_equal(ours: XGLMClassifier, theirs: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest |difference| of the hidden states at real positions, our causal path against transformers."""
    with torch.inference_mode():
        got = ours.hidden_states(ids, mask, padding_mask=False)
        want = theirs(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    return float((got - want)[mask.bool()].abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block-iters", type=int, default=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ours, theirs = build(args.preset)
    masked = copy.copy(ours)  # shares every module; only the attention path differs
    masked.attention_path = "masked"
    vocab = ours.config.vocab_size
    batches = {shape: padded_batch(*shape, vocab=vocab, seed=i) for i, shape in enumerate(SHAPES)}
    worst = max(check_equal(ours, theirs, *batch) for batch in batches.values())
    if worst > 1e-4:
        raise SystemExit(f"our hidden states differ from transformers' by {worst:.2e} at real positions")

    def run(module, **kwargs):
        def call(ids, mask):
            with torch.inference_mode():
                return module(input_ids=ids, attention_mask=mask, **kwargs)
        return {shape: (lambda b=batch: call(*b)) for shape, batch in batches.items()}

    cells = [FnCell("transformers", run(theirs, use_cache=False)), FnCell("ours", run(ours)),
             FnCell("ours-masked", run(masked))]
    pairs = [("transformers", "ours"), ("transformers", "ours-masked"), ("ours-masked", "ours")]
    print(f"machine: {machine()}")
    print(f"model: random:{args.preset}; hidden states equal to transformers' within {worst:.1e} at real positions")
    result = run_rounds(cells, SHAPES, StopRule(min_rounds=args.rounds, min_iters=1, min_time_s=0.0, max_time_s=600.0,
                                                block_iters=args.block_iters), pairs=pairs)
    rows = ratio_rows(result, pairs, SHAPES)
    print(f"{result.rounds} rounds in {result.seconds:.0f} s (stopped by {result.stopped_by}); load after: {machine().rsplit('average ', 1)[1]}")
    print_rows(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "preset": args.preset, "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
