"""Sweep configuration: pydantic models validated where they are built, read from and written to TOML.

A bad value is reported as one line naming the field, what is allowed and what was given.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import BenchError

Dtype = Literal["fp32", "fp16", "bf16"]
BACKENDS = ("eager", "compile", "onnxruntime")
SCENARIOS = ("latency", "throughput", "memory", "accuracy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    source: str = Field("random:small", description="hub id, local directory, or random:<tiny|small|564M>")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per encoded pair, truncated longest-first")
    trust_remote_code: bool = False


class DataConfig(_Strict):
    tasks: list[Literal["xnli", "pawsx"]] = Field(default_factory=lambda: ["xnli"], min_length=1)
    source: Literal["auto", "hub", "local", "synthetic"] = "auto"
    data_dir: str | None = Field(None, description="official layouts; else env BENCH_DATA_DIR")
    languages: list[str] | Literal["all"] = "all"
    eval_split: Literal["test", "dev"] = "test"
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_per_language: int | None = Field(None, ge=1)
    # Resource level of each language in XGLM's pre-training data (CC100-XL, Lin et al. 2022, table 9):
    # the grouping the study reports accuracy by. Languages in no group are reported ungrouped.
    language_groups: dict[str, list[str]] = Field(default_factory=lambda: {
        "high": ["en", "ru", "zh", "de", "es", "fr", "ja"],
        "medium": ["ar", "bg", "el", "ko", "tr", "vi", "th"],
        "low": ["hi", "sw", "ur"],
    })


class TrainConfig(_Strict):
    steps: int | None = Field(None, ge=0, description="optimiser steps; overrides epochs; 0 = untrained (speed-only)")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    log_every: int = Field(10, ge=1)


class VariantConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[\w.+-]+$")
    method: str = "dense"
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of [train] for this variant")
    seeds: list[int] | None = Field(None, min_length=1, description="training seeds; default: the sweep's seed")
    # method = "prompt" (P-tuning v2)
    prompt_length: int | None = Field(None, ge=1, le=128, description="prefix length P")
    prompt_mlp: bool = Field(False, description="train the prefix through an MLP, folded away afterwards")
    prompt_mlp_hidden: int = Field(512, ge=1)
    prompt_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the prefix during training")
    prefix_artifact: str | None = Field(None, description="reuse a trained prompt artifact instead of training")

    @model_validator(mode="after")
    def _method_options(self) -> "VariantConfig":
        if self.method == "prompt":
            if self.prompt_length is None and self.prefix_artifact is None:
                raise ValueError(f"variant '{self.name}': method 'prompt' needs prompt_length (1 to 128) or prefix_artifact")
        elif self.prompt_length is not None or self.prefix_artifact is not None or self.prompt_mlp:
            raise ValueError(f"variant '{self.name}': prompt_* options apply to method 'prompt', not '{self.method}'")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"variant '{self.name}': repeated seeds {self.seeds}")
        return self

    def seeds_or(self, default: int) -> list[int]:
        return self.seeds or [default]

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from bench.variants import METHODS as registered

        if value not in registered:
            raise ValueError(f"unknown method '{value}'; available: {', '.join(registered)}")
        return value


class MeasureConfig(_Strict):
    device: Literal["cpu", "cuda"] = "cpu"
    dtypes: list[Dtype] = Field(default_factory=lambda: ["fp32"], min_length=1)
    backends: list[Literal["eager", "compile", "onnxruntime"]] = Field(default_factory=lambda: list(BACKENDS), min_length=1)
    scenarios: list[Literal["latency", "throughput", "memory", "accuracy"]] = Field(default_factory=lambda: list(SCENARIOS))
    batch_sizes: list[int] = Field(default_factory=lambda: [8], min_length=1)
    seq_lens: list[int] = Field(default_factory=lambda: [128], min_length=1)
    throughput_batch_size: int = Field(32, ge=1, description="batch size of the pass over the evaluation set")
    warmup_iters: int = Field(5, ge=0)
    min_iters: int = Field(20, ge=1)
    min_time_s: float = Field(1.0, ge=0)
    max_time_s: float = Field(60.0, gt=0, description="stop a latency measurement after this long, whatever min_iters says")
    threads: int | None = Field(None, ge=1, description="torch and ONNX Runtime intra-op threads; default: physical cores")

    @field_validator("batch_sizes", "seq_lens")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"every value must be >= 1, got {values}")
        return values

    @field_validator("dtypes", "backends", "scenarios", "batch_sizes", "seq_lens")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        # A repeated entry would measure the same cell twice under one key.
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"repeated entries: {', '.join(repeated)}")
        return values


class CompileOptions(_Strict):
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    dynamic: bool | None = None
    fullgraph: bool = False


class OnnxRuntimeOptions(_Strict):
    opset: int = Field(18, ge=17)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"


class BackendOptions(_Strict):
    compile: CompileOptions = Field(default_factory=CompileOptions)
    onnxruntime: OnnxRuntimeOptions = Field(default_factory=OnnxRuntimeOptions)


class SweepConfig(_Strict):
    name: str = Field("sweep", pattern=r"^[\w.+-]+$")
    seed: int = 0
    output_dir: str = "runs"
    cache_dir: str | None = Field(None, description="artifacts and tokenizers; else env BENCH_CACHE_DIR or ~/.cache/xglm-bench")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    # Training policy per method, between [train] and a variant's own overrides. Prompt tuning wants a far
    # larger learning rate and more epochs than full fine-tuning (P-tuning v2: 5e-3 to 1e-2).
    method_train: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"prompt": {"lr": 5e-3, "epochs": 3.0, "weight_decay": 0.0}}
    )
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig(name="dense-ft")], min_length=1)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    backend: BackendOptions = Field(default_factory=BackendOptions)

    @model_validator(mode="after")
    def _unique_variants(self) -> "SweepConfig":
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        for v in self.variants:
            self.train_for(v)  # validates the overrides now, not mid-sweep
        return self

    def train_for(self, variant: VariantConfig) -> TrainConfig:
        """[train], then the method's policy ([method_train.<method>]), then the variant's own overrides."""
        policy = self.method_train.get(variant.method, {})
        return TrainConfig.model_validate({**self.train.model_dump(), **policy, **variant.train})

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


def parse_config(data: dict[str, Any], origin: str = "config") -> SweepConfig:
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{origin}: {_first_error(exc)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read a TOML sweep file, apply dotted overrides ({"measure.device": "cuda"}), validate."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"config file '{path}' not found") from None
    except IsADirectoryError:
        raise BenchError(f"config file '{path}' is a directory; give a .toml file") from None
    except UnicodeDecodeError:
        raise BenchError(f"config file '{path}' is not UTF-8 text") from None
    except OSError as exc:
        raise BenchError(f"cannot read config file '{path}': {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"config file '{path}' is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_config(data, origin=str(path))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    shown = "" if isinstance(given, dict) or err["type"] == "missing" else f" (got {given!r})"
    more = f" [and {len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"field '{field}': {msg}{shown}{more}"


def packaged_config(name: str = "default") -> Path:
    """A config shipped with the project: bench/configs in a wheel, configs/ in a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "configs", here.parent / "configs"):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    raise BenchError(f"no packaged config named '{name}'")
