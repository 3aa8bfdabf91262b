"""Examples of one language and a task's data as a run uses it (training rows, eval rows per language, source)."""

import random
from dataclasses import dataclass, field

from bench.data.tasks import TaskSpec
from bench.errors import BenchError


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
