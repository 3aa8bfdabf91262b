"""Task examples for zero-shot cross-lingual evaluation: English training rows, eval rows per language.

Three sources: the Hugging Face hub, a local directory in the official distribution layouts
(XNLI-1.0/, XNLI-MT-1.0/, x-final/), and a seeded generator for machines with neither. `auto` tries
them in that order and records in `TaskData.notes` why each earlier one was skipped.
"""

import operator
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from bench.errors import BenchError, did_you_mean
from bench.hub import check_reachable, one_line
from bench.tasks import TaskSpec, get_task

SOURCES = ("auto", "hub", "local", "synthetic")
EVAL_SPLITS = ("test", "dev")
DATA_DIR_ENV = "BENCH_DATA_DIR"
_HOW_TO_SET_DIR = f"set data_dir in the config or {DATA_DIR_ENV}"


@dataclass
class Examples:
    """Sentence pairs of one language; for PAWS-X `premise`/`hypothesis` hold sentence1/sentence2."""

    language: str
    premise: list[str]
    hypothesis: list[str]
    label: list[int]

    def __len__(self) -> int:
        return len(self.label)

    def subsample(self, n: int | None, seed: int) -> "Examples":
        """A seeded subset of min(n, len) rows in their original order; None keeps every row."""
        if n is None or n >= len(self):
            return self
        if n < 0:
            raise BenchError(f"cannot keep {n} examples: the count must be 0 or more")
        # The seed alone picks the positions, so the same rows are kept in every language: XNLI and
        # PAWS-X rows are parallel translations, and subsets stay comparable across languages.
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return Examples(
            self.language,
            [self.premise[i] for i in keep],
            [self.hypothesis[i] for i in keep],
            [self.label[i] for i in keep],
        )


@dataclass
class TaskData:
    """Everything a run needs from a task, plus where it came from."""

    task: TaskSpec
    source: str  # "hub" | "local" | "synthetic": the source actually used
    source_detail: str  # hub id, directory path, or "generated (seed N)"
    train: Examples
    train_split: str
    eval: dict[str, Examples]  # language -> eval examples, in the requested order
    eval_split: str
    notes: list[str] = field(default_factory=list)


def resolve_data_dir(configured: str | Path | None) -> Path | None:
    """The local data directory: the configured value, else $BENCH_DATA_DIR, else None."""
    value = str(configured) if configured is not None else os.environ.get(DATA_DIR_ENV, "")
    return Path(value.strip()).expanduser() if value.strip() else None


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
    directory = resolve_data_dir(data_dir)

    def synthetic() -> TaskData:
        return _load_synthetic(spec, wanted, eval_split, max_train, max_eval_per_language, seed)

    if source == "hub":
        data = _load_hub(spec, wanted, eval_split)
    elif source == "local":
        if directory is None:
            raise BenchError(f"source 'local' needs a data directory: {_HOW_TO_SET_DIR}")
        data = _load_local(spec, directory, wanted, eval_split)
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
        return _load_hub(spec, wanted, eval_split)
    except BenchError as exc:
        skipped.append(f"hub: {exc}")
    if directory is None:
        skipped.append(f"local: no data directory ({_HOW_TO_SET_DIR})")
    else:
        try:
            data = _load_local(spec, directory, wanted, eval_split)
            data.notes[:0] = skipped
            return data
        except BenchError as exc:
            skipped.append(f"local: {exc}")
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


# ---------------------------------------------------------------------------------------------- hub

_HUB_TEXT_COLUMNS = {"xnli": ("premise", "hypothesis"), "pawsx": ("sentence1", "sentence2")}
_HUB_SPLITS = {"train": "train", "test": "test", "dev": "validation"}


