"""Run: a sweep from config to records. Preflight and planning, the order of cells, the cell process, the
executors (this machine or a Ray cluster), record assembly, the run directory (store) and the environment
fingerprint."""
