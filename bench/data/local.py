"""Task examples from a local directory in the official distribution layouts (XNLI-1.0/, XNLI-MT-1.0/, x-final/).

Files are read as the official loaders read them (tab-separated, no quote handling); a bad row is reported with
its file and line. Without a training split, training falls back to the English dev split, and says so.
A directory or file that is not there raises SourceUnavailable (`auto` tries the next source); anything present
but broken (a bad row, an empty file, a missing language or training split) is an error.
"""

import operator
import os
from pathlib import Path

from bench.data.examples import Examples, TaskData
from bench.data.tasks import TaskSpec
from bench.errors import BenchError, SourceUnavailable

DATA_DIR_ENV = "BENCH_DATA_DIR"
HOW_TO_SET_DIR = f"set data_dir in the config or {DATA_DIR_ENV}"


def resolve_data_dir(configured: str | Path | None) -> Path | None:
    """The local data directory: the configured value, else $BENCH_DATA_DIR, else None."""
    value = str(configured) if configured is not None else os.environ.get(DATA_DIR_ENV, "")
    return Path(value.strip()).expanduser() if value.strip() else None


def require_data_dir(configured: str | Path | None) -> Path | None:
    """The local data directory as resolve_data_dir finds it; one the user set that is not a directory is bad input
    (a relative path resolves against the working directory, which is what a copied README line gets wrong)."""
    directory = resolve_data_dir(configured)
    if directory is not None and not directory.is_dir():
        origin = "data.data_dir in the config" if configured is not None else f"${DATA_DIR_ENV}"
        where = "" if directory.is_absolute() else f" (resolved from {Path.cwd()}: {directory.resolve()})"
        state = "is not a directory" if directory.exists() else "does not exist"
        raise BenchError(f"{origin} = {str(directory)!r}{where} {state}: {HOW_TO_SET_DIR} to a folder in the "
                         f"official layout (XNLI-1.0/, x-final/), or unset it (only with no directory set does "
                         f"source 'auto' fall back to synthetic rows)")
    return directory


_XNLI_EVAL = "XNLI-1.0/xnli.{split}.tsv"
_XNLI_TRAIN = "XNLI-MT-1.0/multinli/multinli.train.en.tsv"
_PAWSX_DIR = "x-final"
_PAWSX_EVAL = "x-final/{lang}/{split}_2k.tsv"
_PAWSX_TRAIN = "x-final/en/train.tsv"
_PAWSX_LABELS = {"0": 0, "1": 1}
_UNTRANSLATED = "NS"  # PAWS-X placeholder for a sentence the translators could not translate


def load_local(spec: TaskSpec, directory: Path, wanted: list[str] | None, eval_split: str) -> TaskData:
    if not directory.is_dir():
        raise SourceUnavailable(
            f"data directory {directory} does not exist; {HOW_TO_SET_DIR} to a folder in the official layout"
        )
    load = _local_xnli if spec.name == "xnli" else _local_pawsx
    evals, train, train_split, notes = load(spec, directory, wanted, eval_split)
    if train_split == "dev":
        notes.insert(0, f"no training split in {directory}: training on the English dev split (offline)")
        if eval_split == "dev" and spec.train_language in evals:
            notes.insert(1, "English eval overlaps training: both are the English dev split")
    return TaskData(spec, "local", str(directory), train, train_split, evals, eval_split, notes)


# What a local reader returns: eval examples by language, training examples, training split, notes.
_Local = tuple[dict[str, Examples], Examples, str, list[str]]


def _local_xnli(spec: TaskSpec, directory: Path, wanted: list[str] | None, eval_split: str) -> _Local:
    labels = {name: index for index, name in enumerate(spec.label_names)}
    eval_path = _require_file(directory, _XNLI_EVAL.format(split=eval_split), spec, eval_split)
    by_language = _read_xnli_eval(eval_path, labels)
    evals = _pick_languages(by_language, wanted, eval_path)

    train_path = directory / _XNLI_TRAIN
    if train_path.is_file():
        # The MT training file names its columns differently and spells contradiction "contradictory".
        train_labels = labels | {"contradictory": labels["contradiction"]}
        rows = _read_pairs(train_path, ("premise", "hypo", "label"), train_labels)
        return evals, Examples(spec.train_language, *rows), "train", []
    dev_path = directory / _XNLI_EVAL.format(split="dev")
    if eval_split == "dev":
        dev = by_language
    else:
        dev = _read_xnli_eval(dev_path, labels) if dev_path.is_file() else {}
    if spec.train_language not in dev:
        raise BenchError(
            f"no English training data in {directory}: expected {_XNLI_TRAIN}, "
            f"or English rows in {_XNLI_EVAL.format(split='dev')}"
        )
    return evals, dev[spec.train_language], "dev", []


def _read_xnli_eval(path: Path, labels: dict[str, int]) -> dict[str, Examples]:
    """Rows of xnli.{dev,test}.tsv grouped by their `language` column."""
    by_language: dict[str, Examples] = {}
    columns = ("language", "gold_label", "sentence1", "sentence2")
    for number, (lang, gold, premise, hypothesis) in _read_tsv(path, columns):
        examples = by_language.get(lang) or by_language.setdefault(lang, Examples(lang, [], [], []))
        examples.premise.append(premise)
        examples.hypothesis.append(hypothesis)
        examples.label.append(_label(labels, gold, path, number, "gold_label"))
    return by_language


