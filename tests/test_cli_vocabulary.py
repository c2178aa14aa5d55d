"""One vocabulary: train/crossval train, predict/detect infer, a wrong kind of run is named."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.cli import main
from spinefx.errors import InputError


def _scan(tmp_path):
    from spinefx.image import Image
    from spinefx.io import save_centroids, save_image

    rng = np.random.default_rng(0)
    data = rng.normal(40.0, 30.0, (48, 48, 64)).astype(np.float32)
    data[16:32, 20:36, :] = 700.0
    data[:, :, :2] = -1000.0
    scan = Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    save_image(scan, tmp_path / "ct.nii.gz")
    centre = scan.voxel_to_world(np.array([24.0, 28.0, 32.0]))
    save_centroids({20: centre}, tmp_path / "ct_ctd.json", reference=scan)
    return tmp_path / "ct.nii.gz", tmp_path / "ct_ctd.json"


def test_detect_no_longer_trains_and_says_where_training_went(tmp_path, capsys):
    assert main(["detect", "--train", "DATA", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "moved" in err and "spinefx train --model voxel --data DATA" in err
    assert main(["detect", "--crossval", "DATA", "--out", str(tmp_path / "cv")]) == 1
    assert "spinefx crossval --model voxel" in capsys.readouterr().err


def test_predict_with_a_voxel_run_names_the_right_command(tmp_path, capsys, voxel_run):
    scan, ctd = _scan(tmp_path)
    run = voxel_run(tmp_path / "voxel")
    assert main(["predict", str(run), str(scan), "--centroids", str(ctd)]) == 1
    err = capsys.readouterr().err
    assert "this is a voxel-classifier run" in err and "spinefx detect" in err


def test_detect_with_a_patch_run_names_the_right_command(tmp_path, capsys, patch_run):
    scan, ctd = _scan(tmp_path)
    run = patch_run(tmp_path / "patch")
    code = main(["detect", str(scan), "--model", str(run), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "this is a patch-classifier run" in err and "spinefx predict" in err


def test_predict_writes_the_shared_result_columns(tmp_path, capsys, patch_run):
    import pandas as pd

    from spinefx.records import RESULT_COLUMNS

    scan, ctd = _scan(tmp_path)
    run = patch_run(tmp_path / "patch")
    out = tmp_path / "table.csv"
    assert main(["predict", str(run), str(scan), "--centroids", str(ctd), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    provenance = ("scan", "model_run", "weights_sha256", "spinefx_version")
    assert tuple(table.columns) == (*RESULT_COLUMNS, *provenance)
    assert table["level"].tolist() == ["L1"] and table["method"].tolist() == ["patch"]
    assert 0.0 <= float(table["probability"].iloc[0]) <= 1.0


def test_train_and_crossval_are_commands_of_both_models(capsys):
    import pytest

    for command in ("train", "crossval"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "--model" in text and "patch" in text and "voxel" in text


def test_detect_that_finds_no_vertebra_is_an_error_unless_allowed(
    tmp_path, capsys, monkeypatch, voxel_run
):
    import spinefx.inference.screening as screening

    scan, _ = _scan(tmp_path)
    run = voxel_run(tmp_path / "voxel")
    monkeypatch.setattr(screening, "localise_vertebrae", lambda *a, **k: {})
    argv = ["--no-progress", "detect", str(scan), "--model", str(run), "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert "no vertebra found" in capsys.readouterr().err
    assert not (tmp_path / "o" / "patient.json").exists()
    assert main([*argv, "--allow-empty"]) == 0
    assert (tmp_path / "o" / "patient.json").exists()


def test_bad_settings_and_outputs_are_input_errors_not_tracebacks(tmp_path, capsys):
    from spinefx.runs.configs import load_training_config

    with pytest.raises(InputError, match="cpu_threads"):
        load_training_config("cpu").replace(cpu_threads=-1)
    for argv in (
        [
            "train",
            "--model",
            "patch",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "r"),
            "--threads",
            "-1",
        ],
        [
            "train",
            "--model",
            "patch",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "r"),
            "--max-epochs",
            "0",
        ],
        ["predict", str(tmp_path / "scan.nii.gz"), "--centroids", "c.json", "--out", str(tmp_path)],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err, err
