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


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A tiny synthetic VerSe-layout dataset (4 scans, ``small`` preset, seed 0); its root."""
    from spinefx.synthesis import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "dataset"
    return generate_dataset(root, n_scans=4, seed=0, preset="small")
