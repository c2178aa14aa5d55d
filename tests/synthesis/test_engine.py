"""The training-data engine: mixing proportions, subject exclusion, one readable manifest."""

from __future__ import annotations

import csv

import pytest

from spinefx.synthesis.engine import EngineConfig, build_training_data, select_subjects
from spinefx.synthesis.real_sources import RealSubject


def test_counts_follow_the_mix_and_add_up():
    config = EngineConfig(n_scans=10, mix={"procedural": 1, "mask_render": 1, "real_fracture": 2})
    # 2.5 / 2.5 / 5 scans: the one left over goes to the first largest remainder
    assert config.counts() == {"procedural": 3, "mask_render": 2, "real_fracture": 5}
    assert EngineConfig(n_scans=7, mix={"procedural": 1}).counts() == {
        "procedural": 7,
        "mask_render": 0,
        "real_fracture": 0,
    }


@pytest.mark.parametrize(
    "kwargs", [{"mix": {"procedural": -1}}, {"mix": {"nope": 1}}, {"mix": {}}, {"n_scans": 0}]
)
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        EngineConfig(**kwargs)


def test_excluded_and_unshippable_subjects_are_left_out():
    subjects = [
        RealSubject("verse007", "verse", (), "CC BY-SA", True),
        RealSubject("verse018", "verse_predicted_masks", (), "CC BY-NC-SA", False),
        RealSubject("tptbox", "tptbox", (), "Apache-2.0", True),
    ]
    kept = select_subjects(subjects, EngineConfig(exclude_subjects=("verse007",)))
    assert [s.subject_id for s in kept] == ["verse018", "tptbox"]
    kept = select_subjects(subjects, EngineConfig(shippable_only=True))
    assert [s.subject_id for s in kept] == ["verse007", "tptbox"]


def test_a_procedural_training_set_is_one_manifest_that_load_dataset_reads(tmp_path):
    from spinefx.io import load_dataset

    config = EngineConfig(n_scans=3, mix={"procedural": 1}, procedural_preset="small", seed=3)
    manifest = build_training_data(config, tmp_path / "data", real_root=None)
    cases = load_dataset(manifest)
    assert len(cases) == 3 and all(c.case_id.startswith("procedural-") for c in cases)
    assert {c.split for c in cases} <= {"train", "val"}
    assert all(v.centroid_mm is not None for c in cases for v in c.vertebrae)
    assert any(v.genant_grade is not None for c in cases for v in c.vertebrae)
    with (tmp_path / "data" / "sources.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["source"] for r in rows] == ["procedural"] * 3
    stamp = (tmp_path / "data" / "manifest.csv").stat().st_mtime_ns
    assert build_training_data(config, tmp_path / "data", real_root=None) == manifest
    assert (tmp_path / "data" / "manifest.csv").stat().st_mtime_ns == stamp  # reused


def test_real_sources_without_the_real_folder_are_a_clear_error(tmp_path):
    from spinefx.errors import InputError

    with pytest.raises(InputError, match="real sample folder"):
        build_training_data(EngineConfig(n_scans=2), tmp_path, real_root=None)


def test_engine_command_builds_a_training_set_and_refuses_a_bad_mix(tmp_path, capsys):
    from spinefx.cli import main

    out = tmp_path / "engine"
    args = ["engine", "--out", str(out), "--n-scans", "2", "--mix", "procedural=1"]
    assert main([*args, "--procedural-preset", "small", "--workers", "1"]) == 0
    assert (out / "manifest.csv").is_file() and "training set" in capsys.readouterr().out
    assert main(["engine", "--out", str(tmp_path / "bad"), "--mix", "procedural=-1"]) == 1
    err = capsys.readouterr().err
    assert "mix shares" in err and "Traceback" not in err
    assert not (tmp_path / "bad" / "manifest.csv").exists()
