"""Synthetic task examples for machines with neither hub nor local data: pseudo-words with a planted rule."""

import random

from bench.data.examples import Examples, TaskData
from bench.data.tasks import TaskSpec

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


def load_synthetic(
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
