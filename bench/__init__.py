"""xglm-bench: inference-efficiency benchmarking of prompt-tuned and sparse fine-tuned XGLM models.

The pipeline: sweep config -> variants -> artifacts -> runners (one per backend) -> records -> reports.
Importing this package stays light: no torch, onnxruntime, matplotlib or torch-pruning at import time.
"""

import os

__version__ = "0.1.0"

# onnxruntime (1.2x+) writes a telemetry store, ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db},
# (Microsoft's 1DS event SDK, SQLite) whenever it is imported, outside the run directory and the cache. This variable,
# read by its native library, turns that off; set here, before any import of onnxruntime, and inherited by the cell
# worker processes. A user who sets it (to 0) keeps their own choice.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# transformers imports torchao whenever it is installed (its quantizer registry), in every process: torchao then logs
# that the CUDA-only extensions of its wheel do not load on a CPU build, and torch that torchao registers enums it
# now supports natively. Neither says anything about a run; both are raised to errors only here, before any import.
import logging  # noqa: E402

for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
