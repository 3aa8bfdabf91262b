"""Sweep configuration: pydantic models validated where they are built, read from and written to TOML.

A bad value is reported as one line naming the field, what is allowed and what was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, create_model, field_validator, model_validator

from bench import plugins
from bench.config.toml import first_error, read_toml, toml_path, with_overrides
from bench.config.variants import VariantConfig, make_variant, registered_method
from bench.plugins.variant import TrainConfig, TrainOverrides, VariantBase
from bench.plugins.spec import Strict as _Strict
from bench.data.tasks import xglm_language_groups
from bench.errors import BenchError

Dtype = Literal["fp32", "tf32", "fp16", "bf16"]
SCENARIOS = ("latency", "throughput", "memory", "accuracy")


class ModelConfig(_Strict):
    source: str = Field("random:small", description="hub id, local directory, or random:<tiny|small|564M>")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per encoded pair, truncated longest-first")
    trust_remote_code: bool = Field(False, description="let transformers run a hub model's own code (off unless asked)")


class DataConfig(_Strict):
    tasks: list[Literal["xnli", "pawsx"]] = Field(default_factory=lambda: ["xnli"], min_length=1,
                                                description="the tasks every variant is trained and evaluated on")
    source: Literal["auto", "hub", "local", "synthetic"] = Field(
        "auto", description="where rows come from; auto: the hub, then data_dir, then a synthetic set")
    data_dir: str | None = Field(None, description="official layouts; else env BENCH_DATA_DIR")
    languages: list[str] | Literal["all"] = Field(
        "all", description="evaluation languages; all: every language the source has")
    eval_split: Literal["test", "dev"] = Field("test", description="the split accuracy is measured on")
    max_train_samples: int | None = Field(None, ge=1, description="a seeded subset of the training rows; default: all")
    max_eval_per_language: int | None = Field(
        None, ge=1, description="a seeded subset of each language's evaluation rows, the same rows for every language; "
                                "default: all")
    # Resource level of each of XGLM's 30 pre-training languages (bench.data.tasks): the grouping the study reports
    # accuracy by. Languages in no group are reported ungrouped.
    language_groups: dict[str, list[str]] = Field(
        default_factory=lambda: xglm_language_groups(),
        description="group name -> languages, for per-group accuracy; default: high / medium / low by share of "
                    "XGLM's pre-training tokens")


def _backend_options():
    """[backend]: the attention path every backend runs, and one section per backend that declares options."""
    sections = {name: (spec.options, Field(default_factory=spec.options, description=spec.description))
                for name, spec in plugins.backends().items() if spec.options is not None}
    return create_model(
        "BackendOptions", __base__=_Strict,
        # causal: no padding mask where none is needed (right padding, last real token pooled): is_causal, or the
        # bottom-right causal mask with a prefix. masked: the [B, 1, T, P+T] padding mask on every path.
        attention=(Literal["causal", "masked"], Field("causal", description="causal: no padding mask where right "
                                                      "padding needs none; masked: the padding mask on every path")),
        **sections,
    )


BackendOptions = _backend_options()
BackendName = Annotated[str, AfterValidator(plugins.check_backend_name)]


class MeasureConfig(_Strict):
    device: str = Field("cpu", pattern=r"^(cpu|cuda|cuda:\d+)$", description="cpu, cuda or cuda:N (torch's CUDA index)")
    dtypes: list[Dtype] = Field(default_factory=lambda: ["fp32"], min_length=1,
                                description="precisions measured; tf32 needs CUDA with compute capability >= 8.0")
    backends: list[BackendName] = Field(default_factory=lambda: ["eager", "compile", "onnxruntime"], min_length=1,
                                        description="backends, or <backend>:<mode> for a mode as a backend of its own")
    scenarios: list[Literal["latency", "throughput", "memory", "accuracy"]] = Field(
        default_factory=lambda: list(SCENARIOS), description="what is measured for every cell")
    batch_sizes: list[int] = Field(default_factory=lambda: [8], min_length=1,
                                   description="batch sizes of the latency and memory shapes (each >= 1)")
    seq_lens: list[int] = Field(default_factory=lambda: [128], min_length=1,
                                description="sequence lengths of the latency and memory shapes (each >= 1)")
    throughput_batch_size: int = Field(32, ge=1, description="batch size of the pass over the evaluation set")
    warmup_iters: int = Field(5, ge=0, description="untimed calls per shape before the first round")
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
        None, gt=0, description="also go on until every paired ratio (vs dense and vs eager) resolves this %: its "
                                "minimum detectable effect (the wider side of its >= 95 % interval) within it")
    aa_control: Literal["one", "all", "off"] = Field(
        "one", description="A/A twin of the dense reference (same artifact, a worker of its own) in every group: on "
                           "the group's first backend (one), on every backend (all), or none (off); its interval "
                           "half-width is the run's resolution floor (resolution_pct)")
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
        from bench.config.cores import check_cores

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

    @model_validator(mode="after")
    def _backends_serve(self) -> "MeasureConfig":
        """Each backend's declaration says which devices and dtypes it runs (BackendSpec.devices / dtypes)."""
        device = self.device.partition(":")[0]
        for name in self.backends:
            spec = plugins.backend(name)
            if device not in spec.devices:
                raise ValueError(f"backend '{name}' runs on {', '.join(spec.devices)}, not {device}")
            missing = [d for d in self.dtypes if d not in spec.dtypes]
            if missing:
                raise ValueError(f"backend '{name}' runs {', '.join(spec.dtypes)}, not {', '.join(missing)}")
        return self


