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


# XGLM's pre-training tokens per language (CC100-XL; the facebook/xglm-564M model card, "Training Data Statistics",
# the same corpus for every XGLM size): the 30 languages the model knows, largest first.
XGLM_PRETRAINING_TOKENS: dict[str, int] = {
    "en": 803_526_736_124, "ru": 147_791_898_098, "zh": 132_770_494_630, "de": 89_223_707_856,
    "es": 87_303_083_105, "fr": 77_419_639_775, "ja": 66_054_364_513, "it": 41_930_465_338,
    "pt": 36_586_032_444, "el": 28_762_166_159, "ko": 20_002_244_535, "fi": 16_804_309_722,
    "id": 15_423_541_953, "tr": 12_413_166_065, "ar": 12_248_607_345, "vi": 11_199_121_869,
    "th": 10_842_172_807, "bg": 9_703_797_869, "ca": 6_708_657_982, "hi": 3_057_211_331,
    "et": 2_957_577_859, "bn": 1_717_040_012, "ta": 1_569_101_296, "ur": 1_049_854_013,
    "sw": 907_156_230, "te": 689_316_485, "eu": 614_945_318, "my": 310_838_043,
    "ht": 60_799_289, "qu": 1_665_911,
}
# Resource groups by share of those tokens: high >= 2% (9 languages), medium >= 0.4% (10), low below (11).
_GROUP_FLOORS = (("high", 0.02), ("medium", 0.004), ("low", 0.0))


def xglm_language_groups() -> dict[str, list[str]]:
    """Every language XGLM was pre-trained on, in its resource group (the study reports accuracy by group)."""
    total = sum(XGLM_PRETRAINING_TOKENS.values())
    groups: dict[str, list[str]] = {name: [] for name, _ in _GROUP_FLOORS}
    for lang, tokens in XGLM_PRETRAINING_TOKENS.items():
        name = next(name for name, floor in _GROUP_FLOORS if tokens / total >= floor)
        groups[name].append(lang)
    return groups
