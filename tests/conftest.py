"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real XNLI / PAWS-X rows: $BENCH_DATA_DIR, else ../shared/data next to the repository."""
    configured = os.environ.get("BENCH_DATA_DIR", "").strip()
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / "XNLI-1.0").is_dir():
        pytest.skip(f"real data not found at {path}; set BENCH_DATA_DIR to the shared data folder")
    return path
