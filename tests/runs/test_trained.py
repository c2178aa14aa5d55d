"""load_trained: one loader for both methods, one ensemble rule, the run's operating point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.runs import RunPaths, load_trained


def test_a_patch_run_loads_with_its_config_and_training_threshold(tmp_path, patch_run):
    run = load_trained(patch_run(tmp_path / "p"))
    assert run.kind == "patch"
    assert run.patch_size_vox == 16 and run.spacing_mm == 6.0
    assert run.threshold == pytest.approx(0.3) and run.threshold_source == "training config"
    assert run.flag(0.31) is True and run.flag(0.29) is False


def test_trials_are_an_ensemble_by_their_mean_and_explained_by_the_first(tmp_path, patch_run):
    import torch

    run = load_trained(patch_run(tmp_path / "p", trials=3))
    assert len(run.models) == 3 and run.trial_dirs[0].name == "trial-0"
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.inference_mode():
        per_trial = [torch.sigmoid(m(x)).numpy() for m in run.models]
    assert not np.allclose(per_trial[0], per_trial[1])  # different seeds, different models
    np.testing.assert_allclose(run.ensemble(per_trial), np.mean(per_trial, axis=0))
    assert run.model is run.models[0]


def test_the_operating_point_file_sets_the_threshold_and_is_reread_when_it_changes(
    tmp_path, patch_run
):
    root = patch_run(tmp_path / "p")
    assert load_trained(root).threshold == pytest.approx(0.3)
    RunPaths(root).operating_point.write_text(json.dumps({"vertebra_threshold": 0.7}))
    run = load_trained(root)
    assert run.threshold == pytest.approx(0.7)
    assert run.threshold_source.endswith("operating_point.json")


def test_a_voxel_run_without_operating_point_flags_nothing_and_says_why(tmp_path, voxel_run):
    run = load_trained(voxel_run(tmp_path / "v"))
    assert run.kind == "voxel" and run.threshold is None and run.flag(0.99) is None
    assert "spinefx crossval --model voxel" in run.operating_point_note
    assert run.spacing_mm == 2.0


@pytest.mark.parametrize(
    ("kind", "expect", "use"), [("voxel", "patch", "detect"), ("patch", "voxel", "predict")]
)
def test_a_run_of_the_other_kind_is_a_clear_error(
    tmp_path, patch_run, voxel_run, kind, expect, use
):
    root = (voxel_run if kind == "voxel" else patch_run)(tmp_path / "run")
    with pytest.raises(InputError, match=f"not a {expect}-classifier run") as err:
        load_trained(root, expect=expect)
    assert f"spinefx {use}" in str(err.value)


def test_missing_and_empty_run_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_trained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint.pt"):
        load_trained(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    RunPaths(bad).checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="checkpoint"):
        load_trained(bad)


def test_weights_without_training_config_load_with_the_models_config(tmp_path, patch_run):
    root = patch_run(tmp_path / "p")
    RunPaths(root).config.unlink()
    run = load_trained(root)
    assert run.config.model.patch_size_vox == 16


def test_apply_operating_point_gives_a_voxel_run_its_threshold(tmp_path, patch_run, voxel_run):
    from spinefx.evaluation.crossval import apply_operating_point

    root = voxel_run(tmp_path / "v")
    source = tmp_path / "cv" / "operating_point.json"
    source.parent.mkdir()
    source.write_text(
        json.dumps(
            {"probability_threshold": 0.4, "noise_threshold_vox": 200, "vertebra_threshold": 0.25}
        )
    )
    apply_operating_point(source, root)
    run = load_trained(root)
    assert run.threshold == pytest.approx(0.25) and run.operating_point_note == ""
    assert run.operating_point["noise_threshold_vox"] == 200
    with pytest.raises(InputError, match="not a voxel-classifier run"):
        apply_operating_point(source, patch_run(tmp_path / "p"))
    with pytest.raises(InputError, match="not finished"):
        apply_operating_point(tmp_path / "cv" / "missing.json", root)


@pytest.mark.parametrize(
    "content",
    [
        '{"vertebra_threshold": 0.3',
        "[0.3]",
        '{"vertebra_threshold": "high"}',
        '{"vertebra_threshold": 2}',
        '{"noise_threshold_vox": -5}',
    ],
)
def test_a_damaged_operating_point_is_a_clear_error_in_load_and_apply(tmp_path, voxel_run, content):
    from spinefx.evaluation.crossval import apply_operating_point

    root = voxel_run(tmp_path / "v")
    RunPaths(root).operating_point.write_text(content)
    with pytest.raises(InputError, match="operating point|must be"):
        load_trained(root)
    source = tmp_path / "cv.json"
    source.write_text(content)
    RunPaths(root).operating_point.unlink()
    with pytest.raises(InputError, match="operating point|must be"):
        apply_operating_point(source, root)


def test_a_nan_vertebra_threshold_means_none(tmp_path, voxel_run):
    root = voxel_run(tmp_path / "v")
    RunPaths(root).operating_point.write_text(
        '{"probability_threshold": 0.5, "vertebra_threshold": NaN}'
    )
    run = load_trained(root)
    assert run.threshold is None and run.operating_point["probability_threshold"] == 0.5
