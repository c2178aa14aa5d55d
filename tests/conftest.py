"""Shared fixtures: real CT samples (skipped when absent) and tiny synthetic data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("SPINEFX_PROGRESS", "0")

# Tests write only to temporary folders: no example database, and Hypothesis's other caches
# (it keeps constants of the tested modules) in a folder of this session, not ./.hypothesis.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="spinefx-hypothesis-")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_HOME)
settings.register_profile("spinefx", database=None)
settings.load_profile("spinefx")

REAL_DATA = Path(
    os.environ.get(
        "SPINEFX_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    )
)


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


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


# tiny untrained runs of both methods, written with the real run-directory code
def _tiny_patch_config():
    from spinefx.models import PatchClassifierConfig
    from spinefx.runs.configs import load_preset

    return load_preset("patch", "cpu").replace(
        model=PatchClassifierConfig(
            widths=(2, 2, 2, 2),
            patch_size_vox=16,
            spacing_mm=6.0,
            head_conv_widths=(2,),
            head_mlp_widths=(4,),
            dropout=0.0,
        ),
        threshold=0.3,
    )


def _write_model(folder, config, *, seed: int, threshold: float = 0.5):
    import torch

    from spinefx.config import save_config
    from spinefx.models import build_model
    from spinefx.runs import RunPaths, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(config.model).eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        RunPaths(folder).checkpoint,
        model,
        config.model,
        epoch=0,
        seed=seed,
        threshold=threshold,
        val_metrics={},
    )
    save_config(config, RunPaths(folder).config)
    return model


def _patch_run(root, *, trials: int = 1):
    from spinefx.config import save_config
    from spinefx.runs import RunPaths

    config = _tiny_patch_config()
    if trials == 1:
        _write_model(root, config, seed=0, threshold=config.threshold)
    else:
        for i in range(trials):
            _write_model(RunPaths(root).trial(i).root, config, seed=i, threshold=config.threshold)
        save_config(config, RunPaths(root).config)
    return root


def _voxel_run(root):
    from spinefx.models.voxel_classifier import VoxelClassifierConfig
    from spinefx.runs.configs import load_preset

    config = load_preset("voxel", "cpu").replace(
        model=VoxelClassifierConfig(target_params=5000, input_spacing_mm=2.0)
    )
    _write_model(root, config, seed=0)
    return root


@pytest.fixture
def patch_run():
    """``patch_run(folder, trials=1)``: a tiny untrained patch-classifier run (16 vox at 6 mm)."""
    return _patch_run


@pytest.fixture
def voxel_run():
    """``voxel_run(folder)``: a tiny untrained voxel-classifier run (cpu preset, 2 mm)."""
    return _voxel_run
