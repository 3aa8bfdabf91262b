"""Sparsity methods (masks, 2:4, structured pruning) and sparsity accounting. Never times anything."""
