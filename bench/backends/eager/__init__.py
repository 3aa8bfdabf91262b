"""Eager PyTorch: the model as it is, on the target's device and dtype; the reference every backend is compared to."""

from bench.plugins.spec import BackendSpec, Style

SPEC = BackendSpec(
    name="eager", prepare="bench.backends.eager.runner:prepare",
    description="eager PyTorch: the module as it is, placed on the target's device in its dtype",
    style=Style("eager", marker="o", line="-"),
)
