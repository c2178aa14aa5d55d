"""Shared fixtures: real CT samples (skipped when absent) and tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SPINEFX_PROGRESS", "0")

REAL_DATA = Path(
    os.environ.get(
        "SPINEFX_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    )
)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real CT samples (``../shared/data/real``); skips when it is absent."""
    if not (REAL_DATA / "README.md").is_file():
        pytest.skip(f"real CT samples not found at {REAL_DATA} (set SPINEFX_REAL_DATA to use them)")
    return REAL_DATA
