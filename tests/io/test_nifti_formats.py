"""Peer corpora: NIfTI pairs load like .nii files; CIFTI, Analyze and nibabel's test images give
clear errors (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.io import load_scan


def _ct_volume() -> np.ndarray:
    data = np.full((20, 20, 20), -1000, np.int16)
    data[4:16, 4:16, 4:16] = 40
    data[8:12, 8:12, 8:12] = 700
    return data


def _affine() -> np.ndarray:
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 5.0]
    return affine


@pytest.mark.parametrize("suffix", [".hdr", ".img"])
def test_a_nifti_pair_loads_like_its_single_file_twin(tmp_path, suffix):
    import nibabel as nib

    pair = nib.Nifti1Pair(_ct_volume(), _affine())
    nib.save(pair, tmp_path / "ct.hdr")
    nib.save(nib.Nifti1Image(_ct_volume(), _affine()), tmp_path / "ct.nii.gz")
    a, b = load_scan(tmp_path / f"ct{suffix}"), load_scan(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine, b.affine)


def test_a_pair_without_its_img_or_truncated_is_named(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Pair(_ct_volume(), _affine()), tmp_path / "ct.hdr")
    img = tmp_path / "ct.img"
    img.write_bytes(img.read_bytes()[:100])
    with pytest.raises(InputError, match="truncated"):
        load_scan(tmp_path / "ct.hdr")
    img.unlink()
    with pytest.raises(InputError, match=r"ct\.img"):
        load_scan(tmp_path / "ct.hdr")


def test_an_analyze_file_is_refused_for_its_missing_orientation(tmp_path):
    import nibabel as nib

    nib.save(nib.AnalyzeImage(_ct_volume(), _affine()), tmp_path / "old.hdr")
    with pytest.raises(InputError, match="no patient orientation") as err:
        load_scan(tmp_path / "old.hdr")
    assert "old.hdr" in str(err.value)


def _nibabel_test_files() -> list[Path]:
    import nibabel

    folder = Path(nibabel.__file__).parent / "tests" / "data"
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".py"))
    return files


def test_cifti_is_named_as_cifti():
    path = next(p for p in _nibabel_test_files() if p.name.endswith(".dconn.nii"))
    with pytest.raises(InputError, match="CIFTI-2"):
        load_scan(path)


def test_every_nibabel_test_image_loads_or_gives_an_input_error():
    files = _nibabel_test_files()
    assert len(files) > 50
    outcomes = {}
    for path in files:
        try:
            load_scan(path)
            outcomes[path.name] = "loaded"
        except InputError:
            outcomes[path.name] = "clear error"
    assert set(outcomes.values()) <= {"loaded", "clear error"}


def test_every_pydicom_test_file_as_a_folder_loads_or_gives_an_input_error(tmp_path):
    """pydicom's own test files, each alone in a folder (a user's "DICOM folder")."""
    import shutil

    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".py"))
    assert len(files) > 50
    for k, path in enumerate(files):
        case = tmp_path / f"case{k}"
        case.mkdir()
        shutil.copy(path, case / path.name)
        try:
            load_scan(case)
        except InputError:
            pass
