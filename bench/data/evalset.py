"""The tokenized evaluation set of one task (all requested languages) and the batches cut from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.data.tokenization import encode_pairs, pad_batch

PAD_MULTIPLE = 8  # batch lengths round up to a multiple of 8: fewer distinct shapes to compile, as servers do


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    index: np.ndarray  # rows of the evaluation set, in batch order

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def padded_tokens(self) -> int:
        return self.input_ids.numel()


@dataclass
class EvalSet:
    ids: list[list[int]]
    labels: np.ndarray  # [N] int
    languages: np.ndarray  # [N] str
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int) -> list[Batch]:
        """Length-sorted batches (longest first), each padded to its own longest row rounded up to 8."""
        order = np.argsort([-len(x) for x in self.ids], kind="stable")
        out = []
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            longest = max(len(self.ids[r]) for r in rows)
            length = -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE
            input_ids, attention_mask = pad_batch([self.ids[r] for r in rows], self.pad_id, length)
            out.append(Batch(input_ids, attention_mask, rows))
        return out

    def fixed_batch(self, batch_size: int, seq_len: int) -> Batch:
        """Exactly [batch_size, seq_len]: real pairs (cycled if the set is small), truncated or right-padded."""
        rows = np.arange(batch_size) % len(self.ids)
        # Truncation keeps the first seq_len tokens; the pooled token is then the last kept one.
        input_ids, attention_mask = pad_batch([self.ids[r][:seq_len] for r in rows], self.pad_id, seq_len)
        return Batch(input_ids, attention_mask, rows)

    def accuracy_by_language(self, predictions: np.ndarray) -> dict[str, float]:
        correct = predictions == self.labels
        return {lang: float(correct[self.languages == lang].mean()) for lang in dict.fromkeys(self.languages.tolist())}


def build_evalset(data, tokenizer, max_length: int) -> EvalSet:
    """Every requested language's eval rows of one task (TaskData), tokenized, in language order."""
    ids, labels, langs = [], [], []
    for lang, ex in data.eval.items():
        ids += encode_pairs(tokenizer, ex.premise, ex.hypothesis, max_length)
        labels += ex.label
        langs += [lang] * len(ex)
    return EvalSet(ids, np.asarray(labels), np.asarray(langs), tokenizer.pad_token_id)
