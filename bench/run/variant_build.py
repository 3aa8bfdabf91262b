"""One seed of one variant made ready to measure: its artifact built (or loaded from the cache), the fields its
records share, and its eager fp32 logits on the evaluation set (the parity reference and that seed's accuracy).

A plain function of plain data, so an executor can run it here (local) or as a Ray task on another node; it
writes to the cache directory only, never to the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.variants.artifacts import Artifact
from bench.variants.variant import BaseStep, BuildInputs
from bench.config import BackendOptions, TrainConfig, VariantBase
from bench.data.evalset import EvalSet
from bench.data.examples import TaskData
from bench.errors import BenchError


@dataclass
class SeedJob:
    inputs: BuildInputs
    variant: VariantBase
    train: TrainConfig
    data: TaskData
    train_ids: list
    seed: int
    evalset: EvalSet
    batch_size: int  # of the reference pass over the evaluation set
    threads: int
    options: BackendOptions
    workdir: str  # scratch for the eager runner
    bases: tuple[BaseStep, ...] = ()  # what the variant is trained on, nearest first (bench.variants.variant.base_chain)

    @property
    def key(self) -> tuple[str, int]:
        return self.variant.name, self.seed


@dataclass
class SeedBuild:
    """The outcome: either an artifact with its fields and reference logits, or why it could not be built."""

    artifact: Artifact | None = None
    fields: dict[str, Any] | None = None  # artifact fields, then the sparsity accounting of what is measured
    reference: np.ndarray | None = None  # eager fp32 logits, [examples, labels]
    accuracy_by_language: dict[str, float] | None = None
    error: str | None = None  # "Type: message" when the build failed
    message: str | None = None  # the exception's own message, for the console


def build_seed(job: SeedJob, console: Console) -> SeedBuild:
    """A BenchError (bad input) propagates and ends the sweep; any other failure fails this seed only."""
    from bench.variants.variant import artifact_for, base_artifact
    from bench.run import records
    from sparsify.accounting import count as sparsity_counts

    try:
        base = base_artifact(job.inputs, job.bases, job.data, job.train_ids, console)
        artifact, built = artifact_for(job.inputs, job.variant, job.train, job.data, job.train_ids, job.seed, console,
                                       base=base)
        model = artifact.load_model()  # measure exactly what was saved
    except BenchError:
        raise
    except Exception as exc:  # a variant that cannot be built fails its cells; the sweep goes on
        return SeedBuild(error=f"{type(exc).__name__}: {exc}", message=str(exc))
    fields = records.artifact_fields(model, artifact, built)
    fields |= sparsity_counts(model).fields(job.inputs.max_length)  # densities and MACs of what is measured
    reference = _reference_logits(job, model)
    del model
    return SeedBuild(artifact, fields, reference, job.evalset.accuracy_by_language(reference.argmax(1)))


def _reference_logits(job: SeedJob, model) -> np.ndarray:
    from bench.backends import Target, prepare
    from bench.measure.passes import eval_pass

    runner = prepare("eager", model, Target(job.inputs.device, "fp32", job.threads), None, job.options,
                     Path(job.workdir))
    return eval_pass(runner, job.evalset, job.evalset.batches(job.batch_size)).logits
