"""The parameter-efficient methods' declarations: P-tuning v2 (`prompt`), soft prompts (`soft_prompt`) and LoRA
(`lora`), each trained on a frozen model: the pretrained backbone, or the variant named by `base`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.plugins.variant import VariantBase
from bench.errors import did_you_mean
from bench.plugins.spec import MethodSpec, Style

# The decoder-layer linears LoRA can adapt, by the names PEFT's target_modules would use on XGLM.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


class _OnBase(VariantBase):
    base: str | None = Field(None, description="the variant whose artifact this one is trained on, frozen (default: the pretrained backbone)")


class PromptVariant(_OnBase):
    method: Literal["prompt"] = "prompt"
    prompt_length: int | None = Field(None, ge=1, le=128, description="prefix length P (needed unless prefix_artifact is given)")
    prompt_mlp: bool = Field(False, description="train the prefix through an MLP, folded away afterwards")
    prompt_mlp_hidden: int = Field(512, ge=1, description="hidden width of that MLP")
    prompt_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the prefix during training")
    prefix_artifact: str | None = Field(None, description="reuse a trained prompt artifact instead of training")

    @model_validator(mode="after")
    def _length(self):
        if self.prompt_length is None and self.prefix_artifact is None:
            raise ValueError(f"variant '{self.name}': method 'prompt' needs prompt_length (1 to 128) or prefix_artifact")
        return self


class SoftPromptVariant(_OnBase):
    method: Literal["soft_prompt"] = "soft_prompt"
    prompt_length: int | None = Field(None, ge=1, le=128, description="P embeddings in front of the input (needed)")
    soft_prompt_inference: Literal["input", "kv"] | None = Field(None, description="input: run the P embeddings through every layer (default); kv: fold them into per-layer keys and values")
    soft_prompt_init: Literal["vocab", "random"] | None = Field(None, description="embeddings of P sampled vocabulary tokens (default) or N(0, 1)")

    @model_validator(mode="after")
    def _length(self):
        if self.prompt_length is None:
            raise ValueError(f"variant '{self.name}': method 'soft_prompt' needs prompt_length (1 to 128 embeddings in "
                             "front of the input)")
        return self


class LoraVariant(_OnBase):
    method: Literal["lora"] = "lora"
    lora_rank: int | None = Field(None, ge=1, le=4096, description="r (default 8)")
    lora_alpha: float | None = Field(None, gt=0, description="the update is scaled by alpha / r (default 8, PEFT's)")
    lora_dropout: float | None = Field(None, ge=0, lt=1, description="dropout on the adapters' input while training (default 0)")
    lora_targets: list[str] | None = Field(None, min_length=1, description=f"of {', '.join(LORA_TARGETS)} (default q_proj, v_proj)")
    lora_merge: bool | None = Field(None, description="merge W + scaling x BA into the weights for inference (default true)")

    @model_validator(mode="after")
    def _targets(self):
        where = f"variant '{self.name}'"
        if self.lora_targets is not None:
            unknown = [t for t in self.lora_targets if t not in LORA_TARGETS]
            if unknown:
                raise ValueError(f"{where}: {did_you_mean(unknown[0], LORA_TARGETS, 'LoRA target')} (linears of every decoder layer)")
            repeated = sorted({t for t in self.lora_targets if self.lora_targets.count(t) > 1})
            if repeated:
                raise ValueError(f"{where}: repeated LoRA targets {', '.join(repeated)}")
        return self


_PEFT = dict(parameter_efficient=True, trains_on_base=True)

PROMPT = MethodSpec(
    name="prompt", variant=PromptVariant, build="prompts.ptuning:build", load="prompts.ptuning:load",
    description="P-tuning v2: a trainable prefix of keys and values in every layer, folded for inference",
    architecture="prompt", adds_prompt=True, style=Style("P-tuning v2 (layer-wise)", "#0072B2"), **_PEFT,
)
SOFT_PROMPT = MethodSpec(
    name="soft_prompt", variant=SoftPromptVariant, build="prompts.soft:build", load="prompts.soft:load",
    description="soft prompt: P trainable embeddings in front of the input (Lester et al.)",
    architecture="soft_prompt", adds_prompt=True, style=Style("soft prompt (input-only)", "#56B4E9"), **_PEFT,
)
LORA = MethodSpec(
    name="lora", variant=LoraVariant, build="prompts.lora_variant:build", load="prompts.lora_variant:load",
    description="LoRA: low-rank updates of chosen linears (Hu et al.), merged into the weights by default",
    architecture="lora", style=Style("LoRA", "#009E73"), **_PEFT,
)
