"""The packaged voxel config files are the presets (a user's --config starts from them)."""

from __future__ import annotations

from importlib import resources

import pytest

from spinefx.config import load_config
from spinefx.training.voxel import VoxelTrainingConfig, voxel_preset


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_packaged_yaml_equals_the_preset(name):
    path = resources.files("spinefx.configs") / f"voxel_{name}.yaml"
    with resources.as_file(path) as file:
        assert load_config(file, VoxelTrainingConfig) == voxel_preset(name)
