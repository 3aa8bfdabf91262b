"""Run: a sweep from config to records. Preflight and planning, the order of cells, the cell process, record
assembly, the run directory (store) and the environment fingerprint."""
