"""What differs between compared runs, beyond the code: recipe, data, languages, model, machine and software.

`bench compare` joins cells by name, so a `dense-ft` trained for 8 steps on synthetic rows in four languages
joins a `dense-ft` trained for 32 steps on real rows in three. Each difference that bears on the compared
figures is named here, from the runs' config.toml, records and env.json; accuracy deltas across different data
or languages are shown as not comparable rather than as a change.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from reports.load import Run

# (label, what it bears on, how to read it from a run): the first group changes accuracy and timing alike.
_CONFIG = (("model", "model", ("model", "source")), ("max length", "model", ("model", "max_length")),
           ("tasks", "data", ("data", "tasks")), ("data source", "data", ("data", "source")),
           ("data directory", "data", ("data", "data_dir")), ("languages", "languages", ("data", "languages")),
           ("eval split", "data", ("data", "eval_split")), ("training rows", "data", ("data", "max_train_samples")),
           ("eval rows per language", "data", ("data", "max_eval_per_language")),
           ("training steps", "recipe", ("train", "steps")), ("training batch", "recipe", ("train", "batch_size")),
           ("learning rate", "recipe", ("train", "lr")), ("seed", "recipe", ("seed",)),
           ("threads", "machine", ("measure", "threads")))
_RECORDS = (("data source (as loaded)", "data", "data_source"), ("training split", "data", "train_split"),
            ("model (as loaded)", "model", "model"), ("training steps (as run)", "recipe", "train_steps"))
_ENV = (("CPU", "machine", "cpu_model"), ("GPUs", "machine", "gpus"), ("torch threads", "machine", "torch_num_threads"),
        ("torch", "software", "torch_version"), ("onnxruntime", "software", "onnxruntime_version"),
        ("transformers", "software", "transformers_version"), ("python", "software", "python_version"),
        ("commit", "software", "git_commit"))
NOT_COMPARABLE = {"data", "languages", "model"}  # an accuracy delta across these measures the inputs, not the code


@dataclass(frozen=True)
class Difference:
    label: str
    bears_on: str  # recipe | data | languages | model | machine | software
    values: list[str]  # per run

    def line(self, letters: list[str]) -> str:
        return f"{self.label}: " + " · ".join(f"{letter} {value}" for letter, value in zip(letters, self.values))


def differences(runs: list[Run]) -> list[Difference]:
    configs = [_config(run) for run in runs]
    found: list[Difference] = []

    def add(label: str, bears_on: str, values: list[Any]) -> None:
        shown = [_show(v) for v in values]
        if len(set(shown)) > 1 and not any(label.startswith(d.label) and d.values == shown for d in found):
            found.append(Difference(label, bears_on, shown))

    for label, bears_on, path in _CONFIG:
        add(label, bears_on, [_get(c, path) for c in configs])
    for label, bears_on, key in _RECORDS:
        add(label, bears_on, [sorted({str(r.get(key)) for r in run.records if r.get(key) is not None}) for run in runs])
    for label, bears_on, key in _ENV:
        add(label, bears_on, [(run.env or {}).get(key) for run in runs])
    return found


def accuracy_comparable(found: list[Difference]) -> bool:
    return not any(d.bears_on in NOT_COMPARABLE for d in found)


def _config(run: Run) -> dict[str, Any]:
    path = run.path / "config.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _get(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(config, dict):
            return None
        config = config.get(key)
    return config


def _show(value: Any) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict) and "name" in value:  # a GPU: its name is what differs to the reader
        return str(value["name"])
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
