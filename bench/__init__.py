"""xglm-bench: inference-efficiency benchmarking of prompt-tuned and sparse fine-tuned XGLM models.

The pipeline: sweep config -> variants -> artifacts -> runners (one per backend) -> records -> reports.
Importing this package stays light: no torch, onnxruntime, matplotlib or torch-pruning at import time.
"""

__version__ = "0.1.0"