def _local_pawsx(spec: TaskSpec, directory: Path, wanted: list[str] | None, eval_split: str) -> _Local:
    root = directory / _PAWSX_DIR
    if not root.is_dir():
        raise SourceUnavailable(
            f"{root} not found: PAWS-X is expected in the official layout x-final/<lang>/ ({HOW_TO_SET_DIR})"
        )

    def eval_file(lang: str) -> Path:
        return directory / _PAWSX_EVAL.format(lang=lang, split=eval_split)

    available = sorted(d.name for d in root.iterdir() if eval_file(d.name).is_file())
    if not available:
        raise SourceUnavailable(f"no PAWS-X {eval_split} files in {root}: expected {eval_file('<lang>')}")
    notes: list[str] = []
    evals: dict[str, Examples] = {}
    for lang in available if wanted is None else wanted:
        if lang not in available:
            raise BenchError(
                f"language '{lang}' is not in {directory}: {eval_file(lang)} not found;"
                f" available: {', '.join(available)}"
            )
        evals[lang] = _read_pawsx(eval_file(lang), lang, eval_split, notes)

    train_path = directory / _PAWSX_TRAIN
    if train_path.is_file():
        return evals, _read_pawsx(train_path, spec.train_language, "train", notes), "train", notes
    dev_path = directory / _PAWSX_EVAL.format(lang=spec.train_language, split="dev")
    if not dev_path.is_file():
        raise BenchError(
            f"no English training data in {directory}: expected {_PAWSX_TRAIN} "
            f"or {_PAWSX_EVAL.format(lang=spec.train_language, split='dev')}"
        )
    if eval_split == "dev" and spec.train_language in evals:
        return evals, evals[spec.train_language], "dev", notes
    return evals, _read_pawsx(dev_path, spec.train_language, "dev", notes), "dev", notes


def _read_pawsx(path: Path, lang: str, split: str, notes: list[str]) -> Examples:
    # Like the official loader (csv.DictReader, QUOTE_NONE), every row whose fields exist is kept:
    # empty sentences and the untranslated placeholder "NS" stay as text, only blank lines are skipped.
    # The real de/zh files hold a few dozen "NS" rows each, so the count goes into the notes.
    examples = Examples(lang, *_read_pairs(path, ("sentence1", "sentence2", "label"), _PAWSX_LABELS))
    untranslated = sum(_UNTRANSLATED in pair for pair in zip(examples.premise, examples.hypothesis))
    if untranslated:
        notes.append(
            f"{lang} {split}: {untranslated} rows hold the untranslated placeholder '{_UNTRANSLATED}'"
            " (kept, as the official loader does)"
        )
    return examples


def _read_pairs(
    path: Path, columns: tuple[str, str, str], labels: dict[str, int]
) -> tuple[list[str], list[str], list[int]]:
    """Two text columns and a label column of a file that holds one language."""
    first: list[str] = []
    second: list[str] = []
    label: list[int] = []
    for number, (a, b, y) in _read_tsv(path, columns):
        first.append(a)
        second.append(b)
        label.append(_label(labels, y, path, number, columns[2]))
    return first, second, label


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, tuple[str, ...]]]:
    """(1-based line number, the named columns) of each row of a tab-separated file with a header.

    No quote handling, as in the official loaders (csv.QUOTE_NONE): quotes are literal text. Splitting
    lines by hand keeps exact line numbers and reads the 20k-row XNLI test file in about 0.1 s.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # universal newlines; a BOM would spoil the header
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None
    lines = text.split("\n")
    if not text.strip():
        raise BenchError(f"{path} is empty: expected a tab-separated header ({', '.join(columns)}, ...) and rows")
    header = lines[0].split("\t")
    for name in columns:
        if name not in header:
            present = ", ".join(header)
            raise BenchError(f"{path}, line 1: the header has no column '{name}' (it has: {present})")
    pick = operator.itemgetter(*(header.index(name) for name in columns))
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:  # the final newline, or a blank line: no example (csv.DictReader skips these too)
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise BenchError(
                f"{path}, line {number}: {len(fields)} tab-separated fields,"
                f" the header has {len(header)}"
            )
        rows.append((number, pick(fields)))
    if not rows:
        raise BenchError(f"{path} has a header and no rows: no examples to read (a file cut short, or the wrong file?)")
    return rows


def _label(labels: dict[str, int], value: str, path: Path, number: int, column: str) -> int:
    try:
        return labels[value]
    except KeyError:
        expected = ", ".join(labels)
        message = f"{path}, line {number}: unknown {column} '{value}' (expected one of: {expected})"
        raise BenchError(message) from None


def _require_file(directory: Path, relative: str, spec: TaskSpec, split: str) -> Path:
    path = directory / relative
    if not path.is_file():
        raise SourceUnavailable(
            f"{path} not found: the {spec.name} {split} split is expected there in the official layout"
            f" ({HOW_TO_SET_DIR})"
        )
    return path


def _pick_languages(
    by_language: dict[str, Examples], wanted: list[str] | None, path: Path
) -> dict[str, Examples]:
    available = sorted(by_language)
    if wanted is None:
        return {lang: by_language[lang] for lang in available}
    for lang in wanted:
        if lang not in by_language:
            raise BenchError(f"language '{lang}' is not in {path}; available: {', '.join(available)}")
    return {lang: by_language[lang] for lang in wanted}
