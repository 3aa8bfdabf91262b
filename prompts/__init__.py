"""P-tuning v2 prefixes: encoder, training policy, folding into static per-layer K/V. Never times anything."""