class ExecutorConfig(_Strict):
    """Where the comparison groups run: on this machine (local), or as Ray tasks on a cluster (pip extra 'ray')."""

    kind: Literal["local", "ray"] = Field("local", description="local: this machine; ray: a Ray cluster, one group per device")
    address: str | None = Field(None, description="ray: the cluster to join ('auto', 'ray://host:10001', host:port); "
                                                  "default $RAY_ADDRESS, else a Ray instance on this machine")
    max_retries: int = Field(1, ge=0, le=10, description="ray: a group whose worker or node is lost runs again this often")
    artifacts: Literal["auto", "shared", "object-store"] = Field(
        "auto", description="ray: how artifacts reach the groups: the cache directory when every node sees it "
                            "(auto checks), or Ray's object store")

    @model_validator(mode="after")
    def _ray_options(self) -> "ExecutorConfig":
        if self.kind == "local" and self.address is not None:
            raise ValueError("address applies to kind 'ray' (bench run --executor ray --ray-address ADDR)")
        return self


class CostConfig(_Strict):
    """What the hardware of a run costs, recorded with the run for `bench compare` (which --price overrides)."""

    usd_per_hour: float | None = Field(None, gt=0, description="price of what one group occupies (a GPU, or the CPU "
                                                              "cores of measure.threads), US dollars per hour")
    note: str | None = Field(None, description="where the price comes from, e.g. 'on-demand, 1 of 8 GPUs'")


