"""How reports name and colour each fine-tuning method: every table label, legend and plot colour comes from the
method's declaration (MethodSpec.style, bench.plugins), so a plug-in method is drawn like a built-in one.

A variant's label says its method, the options that matter for cost (prompt length, how a soft prompt runs,
LoRA rank and whether it is merged, sparsity) and, for a variant trained on another one, that base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import plugins

Record = dict[str, Any]


@dataclass(frozen=True)
class MethodStyle:
    name: str  # what legends call the method
    colour: str


# Okabe-Ito colours in the declarations (distinguishable with colour-vision deficiency); black for the reference.
METHOD_STYLES: dict[str, MethodStyle] = {n: MethodStyle(s.style.label, s.style.colour) for n, s in plugins.methods().items()}
UNKNOWN = MethodStyle("other", "#999999")
PEFT_METHODS = plugins.methods_where("parameter_efficient")  # a frozen model plus what trains
SPARSE_METHODS = plugins.methods_where("sparse")
PROMPT_METHODS = plugins.methods_where("adds_prompt")


def method_style(method: Any) -> MethodStyle:
    return METHOD_STYLES.get(method, MethodStyle(str(method), UNKNOWN.colour))


def method_label(record: Record) -> str:
    """'prompt P=16 +mlp', 'soft prompt P=16 kv', 'LoRA r=8 unmerged', 'structured 50%', '... on structured 50%';
    a precision cell's label ends with its precision ('structured 50% int8')."""
    label = _realised_label(record)
    return f"{label} {record['quantization']}" if record.get("quantization") else label


def _realised_label(record: Record) -> str:
    method = record.get("method") or "?"
    if method == "prompt":
        text = f"prompt P={record.get('prompt_length')}" + (" +mlp" if record.get("prompt_mlp") else "")
    elif method == "soft_prompt":
        text = f"soft prompt P={record.get('prompt_length')}" + (" kv" if record.get("soft_prompt_inference") == "kv" else "")
    elif method == "lora":
        text = f"LoRA r={record.get('lora_rank')}" + (" unmerged" if record.get("lora_merged") is False else "")
    elif record.get("sparsity"):
        kernel = record.get("sparse_kernel")
        return f"{method} {record['sparsity']:.0%}" + (f" {kernel}" if kernel and kernel != "dense" else "")
    else:
        return method
    base = record.get("base_method")
    if base:
        text += f" on {base}" + (f" {record['sparsity']:.0%}" if record.get("sparsity") else "")
    return text
