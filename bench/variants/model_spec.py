"""A benchmark model named by a ModelSpec (the pytest plugin's unit): a random or hub backbone with an untrained
head, a method built by its registered builder after one training step, or an artifact written by `bench run`.

Imported by the pytest plugin in every pytest run, so torch and the harness are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.model.classifier import XGLMClassifier
    from bench.model.source import ModelSource


@dataclass(frozen=True)
class ModelSpec:
    """What to benchmark. source: `random:<preset>`, a hub id or save_pretrained directory (untrained head), or an
    artifact directory written by `bench run` (loaded as trained). method: a registered method's name (bench.plugins); other
    than dense it is built by its registered builder after one training step on random ids, with `options`
    (VariantConfig fields, e.g. {"prompt_length": 16}). prefix_length: fill every layer's prefix slot with random
    K/V of that length, the inference cost of a folded P-tuning v2 prefix."""

    source: str = "random:tiny"
    method: str = "dense"
    options: dict[str, Any] = field(default_factory=dict)
    prefix_length: int = 0
    num_labels: int = 3
    seed: int = 0

    @property
    def key(self) -> tuple:
        options = tuple(sorted(self.options.items()))
        return (self.source, self.method, options, self.prefix_length, self.num_labels, self.seed)


def build_model(spec: ModelSpec) -> tuple[XGLMClassifier, dict[str, Any]]:
    import torch

    from bench.variants.artifacts import META_FILE, Artifact
    from bench.errors import BenchError
    from bench.model.classifier import XGLMClassifier, count_parameters
    from bench.model.source import ModelSource, load_backbone

    path = Path(spec.source).expanduser()
    if (path / META_FILE).is_file():
        if spec.method != "dense" or spec.options:
            raise BenchError(f"'{spec.source}' is an artifact: it brings its own method; give no method nor options")
        artifact = Artifact.open(path)
        recipe = artifact.meta["recipe"]
        model, method, variant = artifact.load_model(), recipe["method"], recipe["variant"]
        random_weights = str(recipe["model"]).startswith("random:")
    else:
        source = ModelSource.parse(spec.source)
        method, variant, random_weights = spec.method, spec.method, source.random_weights
        if spec.method == "dense" and not spec.options:
            backbone = load_backbone(source, seed=spec.seed)
            torch.manual_seed(spec.seed)
            # Untrained head: timing does not depend on trained values, and parity compares the same weights.
            model = XGLMClassifier(backbone, spec.num_labels).eval()
        else:
            model = _variant_model(spec, source)
    if spec.prefix_length:
        fill_prefix(model, spec.prefix_length, spec.seed)
        variant += f"+prefix{spec.prefix_length}"
    total, trainable = count_parameters(model)
    info = {
        "model": spec.source, "variant": variant, "method": method, "prompt_length": model.prefix_length,
        "random_weights": random_weights, "params_total": total, "params_trainable": trainable,
    }
    return model, info


def _variant_model(spec: ModelSpec, source: ModelSource) -> XGLMClassifier:
    """A method's own builder, trained one step on random ids: timing needs its shapes, not a useful accuracy."""
    import torch

    from bench.config import TrainConfig, make_variant
    from bench import plugins
    from bench.model.source import backbone_config
    from bench.data.tasks import TaskSpec
    from bench.variants.context import BuildContext
    from bench.variants.registry import builder

    plugins.method(spec.method)  # an unknown method: one line with "did you mean"
    config = backbone_config(source)
    g = torch.Generator().manual_seed(spec.seed)
    rows = torch.randint(4, config.vocab_size, (8, 16), generator=g).tolist()  # 4: past XGLM's special tokens
    labels = torch.randint(0, spec.num_labels, (8,), generator=g).tolist()
    task = TaskSpec("benchmark", tuple(f"label{i}" for i in range(spec.num_labels)), ("en",), hub_id="")
    ctx = BuildContext(
        variant=make_variant(name=spec.method, method=spec.method, **spec.options), task=task, source=source,
        train=TrainConfig(steps=1, batch_size=8), seed=spec.seed, backbone_seed=spec.seed, train_ids=rows,
        train_labels=labels, pad_id=config.pad_token_id, device=torch.device("cpu"),
    )
    return builder(spec.method)(ctx).model.cpu().eval()


def fill_prefix(model: XGLMClassifier, length: int, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    for attn in model.attentions:
        shape = (1, attn.num_heads, length, attn.head_dim)  # [1, H, P, Dh]
        attn.set_prefix(torch.randn(shape, generator=g), torch.randn(shape, generator=g))


def realize_for(model: XGLMClassifier, method: str, target: Any, backend: str) -> tuple[Any, dict[str, Any]]:
    """The module a backend should prepare for this method and target, as the sweep's cells get it: the same
    registered realisation step (bench.variants.registry.realize), so a 2:4 model meets sparse tensor cores on CUDA
    instead of running dense zeros; with the record fields that say how it runs (`speedup_mechanism`)."""
    from bench.variants.registry import realize

    return realize(model, method, target, backend)
