"""Headers that declare more voxels than a cap or than the file holds are refused before reading."""

from __future__ import annotations

import gzip
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.io.nifti import read_nifti


def _header_only(path, shape, *, compress: bool):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 64  # the header, no extension, 64 bytes
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_a_tiny_gz_claiming_a_huge_volume_is_refused_without_allocating_it(tmp_path):
    path = _header_only(tmp_path / "bomb.nii.gz", (1200, 1200, 1200), compress=True)
    tracemalloc.start()
    with pytest.raises(InputError, match="can hold") as info:
        read_nifti(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 1024**2, f"{peak / 1024**2:.0f} MB allocated"
    assert "bomb.nii.gz" in str(info.value)


def test_a_truncated_uncompressed_file_is_refused(tmp_path):
    path = _header_only(tmp_path / "short.nii", (64, 64, 64), compress=False)
    with pytest.raises(InputError, match="truncated"):
        read_nifti(path)


def test_a_volume_above_the_cap_is_refused_and_the_cap_can_be_raised(tmp_path, monkeypatch):
    path = tmp_path / "ok.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)), path)
    monkeypatch.setenv("SPINEFX_MAX_IMAGE_GB", "0.0001")
    with pytest.raises(InputError, match="SPINEFX_MAX_IMAGE_GB"):
        read_nifti(path)
    monkeypatch.setenv("SPINEFX_MAX_IMAGE_GB", "1")
    assert read_nifti(path).shape == (64, 64, 64)


def test_a_2d_file_is_a_clear_error_before_its_geometry_is_read(tmp_path):
    path = tmp_path / "slice.nii.gz"
    image = nib.Nifti1Image(np.zeros((32, 32), np.int16), np.eye(4))
    image.header["sform_code"] = 0  # no orientation either: the shape is named first
    image.header["qform_code"] = 0
    nib.save(image, path)
    with pytest.raises(InputError, match="2-D"):
        read_nifti(path)
