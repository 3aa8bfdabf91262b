"""Task examples from the Hugging Face hub (datasets), after a probe that answers "unreachable" in seconds.

Unreachable (or no `datasets` package) is SourceUnavailable, so `auto` goes on to local files; a hub that answers
but fails to deliver the data is an error."""

from types import ModuleType

from bench.data.examples import Examples, TaskData
from bench.data.tasks import TaskSpec
from bench.errors import BenchError, SourceUnavailable, did_you_mean, one_line
from bench.model.hub import check_reachable

_HUB_TEXT_COLUMNS = {"xnli": ("premise", "hypothesis"), "pawsx": ("sentence1", "sentence2")}
_HUB_SPLITS = {"train": "train", "test": "test", "dev": "validation"}


def load_hub(spec: TaskSpec, wanted: list[str] | None, eval_split: str) -> TaskData:
    languages = list(spec.languages) if wanted is None else wanted
    for lang in languages:
        if lang not in spec.languages:
            raise BenchError(did_you_mean(lang, spec.languages, f"{spec.name} language on the hub"))
    try:
        check_reachable()
    except BenchError as exc:
        raise SourceUnavailable(str(exc)) from None
    try:
        import datasets
    except ImportError:
        raise SourceUnavailable("the 'datasets' package is not installed (pip install datasets)") from None
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
