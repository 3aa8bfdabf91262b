"""`bench run`'s options that override config keys: comma-separated lists and `--set KEY=VALUE`, read into
(config key -> (value, the flag that set it)) so that a refused value names the flag the user typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import BenchError


def overrides_from_options(data_dir: Path | None, languages: str | None, batch_sizes: str | None,
                           seq_lens: str | None, settings: list[str] | None) -> dict[str, tuple[Any, str]]:
    listed = (("data.data_dir", "--data-dir", data_dir and str(data_dir)),
              ("data.languages", "--languages", languages and (languages.strip() if languages.strip() == "all"
                                                                else _listed(languages, str))),
              ("measure.batch_sizes", "--batch-sizes", batch_sizes and _listed(batch_sizes, int, "--batch-sizes")),
              ("measure.seq_lens", "--seq-lens", seq_lens and _listed(seq_lens, int, "--seq-lens")))
    out = {key: (value, flag) for key, flag, value in listed if value is not None}
    for item in settings or ():
        key, value = _setting(item)
        out[key] = (value, f"--set {key}")
    return out


def _listed(text: str, kind: type, flag: str = "") -> list:
    """'1, 8' -> [1, 8]: a comma-separated option."""
    try:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"{flag} takes comma-separated integers, e.g. {flag} 1,8 (got {text!r})") from None


def _setting(item: str) -> tuple[str, Any]:
    """'--set train.steps=8' -> ("train.steps", 8): the value read as TOML, else as a string (--set data.languages=all)."""
    import tomllib

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not all(part.isidentifier() for part in key.split(".")):
        raise BenchError(f"--set takes KEY=VALUE with a dotted config key, e.g. --set train.steps=8 (got {item!r})")
    try:
        return key, tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return key, text.strip()
