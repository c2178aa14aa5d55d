"""Scans and masks with impossible geometry or no bone are refused, with a way past the CT check."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io import load_scan, save_image
from spinefx.io.scan import ct_check_disabled, load_mask


def _ct(spacing=1.0, *, bone=True, shape=(24, 24, 24)) -> Image:
    data = np.full(shape, -1000, dtype=np.int16)
    data[4:20, 4:20, 4:20] = 40
    if bone:
        data[8:16, 8:16, 8:16] = 700
    return Image(data, np.diag([spacing, spacing, spacing, 1.0]), {})


@pytest.mark.parametrize("spacing", [1e6, 0.01, 50.0])
def test_implausible_spacing_is_refused_for_scans_and_masks(tmp_path, spacing):
    path = save_image(_ct(spacing), tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="spacing .* not plausible") as err:
        load_scan(path)
    assert "ct.nii.gz" in str(err.value) and "true voxel spacing" in str(err.value)
    mask = Image(np.zeros((8, 8, 8), np.uint8), np.diag([spacing] * 3 + [1.0]), {})
    mask.data[2:5, 2:5, 2:5] = 20
    with pytest.raises(InputError, match="mask's voxel spacing"):
        load_mask(save_image(mask, tmp_path / "seg.nii.gz"))


def test_a_scan_longer_than_any_ct_is_refused(tmp_path):
    path = save_image(_ct(15.0, shape=(24, 24, 240)), tmp_path / "long.nii.gz")
    with pytest.raises(InputError, match="longer|mm long"):
        load_scan(path)


def test_an_all_air_scan_is_refused_as_holding_no_bone(tmp_path):
    path = save_image(_ct(bone=False), tmp_path / "air.nii.gz")
    with pytest.raises(InputError, match="no bone") as err:
        load_scan(path)
    assert "--no-ct-check" in str(err.value)


def test_no_ct_check_loads_a_refused_scan_with_a_warning_but_never_nan(tmp_path, caplog):
    path = save_image(_ct(bone=False), tmp_path / "air.nii.gz")
    with ct_check_disabled():
        assert load_scan(path).shape == (24, 24, 24)
    assert "no bone" in caplog.text and "--no-ct-check" in caplog.text
    with pytest.raises(InputError, match="no bone"):  # the block ended: checked again
        load_scan(path)
    assert load_scan(path, ct_check=False).shape == (24, 24, 24)
    base = _ct()
    data = base.data.astype(np.float32)
    data[0, 0, 0] = np.nan
    nan_path = save_image(Image(data, base.affine, {}), tmp_path / "nan.nii.gz")
    with ct_check_disabled(), pytest.raises(InputError, match="NaN"):
        load_scan(nan_path)


def test_cli_no_ct_check_flag_before_or_after_the_command(tmp_path, capsys):
    from spinefx.cli import main

    path = save_image(_ct(bone=False), tmp_path / "air.nii.gz")
    assert main(["inspect", str(path)]) == 1
    assert "no bone" in capsys.readouterr().err
    assert main(["inspect", str(path), "--no-ct-check"]) == 0
    assert main(["--no-ct-check", "inspect", str(path)]) == 0


def write_singular_sform(path, data) -> None:
    """A NIfTI whose sform (code 1) has a zero row, written byte by byte (nibabel's writer
    would replace it with a valid affine)."""
    import struct

    import nibabel as nib

    raw = bytearray(nib.Nifti1Image(data, np.eye(4)).to_bytes())
    struct.pack_into("<hh", raw, 252, 0, 1)  # qform_code 0, sform_code 1
    struct.pack_into("<4f", raw, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z
    path.write_bytes(bytes(raw))


def test_a_singular_sform_names_the_file(tmp_path):
    write_singular_sform(tmp_path / "flat.nii", _ct().data)
    with pytest.raises(InputError, match="sform is singular or not finite") as err:
        load_scan(tmp_path / "flat.nii")
    assert "flat.nii" in str(err.value)


def test_prepare_workers_inherit_no_ct_check(tmp_path):
    """A worker process starts with a fresh context: the pool's initializer hands it the flag."""
    import threading

    from spinefx.io.scan import ct_check_enabled
    from spinefx.preprocessing.prepare import _init_worker

    seen = []

    def worker():  # a new thread, like a worker process, starts with the default
        seen.append(ct_check_enabled())
        _init_worker(1, False)
        seen.append(ct_check_enabled())
        path = save_image(_ct(bone=False), tmp_path / "air.nii.gz")
        seen.append(load_scan(path).shape)

    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)  # the initializer set 1
    assert seen == [True, False, (24, 24, 24)]
    assert ct_check_enabled()  # this thread is unchanged
