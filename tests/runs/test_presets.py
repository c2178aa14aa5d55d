"""One preset mechanism for both methods: packaged YAML files, overrides, InputError."""

from __future__ import annotations

import dataclasses

import pytest

from spinefx.errors import InputError
from spinefx.runs.configs import (
    PatchTrainingConfig,
    VoxelTrainingConfig,
    load_preset,
    load_training_config,
    voxel_preset,
)


def test_voxel_paper_preset_is_the_papers_regime_and_cpu_is_small():
    paper, cpu = voxel_preset("paper"), voxel_preset("cpu")
    assert paper == VoxelTrainingConfig()  # the dataclass defaults are DeepMedic's/the paper's
    assert (paper.epochs, paper.subepochs, paper.segments_per_subepoch) == (35, 20, 1000)
    assert cpu.model.input_spacing_mm == 2.0 and cpu.model.intensity_normalisation == "ct"
    assert cpu.epochs * cpu.subepochs * cpu.segments_per_subepoch == 6000


def test_patch_presets_load_through_the_same_mechanism():
    assert load_training_config("cpu") == load_preset("patch", "cpu")
    assert load_preset("patch", "cpu").model.patch_size_vox == 32
    assert load_preset("patch", "paper").model.patch_size_vox == 96


def test_overrides_merge_into_nested_preset_values():
    config = load_preset("voxel", "cpu", seed=7, model={"variant": "1slice"})
    assert config.seed == 7 and config.model.variant == "1slice"
    assert config.model.input_spacing_mm == 2.0  # the preset's nested value is kept


def test_a_yaml_file_is_a_preset(tmp_path):
    from spinefx.config import save_config

    path = tmp_path / "mine.yaml"
    save_config(dataclasses.replace(voxel_preset("cpu"), epochs=3), path)
    assert load_preset("voxel", path).epochs == 3


@pytest.mark.parametrize(
    ("kind", "source", "overrides"),
    [
        ("voxel", "cpu", {"epochs": 0}),
        ("voxel", "cpu", {"batch_size": 1}),
        ("voxel", "cpu", {"no_such_key": 1}),
        ("patch", "cpu", {"threshold": 1.5}),
        ("patch", "cpu", {"max_epochs": 0}),
        ("patch", "nonexistent", {}),
        ("nonsense", "cpu", {}),
    ],
)
def test_every_bad_setting_is_an_input_error(kind, source, overrides):
    with pytest.raises(InputError):
        load_preset(kind, source, **overrides)


def test_direct_construction_refuses_bad_values_with_input_error():
    with pytest.raises(InputError, match="batch_size"):
        PatchTrainingConfig(batch_size=1)
    with pytest.raises(InputError, match="validation_fraction"):
        VoxelTrainingConfig(validation_fraction=1.0)
