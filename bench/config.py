"""Sweep configuration: pydantic models validated where they are built, read from and written to TOML.

A bad value is reported as one line naming the field, what is allowed and what was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator,
                      model_validator)

from bench.build.options import PEFT_OPTIONS, SPARSITY_OPTIONS, peft_problem, sparsity_problem
from bench.config_backends import BackendName, BackendOptions, CompileOptions, OnnxRuntimeOptions  # noqa: F401
from bench.config_cluster import CostConfig, ExecutorConfig
from bench.config_input import first_error, read_toml, with_overrides
from bench.data.tasks import xglm_language_groups
from bench.errors import BenchError, did_you_mean

Dtype = Literal["fp32", "tf32", "fp16", "bf16"]
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
    # Resource level of each of XGLM's 30 pre-training languages (bench.data.tasks): the grouping the study reports
    # accuracy by. Languages in no group are reported ungrouped.
    language_groups: dict[str, list[str]] = Field(default_factory=lambda: xglm_language_groups())


class TrainConfig(_Strict):
    steps: int | None = Field(None, ge=0, description="optimiser steps; overrides epochs; 0 = untrained (speed-only)")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    log_every: int = Field(10, ge=1)


# Any [train] field, each optional, with the same bounds: a method's policy or a variant's own overrides. A typed
# model (not a dict) so that a bad value is named by its full path, e.g. variants[2].train.lr.
TrainOverrides = create_model(
    "TrainOverrides", __base__=_Strict,
    **{name: (Annotated[field.annotation, *field.metadata] | None, None) for name, field in TrainConfig.model_fields.items()},
)


def _registered_method(name: str) -> str:
    from bench.build.methods import METHODS as registered

    if name not in registered:
        raise ValueError(did_you_mean(name, list(registered), "method"))
    return name


class VariantConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[\w.+-]+$")
    method: str = "dense"
    train: TrainOverrides = Field(default_factory=TrainOverrides, description="overrides of [train] for this variant")
    seeds: list[int] | None = Field(None, min_length=1, description="training seeds; default: the sweep's seed")
    # method = "prompt" (P-tuning v2)
    prompt_length: int | None = Field(None, ge=1, le=128, description="prefix length P")
    prompt_mlp: bool = Field(False, description="train the prefix through an MLP, folded away afterwards")
    prompt_mlp_hidden: int = Field(512, ge=1)
    prompt_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the prefix during training")
    prefix_artifact: str | None = Field(None, description="reuse a trained prompt artifact instead of training")
    # methods unstructured, semi24, structured (sparsify/). Unset (None) means the default in the description,
    # so a dense or prompt variant carries none of them and its recipe hash is unchanged.
    sparsity: float | None = Field(None, description="fraction removed, in [0, 1): weights (unstructured), heads and FFN channels (structured); semi24: 0.5")
    sparsity_scope: Literal["layer", "global"] | None = Field(None, description="rank within each tensor/layer or across all (default layer)")
    importance: Literal["magnitude", "taylor"] | None = Field(None, description="|w| or |w * grad| on training batches (default magnitude)")
    schedule: Literal["oneshot", "gradual"] | None = Field(None, description="unstructured: prune then fine-tune, or Zhu & Gupta's cubic ramp (default oneshot)")
    gradual_fraction: float | None = Field(None, gt=0, le=1, description="share of the training steps the cubic ramp covers (default 0.5)")
    structured_iterative_steps: int | None = Field(None, ge=1, le=64, description="structured: prune-then-fine-tune rounds (default 1)")
    sparsity_include: list[Literal["embedding", "head"]] | None = Field(None, description="also prune these (default: decoder linears only)")
    # method = "soft_prompt" (prompt_length embeddings at the input, Lester et al.), method = "lora" (Hu et al.), and
    # `base`; unset (None) means the default in the description, left out of recipes like the sparsity options.
    base: str | None = Field(None, description="the variant whose artifact this one is trained on, frozen (prompt, soft_prompt, lora)")
    soft_prompt_inference: Literal["input", "kv"] | None = Field(None, description="input: run the P embeddings through every layer (default); kv: fold them into per-layer keys and values")
    soft_prompt_init: Literal["vocab", "random"] | None = Field(None, description="embeddings of P sampled vocabulary tokens (default) or N(0, 1)")
    lora_rank: int | None = Field(None, ge=1, le=4096, description="r (default 8)")
    lora_alpha: float | None = Field(None, gt=0, description="the update is scaled by alpha / r (default 8, PEFT's)")
    lora_dropout: float | None = Field(None, ge=0, lt=1, description="dropout on the adapters' input while training (default 0)")
    lora_targets: list[str] | None = Field(None, min_length=1, description="of q_proj, k_proj, v_proj, out_proj, fc1, fc2 (default q_proj, v_proj)")
    lora_merge: bool | None = Field(None, description="merge W + scaling x BA into the weights for inference (default true)")

    @field_validator("sparsity")
    @classmethod
    def _sparsity_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError("sparsity must be in [0, 1): the fraction removed (1 would remove everything)")
        return value

    @model_validator(mode="after")
    def _method_options(self) -> "VariantConfig":
        problem = peft_problem(self) or sparsity_problem(self)  # bench.build.options: which option fits which method
        if problem:
            raise ValueError(problem)
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"variant '{self.name}': repeated seeds {self.seeds}")
        return self

    def recipe_options(self) -> dict[str, Any]:
        """The options that determine the weights; unset sparsity options are left out, so the recipes (and cached
        artifacts) of dense and prompt variants are what they were before sparsity existed."""
        options = self.model_dump(exclude={"name", "train", "method", "seeds"})
        return {k: v for k, v in options.items() if not (k in (*SPARSITY_OPTIONS, *PEFT_OPTIONS) and v is None)}

    def seeds_or(self, default: int) -> list[int]:
        return self.seeds or [default]

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from bench.build.methods import METHODS as registered

        if value not in registered:
            raise ValueError(f"unknown method '{value}'; available: {', '.join(registered)}")
        return value


class MeasureConfig(_Strict):
    device: str = Field("cpu", pattern=r"^(cpu|cuda|cuda:\d+)$", description="cpu, cuda or cuda:N (torch's CUDA index)")
    dtypes: list[Dtype] = Field(default_factory=lambda: ["fp32"], min_length=1)
    backends: list[BackendName] = Field(default_factory=lambda: list(BACKENDS), min_length=1)
    scenarios: list[Literal["latency", "throughput", "memory", "accuracy"]] = Field(default_factory=lambda: list(SCENARIOS))
    batch_sizes: list[int] = Field(default_factory=lambda: [8], min_length=1)
    seq_lens: list[int] = Field(default_factory=lambda: [128], min_length=1)
    throughput_batch_size: int = Field(32, ge=1, description="batch size of the pass over the evaluation set")
    warmup_iters: int = Field(5, ge=0, description="untimed calls per shape before the first round (at least 1)")
    # Latency is measured in interleaved rounds (bench.measure.rounds): every cell of a group runs one block per
    # round, so drift of the machine hits every cell alike and ratios are paired round by round.
    min_rounds: int = Field(10, ge=2, description="rounds at least; each cell runs one block per round and shape")
    block_iters: int = Field(2, ge=1, description="timed iterations per block, at least")
    block_time_s: float = Field(0.0, ge=0, description="timed seconds per block, at least")
    block_warmup: int = Field(1, ge=0, description="untimed calls before each block (after another cell ran)")
    min_iters: int = Field(20, ge=1, description="timed iterations per cell and shape over all rounds, at least")
    min_time_s: float = Field(1.0, ge=0, description="timed seconds per cell and shape over all rounds, at least")
    max_time_s: float = Field(60.0, gt=0, description="stop the rounds once a cell has this much timed at a shape")
    target_ci_pct: float | None = Field(
        None, gt=0, description="also go on until every paired ratio's 95% CI half-width is within this %")
    round_order: Literal["rotate", "shuffle"] = Field("rotate", description="cell order from round to round")
    reference_every: int = Field(
        2, ge=0, description="the dense reference runs again after every k of its cells in a round, so each is timed "
                             "beside a reference block (bench.measure.rounds); 0: once per round")
    max_rounds: int | None = Field(None, ge=2, description="stop the rounds after this many, whatever else is unmet")
    max_live_workers: int | None = Field(
        None, ge=2, description="cells alive at once (default: what fits in memory); larger groups run in batches")
    threads: int | None = Field(None, ge=1, description="torch and ONNX Runtime intra-op threads; default: physical cores")
    cpu_affinity: list[int] | None = Field(
        None, description="pin each cell's worker to these CPU ids (os.sched_setaffinity, numactl -C style); "
                          "default: not pinned, the OS places it")
    isolation: Literal["process", "none"] = Field("process", description="each cell in its own process, or all in this one")
    cell_timeout_s: float = Field(3600.0, gt=0, description="a cell still running after this long is killed and failed")
    peaks: Literal["auto", "cached", "off"] = Field(
        "auto", description="device peaks for % of peak: measure once if missing (auto), use only if cached, or none")

    @field_validator("batch_sizes", "seq_lens")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"every value must be >= 1, got {values}")
        return values

    @field_validator("cpu_affinity")
    @classmethod
    def _cores_exist(cls, cores: list[int] | None) -> list[int] | None:
        from bench.run.placement import check_cores

        return None if cores is None else check_cores(cores)

    @field_validator("scenarios")
    @classmethod
    def _something_to_measure(cls, values: list) -> list:
        if not values:
            raise ValueError(f"an empty list measures nothing; give one or more of {', '.join(SCENARIOS)}")
        return values

    @field_validator("dtypes", "backends", "scenarios", "batch_sizes", "seq_lens")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        # A repeated entry would measure the same cell twice under one key.
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"repeated entries: {', '.join(repeated)}")
        return values

    @model_validator(mode="after")
    def _rounds_cap(self) -> "MeasureConfig":
        if self.max_rounds is not None and self.max_rounds < self.min_rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) is below min_rounds ({self.min_rounds}): "
                             "raise max_rounds or lower min_rounds")
        return self


class SweepConfig(_Strict):
    name: str = Field("sweep", pattern=r"^[\w.+-]+$")
    seed: int = 0
    output_dir: str = "runs"
    cache_dir: str | None = Field(None, description="artifacts, exports and tokenizers; else env BENCH_CACHE_DIR or ~/.cache/xglm-bench")
    # ONNX exports stay in the cache (exports/), shared by runs; true: also linked (or copied) into the run's exports/
    keep_exports: bool = False
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    # Training policy per method, between [train] and a variant's own overrides. Prompt tuning wants a far
    # larger learning rate and more epochs than full fine-tuning (P-tuning v2: 5e-3 to 1e-2).
    method_train: dict[Annotated[str, AfterValidator(_registered_method)], TrainOverrides] = Field(
        default_factory=lambda: {"prompt": TrainOverrides(lr=5e-3, epochs=3.0, weight_decay=0.0),
                                 "soft_prompt": TrainOverrides(lr=3e-2, epochs=3.0, weight_decay=0.0),
                                 "lora": TrainOverrides(lr=5e-4, epochs=3.0, weight_decay=0.0)}
    )
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig(name="dense-ft")], min_length=1)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    backend: BackendOptions = Field(default_factory=BackendOptions)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    cost: CostConfig = Field(default_factory=CostConfig)

    @model_validator(mode="after")
    def _unique_variants(self) -> "SweepConfig":
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        for v in self.variants:
            self.train_for(v)  # validates the overrides now, not mid-sweep
        from bench.build.graph import base_problem

        problem = base_problem(self.variants)  # unknown base, cycle, a base that is not a full model
        on_base = next((v.name for v in self.variants if v.base), None)
        if not problem and on_base and self.executor.kind == "ray":  # Ray builds every seed at once, bases included
            problem = (f"variant '{on_base}': base needs executor.kind = 'local' for now (on Ray a base would be trained "
                       "again beside the variants built on it)")
        if problem:
            raise ValueError(problem)
        return self

    def train_for(self, variant: VariantConfig) -> TrainConfig:
        """[train], then the method's policy ([method_train.<method>]), then the variant's own overrides."""
        policy = self.method_train.get(variant.method) or TrainOverrides()
        return TrainConfig.model_validate({**self.train.model_dump(), **policy.model_dump(exclude_none=True),
                                           **variant.train.model_dump(exclude_none=True)})

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


def parse_config(data: dict[str, Any], origin: str = "config") -> SweepConfig:
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{origin}: {first_error(exc, SweepConfig)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read a TOML sweep file, apply dotted overrides ({"measure.device": "cuda"}), validate."""
    return parse_config(with_overrides(read_toml(Path(path)), overrides or {}), origin=str(path))


def packaged_config(name: str = "default") -> Path:
    """A config shipped with the project: bench/configs in a wheel, configs/ in a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "configs", here.parent / "configs"):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    raise BenchError(f"no packaged config named '{name}'")