def _load_hub(spec: TaskSpec, wanted: list[str] | None, eval_split: str) -> TaskData:
    languages = list(spec.languages) if wanted is None else wanted
    for lang in languages:
        if lang not in spec.languages:
            raise BenchError(did_you_mean(lang, spec.languages, f"{spec.name} language on the hub"))
    check_reachable()
    try:
        import datasets
    except ImportError:
        raise BenchError("the 'datasets' package is not installed (pip install datasets)") from None
    notes: list[str] = []
    train = _hub_examples(datasets, spec, spec.train_language, "train", notes)
    evals = {lang: _hub_examples(datasets, spec, lang, eval_split, notes) for lang in languages}
    return TaskData(spec, "hub", spec.hub_id, train, "train", evals, eval_split, notes)


def _hub_examples(datasets: ModuleType, spec: TaskSpec, lang: str, split: str, notes: list[str]) -> Examples:
    first, second = _HUB_TEXT_COLUMNS[spec.name]
    try:
        table = datasets.load_dataset(spec.hub_id, lang, split=_HUB_SPLITS[split])
        columns = table.select_columns([first, second, "label"]).to_dict()
    except Exception as exc:  # connection, missing config, cache, schema: all mean "not usable"
        raise BenchError(f"could not load {spec.hub_id} ({lang}, {split}): {one_line(exc)}") from exc
    # PAWS-X marks missing labels -1; such rows cannot be scored.
    rows = [
        (p, h, y)
        for p, h, y in zip(columns[first], columns[second], columns["label"])
        if 0 <= y < spec.num_labels
    ]
    if len(rows) < len(columns["label"]):
        dropped = len(columns["label"]) - len(rows)
        notes.append(f"{lang} {split}: dropped {dropped} rows without a valid label")
    return Examples(lang, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


# -------------------------------------------------------------------------------------------- local

_XNLI_EVAL = "XNLI-1.0/xnli.{split}.tsv"
_XNLI_TRAIN = "XNLI-MT-1.0/multinli/multinli.train.en.tsv"
_PAWSX_DIR = "x-final"
_PAWSX_EVAL = "x-final/{lang}/{split}_2k.tsv"
_PAWSX_TRAIN = "x-final/en/train.tsv"
_PAWSX_LABELS = {"0": 0, "1": 1}
_UNTRANSLATED = "NS"  # PAWS-X placeholder for a sentence the translators could not translate


def _load_local(spec: TaskSpec, directory: Path, wanted: list[str] | None, eval_split: str) -> TaskData:
    if not directory.is_dir():
        raise BenchError(
            f"data directory {directory} does not exist; {_HOW_TO_SET_DIR} to a folder in the official layout"
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
        raise BenchError(
            f"{root} not found: PAWS-X is expected in the official layout x-final/<lang>/ ({_HOW_TO_SET_DIR})"
        )

    def eval_file(lang: str) -> Path:
        return directory / _PAWSX_EVAL.format(lang=lang, split=eval_split)

    available = sorted(d.name for d in root.iterdir() if eval_file(d.name).is_file())
    if not available:
        raise BenchError(f"no PAWS-X {eval_split} files in {root}: expected {eval_file('<lang>')}")
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
        raise BenchError(
            f"{path} not found: the {spec.name} {split} split is expected there in the official layout"
            f" ({_HOW_TO_SET_DIR})"
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


# ---------------------------------------------------------------------------------------- synthetic

_SYNTHETIC_TRAIN = 2000
_SYNTHETIC_EVAL = 200
_VOCABULARY_SIZE = 400
# Code point ranges of letters, so generated languages differ in script as real ones do.
_SCRIPTS = {
    "latin": (0x61, 0x7A),
    "cyrillic": (0x430, 0x44F),
    "greek": (0x3B1, 0x3C9),
    "arabic": (0x628, 0x63A),
    "devanagari": (0x915, 0x939),
    "thai": (0xE01, 0xE2E),
    "cjk": (0x4E00, 0x9FFF),
    "hiragana": (0x3041, 0x3093),
    "hangul": (0xAC00, 0xD7A3),
}
_LANGUAGE_SCRIPTS = {
    "ar": "arabic", "ur": "arabic", "bg": "cyrillic", "ru": "cyrillic", "el": "greek",
    "hi": "devanagari", "th": "thai", "zh": "cjk", "ja": "hiragana", "ko": "hangul",
}  # fmt: skip


def _load_synthetic(
    spec: TaskSpec,
    wanted: list[str] | None,
    eval_split: str,
    max_train: int | None,
    max_eval: int | None,
    seed: int,
) -> TaskData:
    """Pseudo-word pairs whose label follows from the words, so a classifier can beat chance.

    XNLI: entailment = a shuffled subset of the premise's words; contradiction = such a subset with
    the language's negation word; neutral = unrelated words. PAWS-X: paraphrase = the same words
    reordered; not a paraphrase = reordered with one word swapped for an unrelated one. Every language
    has its own seeded vocabulary, so languages differ in surface form but not in the rule.
    """
    languages = list(spec.languages) if wanted is None else wanted
    n_train = _SYNTHETIC_TRAIN if max_train is None else max_train
    n_eval = _SYNTHETIC_EVAL if max_eval is None else max_eval
    train = _generate(spec, spec.train_language, "train", n_train, seed)
    evals = {lang: _generate(spec, lang, eval_split, n_eval, seed) for lang in languages}
    notes = ["synthetic data: pseudo-words with a planted rule, so accuracy says nothing about real language"]
    return TaskData(spec, "synthetic", f"generated (seed {seed})", train, "train", evals, eval_split, notes)


def _generate(spec: TaskSpec, lang: str, split: str, size: int, seed: int) -> Examples:
    vocabulary, negation = _vocabulary(lang, seed)
    rng = random.Random(f"{seed}|{spec.name}|{lang}|{split}")  # str seeds are stable across processes
    labels = [i % spec.num_labels for i in range(size)]
    rng.shuffle(labels)
    if spec.name == "xnli":
        pairs = [_xnli_pair(rng, vocabulary, negation, label) for label in labels]
    else:
        pairs = [_pawsx_pair(rng, vocabulary, label) for label in labels]
    return Examples(lang, [" ".join(p) for p, _ in pairs], [" ".join(h) for _, h in pairs], labels)


def _vocabulary(lang: str, seed: int) -> tuple[list[str], str]:
    """Distinct pseudo-words of one language from a seeded alphabet, plus its negation word."""
    rng = random.Random(f"{seed}|vocabulary|{lang}")
    low, high = _SCRIPTS[_LANGUAGE_SCRIPTS.get(lang, "latin")]
    alphabet = rng.sample([chr(c) for c in range(low, high + 1)], min(20, high - low + 1))
    words: set[str] = set()
    while len(words) < _VOCABULARY_SIZE + 1:
        words.add("".join(rng.choices(alphabet, k=rng.randint(2, 6))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered[1:], ordered[0]


def _xnli_pair(
    rng: random.Random, vocabulary: list[str], negation: str, label: int
) -> tuple[list[str], list[str]]:
    premise = rng.sample(vocabulary, rng.randint(8, 16))
    size = rng.randint(4, 8)  # every class has hypotheses of the same lengths: length is no cue
    if label == 0:  # entailment
        return premise, rng.sample(premise, size)
    if label == 2:  # contradiction
        hypothesis = rng.sample(premise, size - 1)
        hypothesis.insert(rng.randint(0, size - 1), negation)
        return premise, hypothesis
    return premise, rng.sample(vocabulary, size)  # neutral


def _pawsx_pair(rng: random.Random, vocabulary: list[str], label: int) -> tuple[list[str], list[str]]:
    first = rng.sample(vocabulary, rng.randint(8, 16))
    second = list(first)
    if label == 0:  # not a paraphrase: one word replaced by one absent from the first sentence
        replacement = rng.choice(vocabulary)
        while replacement in first:
            replacement = rng.choice(vocabulary)
        second[rng.randrange(len(second))] = replacement
    rng.shuffle(second)
    return first, second
