"""The trained tokenizer: XGLM's special ids and pair format, truncation, caching; right padding."""

from __future__ import annotations

import pytest
import torch

from bench.model.source import ModelSource
from transformers import PreTrainedTokenizerFast

from bench.data.tokenization import SPECIAL_TOKENS, encode_pairs, load_tokenizer, pad_batch, trained_tokenizer
from bench.errors import BenchError

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "el gato se sentó", "paka aliketi juu ya mkeka"] * 20


@pytest.fixture()
def tokenizer(tmp_path):
    tok, _ = trained_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path)
    return tok


def test_special_ids_match_xglm(tokenizer):
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]


def test_pair_format_is_xglm(tokenizer):
    a = tokenizer("the cat", add_special_tokens=False)["input_ids"]
    b = tokenizer("a dog", add_special_tokens=False)["input_ids"]
    (ids,) = encode_pairs(tokenizer, ["the cat"], ["a dog"], max_length=64)
    assert ids == [2, *a, 2, 2, *b]  # </s> A </s></s> B


def test_truncation_keeps_max_length(tokenizer):
    (ids,) = encode_pairs(tokenizer, ["the cat sat " * 50], ["a dog ran " * 50], max_length=24)
    assert len(ids) == 24 and ids.count(2) == 3  # both segments cut, separators kept


def test_cache_returns_the_same_tokenizer(tmp_path):
    first, key = trained_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path)
    again, key2 = trained_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path)
    assert key == key2 and (tmp_path / "tokenizers" / key / "tokenizer.json").is_file()
    assert again("the cat sat")["input_ids"] == first("the cat sat")["input_ids"]
    _, other = trained_tokenizer(TEXTS[:4], vocab_size=60, cache_dir=tmp_path)
    assert other != key


def test_random_preset_gets_a_trained_tokenizer_within_its_vocab(tmp_path):
    tok, note = load_tokenizer(ModelSource.parse("random:tiny"), texts=TEXTS, cache_dir=tmp_path)
    assert "trained here" in note and len(tok) <= 1024


def test_local_model_uses_its_own_tokenizer(tmp_path):
    from transformers import XGLMConfig, XGLMModel

    tok, _ = trained_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path / "cache")
    XGLMModel(XGLMConfig(d_model=32, num_layers=1, attention_heads=2, ffn_dim=64, vocab_size=128)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, note = load_tokenizer(ModelSource.parse(str(tmp_path / "m")), texts=[], cache_dir=tmp_path / "cache")
    assert "the model's own" in note
    assert loaded("the cat", "a dog")["input_ids"] == tok("the cat", "a dog")["input_ids"]


def test_a_tokenizer_that_reads_the_data_as_unknown_is_refused(tmp_path):
    """A model directory whose tokenizer loads but knows none of the data's words (what a SentencePiece-only repository
    gives when its conversion goes wrong) is one line before anything runs, not a run of <unk>s."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import XGLMConfig, XGLMModel

    empty = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_token="<unk>"))
    empty.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=empty, unk_token="<unk>", pad_token="<pad>").save_pretrained(tmp_path / "m")
    XGLMModel(XGLMConfig(d_model=32, num_layers=1, attention_heads=2, ffn_dim=64, vocab_size=128)).save_pretrained(tmp_path / "m")
    with pytest.raises(BenchError, match=r"maps 100% of the data's tokens to <unk>.*tokenizer.json"):
        load_tokenizer(ModelSource.parse(str(tmp_path / "m")), texts=TEXTS, cache_dir=tmp_path / "cache")
    loaded, _ = load_tokenizer(ModelSource.parse(str(tmp_path / "m")), texts=[], cache_dir=tmp_path / "cache")
    assert loaded.unk_token == "<unk>"  # with no text to judge by, nothing is refused


def test_pad_batch_pads_right():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6, 7]], pad_id=1, length=5)
    assert ids.shape == (1, 5) and mask.dtype == torch.long


def test_a_small_vocabulary_covers_a_large_alphabet_through_bytes(tmp_path):
    """random:tiny's 1024 tokens against thousands of CJK characters (the trainer used to stop with 'The vocabulary
    is not large enough to contain all chars'): rare characters are spelt in UTF-8 bytes, nothing becomes <unk>."""
    import random

    rng = random.Random(0)
    chinese = ["".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(40)) for _ in range(300)]  # ~9000 distinct
    texts = chinese + ["the cat sat on the mat"] * 50
    tok, note = load_tokenizer(ModelSource.parse("random:tiny"), texts=texts, cache_dir=tmp_path)
    assert len(tok) <= 1024 and "<0xE4>" in tok.get_vocab()
    sample = chinese[0] + " 한국어 ไทย the cat"
    ids = tok(sample)["input_ids"]
    assert tok.unk_token_id not in ids and max(ids) < len(tok)
    assert tok.decode(ids, skip_special_tokens=True) == sample  # bytes decode back to the characters
    # A vocabulary too small for the byte pieces keeps the frequent characters and still trains.
    small, _ = trained_tokenizer(texts, vocab_size=200, cache_dir=tmp_path)
    assert len(small) <= 200 and small.unk_token_id not in small("the cat sat")["input_ids"]
