"""Small generated XNLI and PAWS-X files in the official layouts, and a tiny sweep config on random:tiny that runs in
a second or two: the inputs the bad-input catalogue and the fault tests break on purpose. Nothing here needs the
shared data folder."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("the cat dog bird sat ran flew on under over a mat tree house river small large red green quickly slowly "
         "today yesterday because although and but it was is not very quite").split()
XNLI_LABELS = ("entailment", "neutral", "contradiction")
XNLI_LANGUAGES = ("en", "sw")
PAWSX_LANGUAGES = ("en", "de")


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "."


def xnli_rows(rng: random.Random, rows: int) -> list[str]:
    return [f"{lang}\t{XNLI_LABELS[i % 3]}\t{_sentence(rng)}\t{_sentence(rng)}"
            for lang in XNLI_LANGUAGES for i in range(rows)]


def write_layouts(root: Path, rows: int = 12, seed: int = 0) -> Path:
    """XNLI-1.0/xnli.{dev,test}.tsv (en, sw) and x-final/{en,de}/{dev_2k,test_2k}.tsv under root."""
    rng = random.Random(seed)
    xnli = root / "XNLI-1.0"
    xnli.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        lines = ["language\tgold_label\tsentence1\tsentence2", *xnli_rows(rng, rows)]
        (xnli / f"xnli.{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for lang in PAWSX_LANGUAGES:
        folder = root / "x-final" / lang
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("dev_2k", "test_2k"):
            lines = ["id\tsentence1\tsentence2\tlabel",
                     *(f"{i}\t{_sentence(rng)}\t{_sentence(rng)}\t{i % 2}" for i in range(rows))]
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny_sweep(output_dir: Path, cache_dir: Path, data_dir: Path | None, **sections) -> dict:
    """A sweep that measures one eager cell on random:tiny in about a second (in-process, no calibration, no
    training); nested keyword sections are merged into it."""
    config = {
        "name": "tiny", "seed": 0, "output_dir": str(output_dir), "cache_dir": str(cache_dir),
        "model": {"source": "random:tiny", "max_length": 32},
        "data": {"tasks": ["xnli"], "source": "local" if data_dir else "synthetic", "languages": ["en", "sw"],
                 "max_train_samples": 16, "max_eval_per_language": 8, **({"data_dir": str(data_dir)} if data_dir else {})},
        "train": {"steps": 0, "batch_size": 8},
        "variants": [{"name": "dense-ft", "method": "dense"}],
        "measure": {"backends": ["eager"], "scenarios": ["latency", "throughput", "memory", "accuracy"],
                    "batch_sizes": [2], "seq_lens": [16], "throughput_batch_size": 8, "warmup_iters": 1,
                    "min_iters": 3, "min_time_s": 0.0, "min_rounds": 2, "isolation": "none", "peaks": "off"},
    }
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    return config
