"""Task examples for zero-shot cross-lingual evaluation: English training rows, eval rows per language.

Three sources: the Hugging Face hub, a local directory in the official distribution layouts
(XNLI-1.0/, XNLI-MT-1.0/, x-final/), and a seeded generator for machines with neither (hub.py, local.py,
synthetic.py). `auto` tries them in that order and records in `TaskData.notes` why each earlier one was skipped.
It moves on only when a source is absent (SourceUnavailable: no network, no directory set). A directory that is set
but missing or without the task's files is bad input, as is a source that is there but broken (a malformed row, an
empty file): the run stops with an error naming the directory, or the file and line.
"""

from pathlib import Path
from typing import Callable

from bench.data.examples import TaskData
from bench.data.hub import load_hub
from bench.data.local import HOW_TO_SET_DIR, load_local, require_data_dir
from bench.data.synthetic import load_synthetic
from bench.data.tasks import TaskSpec, get_task
from bench.errors import BenchError, SourceUnavailable, did_you_mean

SOURCES = ("auto", "hub", "local", "synthetic")
EVAL_SPLITS = ("test", "dev")


def load_task_data(
    task: str,
    *,
    source: str = "auto",
    data_dir: str | Path | None = None,
    languages: list[str] | str = "all",
    eval_split: str = "test",
    max_train: int | None = None,
    max_eval_per_language: int | None = None,
    seed: int = 0,
) -> TaskData:
    """Load English training rows and per-language eval rows of `task` from `source`."""
    spec = get_task(task)
    if source not in SOURCES:
        raise BenchError(did_you_mean(source, SOURCES, "data source"))
    if eval_split not in EVAL_SPLITS:
        raise BenchError(did_you_mean(eval_split, EVAL_SPLITS, "eval split"))
    for name, value in (("max_train", max_train), ("max_eval_per_language", max_eval_per_language)):
        if value is not None and value < 0:
            raise BenchError(f"{name} must be 0 or more (or unset for all), got {value}")
    wanted = _parse_languages(languages)
    directory = require_data_dir(data_dir)

    def synthetic() -> TaskData:
        return load_synthetic(spec, wanted, eval_split, max_train, max_eval_per_language, seed)

    if source == "hub":
        try:
            data = load_hub(spec, wanted, eval_split)
        except SourceUnavailable as exc:
            raise BenchError(f"data.source = \"hub\" but the hub cannot be used ({exc}); offline, use "
                             "data.source = \"local\" with BENCH_DATA_DIR (or data.data_dir) set to a folder in the "
                             "official layouts") from None
    elif source == "local":
        if directory is None:
            raise BenchError(f"source 'local' needs a data directory: {HOW_TO_SET_DIR}")
        data = load_local(spec, directory, wanted, eval_split)
    elif source == "synthetic":
        data = synthetic()
    else:
        data = _load_auto(spec, directory, wanted, eval_split, synthetic)

    data.train = data.train.subsample(max_train, seed)
    data.eval = {lang: ex.subsample(max_eval_per_language, seed) for lang, ex in data.eval.items()}
    return data


def _load_auto(
    spec: TaskSpec,
    directory: Path | None,
    wanted: list[str] | None,
    eval_split: str,
    synthetic: Callable[[], TaskData],
) -> TaskData:
    skipped: list[str] = []
    try:
        return load_hub(spec, wanted, eval_split)
    except SourceUnavailable as exc:
        skipped.append(f"hub: {exc}")
    if directory is None:
        skipped.append(f"local: no data directory ({HOW_TO_SET_DIR})")
    else:
        try:
            data = load_local(spec, directory, wanted, eval_split)
        except SourceUnavailable as exc:  # a directory the user named that lacks the task: theirs to fix
            raise BenchError(f"{exc}; the data directory was set, so it is not skipped: add the {spec.name} files, "
                             f"or set data.source = \"synthetic\" for generated rows") from None
        data.notes[:0] = skipped
        return data
    data = synthetic()
    data.notes[:0] = skipped
    return data


def _parse_languages(languages: list[str] | str) -> list[str] | None:
    """Requested language codes without duplicates, or None for "all the source has"."""
    items = languages.split(",") if isinstance(languages, str) else languages
    codes = list(dict.fromkeys(code.strip() for code in items if code.strip()))
    if codes == ["all"]:
        return None
    if not codes:
        raise BenchError('no languages requested: give language codes or "all"')
    return codes
