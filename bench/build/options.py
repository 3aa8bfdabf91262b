"""Which variant options apply to which method, and what they must be: the checks VariantConfig runs on sparsity,
soft prompts, LoRA, P-tuning v2 and `base`. Pure Python (config validation stays light); each check returns one
line saying what is wrong and how to fix it, or None."""

from __future__ import annotations

from typing import Any

from bench.errors import did_you_mean

SPARSE_METHODS = ("unstructured", "semi24", "structured", "block")
SPARSITY_OPTIONS = ("sparsity", "sparsity_scope", "importance", "schedule", "gradual_fraction",
                    "structured_iterative_steps", "sparsity_include", "block_shape")
# Methods whose weights are masked in place, which sparse kernels can serve (structured has smaller dense shapes).
MASKED_METHODS = ("unstructured", "semi24", "block")
# Options of how a variant's weights run, not of what they are: left out of the recipe (the artifact is shared).
REALISATION_OPTIONS = ("kernels",)
DEFAULT_KERNELS = ("auto",)
# The decoder-layer linears LoRA can adapt, by the names PEFT's target_modules would use on XGLM.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
# Options whose unset value (None) stands for the default, left out of recipes so older recipes keep their hash.
PEFT_OPTIONS = ("base", "soft_prompt_inference", "soft_prompt_init", "lora_rank", "lora_alpha", "lora_dropout",
                "lora_targets", "lora_merge")
# Methods trained on a frozen model that `base` may name instead of the pretrained backbone.
ON_BASE_METHODS = ("prompt", "soft_prompt", "lora")


def peft_problem(v: Any) -> str | None:
    """What is wrong with a variant's prompt, soft-prompt, LoRA or base options (v: a VariantConfig), or None."""
    where = f"variant '{v.name}'"
    if v.method == "prompt":
        if v.prompt_length is None and v.prefix_artifact is None:
            return f"{where}: method 'prompt' needs prompt_length (1 to 128) or prefix_artifact"
    elif v.method == "soft_prompt":
        if v.prompt_length is None:
            return f"{where}: method 'soft_prompt' needs prompt_length (1 to 128 embeddings in front of the input)"
        if v.prompt_mlp or v.prefix_artifact is not None:
            return f"{where}: prompt_mlp and prefix_artifact apply to method 'prompt' (P-tuning v2), not 'soft_prompt'"
    elif v.prompt_length is not None or v.prefix_artifact is not None or v.prompt_mlp:
        return f"{where}: prompt_* options apply to method 'prompt' (prompt_length also to 'soft_prompt'), not '{v.method}'"
    for prefix, method in (("soft_prompt_", "soft_prompt"), ("lora_", "lora")):
        given = [f for f in PEFT_OPTIONS if f.startswith(prefix) and getattr(v, f) is not None]
        if given and v.method != method:
            return f"{where}: {', '.join(given)} apply to method '{method}', not '{v.method}'"
    if v.lora_targets is not None:
        unknown = [t for t in v.lora_targets if t not in LORA_TARGETS]
        if unknown:
            return f"{where}: {did_you_mean(unknown[0], LORA_TARGETS, 'LoRA target')} (linears of every decoder layer)"
        repeated = sorted({t for t in v.lora_targets if v.lora_targets.count(t) > 1})
        if repeated:
            return f"{where}: repeated LoRA targets {', '.join(repeated)}"
    if v.base is not None and v.method not in ON_BASE_METHODS:
        return (f"{where}: base applies to methods {', '.join(ON_BASE_METHODS)} (trained on another variant's frozen "
                f"model), not '{v.method}'")
    return None


def sparsity_problem(v: Any) -> str | None:
    """What is wrong with a variant's sparsity options (v: a VariantConfig), or None."""
    given = [f for f in SPARSITY_OPTIONS if getattr(v, f) is not None]
    where = f"variant '{v.name}'"
    if v.method not in SPARSE_METHODS:
        return f"{where}: {', '.join(given)} apply to methods {', '.join(SPARSE_METHODS)}, not '{v.method}'" if given else None
    if v.method == "semi24":
        if v.sparsity not in (None, 0.5):
            return f"{where}: method 'semi24' keeps 2 of every 4 weights, so sparsity is 0.5 (got {v.sparsity})"
    elif v.sparsity is None:
        return f"{where}: method '{v.method}' needs sparsity (a fraction in [0, 1))"
    only = {  # option -> the methods it applies to
        "sparsity_scope": ("unstructured", "structured", "block"), "schedule": ("unstructured", "block"),
        "gradual_fraction": ("unstructured", "block"), "structured_iterative_steps": ("structured",),
        "sparsity_include": ("unstructured", "semi24"), "block_shape": ("block",),
    }
    for option, methods in only.items():
        if getattr(v, option) is not None and v.method not in methods:
            return f"{where}: {option} applies to method {' and '.join(methods)}, not '{v.method}'"
    if v.gradual_fraction is not None and v.schedule != "gradual":
        return f"{where}: gradual_fraction applies to schedule 'gradual' only"
    if v.block_shape is not None and min(v.block_shape) < 1:
        return f"{where}: block_shape must be two positive integers [rows, columns], got {list(v.block_shape)}"
    return None


def kernel_problem(v: Any) -> str | None:
    """What is wrong with a variant's `kernels` (v: a VariantConfig), or None. What depends on the device, dtype and
    shapes (bf16 CSR on the CPU, a block that does not divide a weight) is preflight's (bench.run.plan)."""
    if v.kernels is None:
        return None
    where = f"variant '{v.name}'"
    if v.method not in MASKED_METHODS:
        return (f"{where}: kernels apply to the masked methods {', '.join(MASKED_METHODS)}, not '{v.method}' "
                "(structured pruning runs smaller dense shapes)")
    repeated = sorted({k for k in v.kernels if v.kernels.count(k) > 1})
    if repeated:
        return f"{where}: repeated kernels {', '.join(repeated)}"
    if "bsr" in v.kernels and v.method != "block":
        return f"{where}: kernel bsr serves block-sparse weights (method 'block'); csr or auto serve '{v.method}'"
    if "2:4" in v.kernels and v.method != "semi24":
        return f"{where}: kernel 2:4 serves 2:4 masks (method 'semi24'); csr or auto serve '{v.method}'"
    return None


def kernel_cells(v: Any) -> list[tuple[str, str]]:
    """(cell variant name, kernel) of every cell a variant is measured as: a masked variant as its masked-dense
    control under its own name (kernel dense) and through each of its kernels as '<name>@<kernel>' (default: auto),
    all from the one artifact; any other variant as itself. '@' is not allowed in a variant's name, so these never
    collide with another variant's."""
    if v.method not in MASKED_METHODS:
        return [(v.name, None)]
    kernels = v.kernels if v.kernels is not None else DEFAULT_KERNELS
    return [(v.name, "dense"), *((f"{v.name}@{k}", k) for k in kernels)]
