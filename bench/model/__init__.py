"""Model: where backbones come from (hub id, local directory, random preset), the XGLM sequence classifier, and
its SDPA attention with a per-layer prefix slot. Knows nothing of training, backends or timing."""
