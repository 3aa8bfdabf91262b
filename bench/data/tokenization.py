"""Tokenizers: the model's own, or (offline, random presets) one trained here on the text at hand and cached.

Both end up as a transformers fast tokenizer that encodes a pair in XGLM's format `</s> A </s></s> B`,
pads on the right and truncates longest-first, so everything downstream treats them alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from bench.errors import BenchError
from bench.errors import one_line
from bench.model.source import ModelSource, backbone_config, hub_unreachable

# XGLM's special tokens and their ids (<s>=0, <pad>=1, </s>=2, <unk>=3); the trained tokenizer keeps them.
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def load_tokenizer(
    source: ModelSource, *, texts: Sequence[str], cache_dir: Path, trust_remote_code: bool = False
) -> tuple[PreTrainedTokenizerFast, str]:
    """(tokenizer, one line saying where it came from). `texts` trains one when the model brings none."""
    if source.kind == "local" and not tokenizer_files(Path(source.name)):
        # transformers 5 builds an empty XGLMTokenizer (11 tokens) from config.json alone instead of failing, so the
        # absence of tokenizer files is checked here, and a tokenizer is trained as for a random preset.
        note = f"trained here (no tokenizer files in {source.name})"
    elif source.kind != "random":
        offline = source.kind == "hub" and hub_unreachable()
        try:
            tok = AutoTokenizer.from_pretrained(
                source.name, trust_remote_code=trust_remote_code, local_files_only=bool(offline)
            )
            tok.padding_side = "right"
            _refuse_if_it_reads_nothing(tok, texts, source.name)
            return tok, f"the model's own ({type(tok).__name__} from {source.name})"
        except (OSError, ValueError) as exc:
            if source.kind == "hub":
                why = f"the hub is unreachable ({offline}) and it is not in the local cache" if offline else one_line(exc)
                raise BenchError(f"could not load the tokenizer of '{source.name}' from the hub: {why}") from exc
        note = f"trained here (no tokenizer in {source.name})"
    else:
        note = "trained here (random-weight preset has no tokenizer)"
    vocab_size = backbone_config(source, trust_remote_code=trust_remote_code).vocab_size
    tok, key = trained_tokenizer(texts, vocab_size=min(vocab_size, 8192), cache_dir=cache_dir)
    return tok, f"{note}: unigram, {len(tok)} tokens, cache key {key}"


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "tokenizer.model",
                   "spiece.model", "vocab.json", "vocab.txt")


def tokenizer_files(directory: Path) -> list[str]:
    """The tokenizer files a save_pretrained directory holds (none: the model came without a tokenizer)."""
    return [name for name in TOKENIZER_FILES if (directory / name).is_file()]


def _refuse_if_it_reads_nothing(tok, texts: Sequence[str], name: str) -> None:
    """A tokenizer that loads but maps the data to <unk> (a SentencePiece-only repository whose conversion to a fast
    tokenizer went wrong loads without an error) would make every later number garbage: refuse it in one line."""
    if tok.unk_token_id is None or not texts:
        return
    ids = [i for text in texts[:64] for i in tok(text, add_special_tokens=False)["input_ids"]]
    unknown = sum(i == tok.unk_token_id for i in ids) / max(len(ids), 1)
    if unknown > 0.5:
        raise BenchError(f"the tokenizer of '{name}' maps {unknown:.0%} of the data's tokens to {tok.unk_token}: its "
                         "files did not load as a working tokenizer; save it with save_pretrained (which writes "
                         "tokenizer.json) or install sentencepiece and protobuf for the conversion")


def trained_tokenizer(texts: Sequence[str], *, vocab_size: int, cache_dir: Path) -> tuple[PreTrainedTokenizerFast, str]:
    """A SentencePiece-style unigram tokenizer trained on `texts`, cached under a hash of texts and size.

    It covers every script it meets, however small its vocabulary (a random preset's 1024 against Chinese's
    thousands of characters): like SentencePiece with byte fallback, the alphabet keeps the most frequent characters
    that fit (at most half the learned vocabulary), and every other character is spelt as its UTF-8 bytes,
    <0x00>..<0xFF>, which are always in the vocabulary. No text becomes <unk>, and training never runs out of
    room."""
    digest = hashlib.sha256(f"{vocab_size}|byte-fallback".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:16]
    path = cache_dir / "tokenizers" / key
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path), key
    tok = _train_unigram(texts, vocab_size)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        padding_side="right",
    )
    # Write then rename, so a concurrent or interrupted run never sees half a tokenizer.
    tmp = path.parent / f"{key}.tmp-{os.getpid()}"
    fast.save_pretrained(tmp)
    try:
        tmp.rename(path)
    except OSError:  # another process cached the same tokenizer first
        shutil.rmtree(tmp, ignore_errors=True)
    return fast, key


BYTE_PIECES = [f"<0x{b:02X}>" for b in range(256)]


def _train_unigram(texts: Sequence[str], vocab_size: int):
    """Unigram on the characters that fit, then the 256 byte pieces appended with byte fallback on."""
    import json
    import unicodedata
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    # A vocabulary too small for 256 byte pieces beside a learned one (under 324) keeps the frequent characters
    # only, and the rest become <unk>: no crash either way.
    byte_fallback = vocab_size >= len(BYTE_PIECES) + len(SPECIAL_TOKENS) + 64
    learned = vocab_size - len(BYTE_PIECES) if byte_fallback else vocab_size
    normalized = [unicodedata.normalize("NFKC", t) for t in texts]
    counts = Counter(ch for t in normalized for ch in t if not ch.isspace())
    alphabet = {ch for ch, _ in counts.most_common(learned // 2)}
    if len(alphabet) < len(counts):  # rare characters leave the training text; at encode time they become bytes
        normalized = ["".join(ch if ch in alphabet or ch.isspace() else " " for ch in t) for t in normalized]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=learned, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(normalized, trainer=trainer)
    if byte_fallback:
        spec = json.loads(tok.to_str())
        pieces = spec["model"]["vocab"]  # [[piece, log-probability], ...]
        floor = min(score for _, score in pieces) - 1.0
        known = {piece for piece, _ in pieces}
        pieces += [[piece, floor] for piece in BYTE_PIECES if piece not in known]
        spec["model"]["byte_fallback"] = True
        tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([  # SentencePiece's: spaces back, bytes to characters, no leading space
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A </s> </s> $B", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return tok


def encode_pairs(
    tokenizer: PreTrainedTokenizerFast, premises: Sequence[str], hypotheses: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids per example, unpadded, truncated longest-first to max_length."""
    enc = tokenizer(list(premises), list(hypotheses), truncation=True, max_length=max_length)
    return enc["input_ids"]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to `length` (default: the longest) -> (input_ids, attention_mask), both int64 [B, T]."""
    seq_len = length or max(len(x) for x in ids)
    input_ids = torch.full((len(ids), seq_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), seq_len), dtype=torch.long)
    for row, x in enumerate(ids):
        x = list(x)[:seq_len]
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        attention_mask[row, : len(x)] = 1
    return input_ids, attention_mask
