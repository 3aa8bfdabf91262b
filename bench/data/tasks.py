"""The benchmark tasks: their labels, languages and where they live on the Hugging Face hub.

Only static facts live here, so anything (config validation, reports) can import it cheaply.
"""

from dataclasses import dataclass

from bench.errors import BenchError, did_you_mean


@dataclass(frozen=True)
class TaskSpec:
    """One sentence-pair classification task evaluated zero-shot across languages."""

    name: str
    label_names: tuple[str, ...]  # index = integer label used everywhere in the harness
    languages: tuple[str, ...]  # the built-in list; a local source may hold others
    hub_id: str
    train_language: str = "en"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


TASKS: dict[str, TaskSpec] = {
    "xnli": TaskSpec(
        name="xnli",
        # The order of the hub's ClassLabel, so hub integers need no remapping.
        label_names=("entailment", "neutral", "contradiction"),
        languages=("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
        hub_id="facebook/xnli",
    ),
    "pawsx": TaskSpec(
        name="pawsx",
        label_names=("not_paraphrase", "paraphrase"),  # the official files' 0 / 1
        languages=("de", "en", "es", "fr", "ja", "ko", "zh"),
        hub_id="google-research-datasets/paws-x",
    ),
}


def get_task(name: str) -> TaskSpec:
    """The spec of a task by name, or a BenchError that suggests the closest name."""
    try:
        return TASKS[name]
    except KeyError:
        raise BenchError(did_you_mean(name, list(TASKS), "task")) from None