class SweepConfig(_Strict):
    name: str = Field("sweep", description="the run directory's suffix: letters, digits, _, ., + and -")
    seed: int = Field(0, description="seed of data subsampling, initialisation and training")
    output_dir: str = Field("runs", description="where run directories go")
    cache_dir: str | None = Field(None, description="artifacts, exports and tokenizers; else env BENCH_CACHE_DIR or ~/.cache/xglm-bench")
    # ONNX exports stay in the cache (exports/), shared by runs; true: also linked (or copied) into the run's exports/
    keep_exports: bool = Field(False, description="also link (or copy) the ONNX exports a run used into its exports/")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the backbone every variant starts from")
    data: DataConfig = Field(default_factory=DataConfig, description="tasks, data source and languages")
    train: TrainConfig = Field(default_factory=TrainConfig,
                               description="the training settings every variant starts from")
    # Training policy per method, between [train] and a variant's own overrides. Prompt tuning wants a far
    # larger learning rate and more epochs than full fine-tuning (P-tuning v2: 5e-3 to 1e-2).
    method_train: dict[Annotated[str, AfterValidator(registered_method)], TrainOverrides] = Field(
        default_factory=lambda: {"prompt": TrainOverrides(lr=5e-3, epochs=3.0, weight_decay=0.0),
                                 "soft_prompt": TrainOverrides(lr=3e-2, epochs=3.0, weight_decay=0.0),
                                 "lora": TrainOverrides(lr=5e-4, epochs=3.0, weight_decay=0.0)},
        description="a method's training policy, between [train] and a variant's own train overrides",
    )
    variants: list[VariantConfig] = Field(default_factory=lambda: [make_variant(name="dense-ft")], min_length=1,
                                          description="the variants to build and measure, one entry each")
    measure: MeasureConfig = Field(default_factory=MeasureConfig, description="device, backends, shapes and the "
                                                                              "stopping rule of the measurement")
    backend: BackendOptions = Field(default_factory=BackendOptions, description="the backends' own options")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="where the comparison groups run")
    cost: CostConfig = Field(default_factory=CostConfig, description="what the hardware costs, for bench compare")

    @field_validator("name")
    @classmethod
    def _directory_name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[\w.+-]+", value) or value in (".", ".."):
            raise ValueError("a run name becomes a directory name: use letters, digits, _, ., + and - only "
                             "(no '/', no spaces), and not '.' or '..'")
        return value

    @model_validator(mode="after")
    def _unique_variants(self) -> "SweepConfig":
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        for v in self.variants:
            self.train_for(v)  # validates the overrides now, not mid-sweep
        from bench.config.bases import base_problem

        problem = base_problem(self.variants)  # unknown base, cycle, a base that is not a full model
        on_base = next((v.name for v in self.variants if getattr(v, "base", None)), None)
        if not problem and on_base and self.executor.kind == "ray":  # Ray builds every seed at once, bases included
            problem = (f"variant '{on_base}': base needs executor.kind = 'local' for now (on Ray a base would be trained "
                       "again beside the variants built on it)")
        if problem:
            raise ValueError(problem)
        return self

    def train_for(self, variant: VariantBase) -> TrainConfig:
        """[train], then the method's policy ([method_train.<method>]), then the variant's own overrides."""
        policy = self.method_train.get(variant.method) or TrainOverrides()
        return TrainConfig.model_validate({**self.train.model_dump(), **policy.model_dump(exclude_none=True),
                                           **variant.train.model_dump(exclude_none=True)})

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


def parse_config(data: dict[str, Any], origin: str = "config", flags: dict[str, str] | None = None) -> SweepConfig:
    """Validate; a bad value is one line naming where it came from: the command-line option that set it (`flags`
    maps a dotted key to its option, e.g. {"name": "--name"}), else `origin` (the config file)."""
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        loc = toml_path(tuple(part for part in exc.errors()[0]["loc"] if part != "[key]"))
        flag = next((f for key, f in (flags or {}).items() if loc == key or loc.startswith((f"{key}.", f"{key}["))),
                    None)
        where = f"command-line option {flag}" if flag else origin
        raise BenchError(f"{where}: {first_error(exc, SweepConfig)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                flags: dict[str, str] | None = None) -> SweepConfig:
    """Read a TOML sweep file, apply dotted overrides ({"measure.device": "cuda"}), validate; `flags` names the
    command-line option of each override, for the error line."""
    return parse_config(with_overrides(read_toml(Path(path)), overrides or {}), origin=str(path), flags=flags)


def packaged_config(name: str = "default") -> Path:
    """A config shipped with the project: bench/configs in a wheel, configs/ in a source checkout."""
    package = Path(__file__).resolve().parents[1]  # bench/
    for folder in (package / "configs", package.parent / "configs"):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    raise BenchError(f"no packaged config named '{name}'")
