"""load_scan / load_mask / save_image: real CTs load, round trips, bad input is named and fixable."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io import (
    load_mask,
    load_scan,
    read_nifti,
    read_nifti_geometry,
    save_image,
    save_probability_map,
)

REAL_CTS = {
    "ctfu/rawdata/sub-ctfu00001/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz": (
        (111, 176, 113),
        "PIR",
    ),
    "ctfu/rawdata/sub-ctfu00001/ses-20140908/sub-ctfu00001_ses-20140908_split-1_ce-no_ct.nii.gz": (
        (143, 150, 86),
        "PIR",
    ),
    "tptbox/sub-ct_label-22_ct.nii.gz": ((73, 47, 73), "PIR"),
    "totalseg/example_ct.nii.gz": ((122, 101, 112), "RAS"),
    "totalseg/example_ct_dicom": ((512, 512, 20), "LPS"),
}


@pytest.mark.parametrize("relative", sorted(REAL_CTS))
def test_every_real_ct_loads_in_hu_with_its_own_voxel_order(real_data, relative):
    image = load_scan(real_data / relative)
    shape, orientation = REAL_CTS[relative]
    assert image.shape == shape
    assert image.orientation == orientation
    assert image.data.min() < -900  # air
    assert 1000 < image.data.max() < 4000  # bone, no more
    if (real_data / relative).is_file():  # the affine is exactly the file's sform
        assert np.allclose(image.affine, nib.load(real_data / relative).get_sform())


def test_every_ct_file_in_the_real_samples_loads(real_data):
    """Whatever CT files the samples folder holds (not only the ones listed above) load as CT."""
    files = sorted(real_data.rglob("*_ct.nii.gz")) + sorted(real_data.rglob("example_ct*"))
    assert len(files) >= 5
    for path in files:
        image = load_scan(path)
        # fat at least; tight crops around the spine hold no air (verse006: min -750 HU)
        assert image.data.min() < -100, path


def test_a_tight_real_crop_without_air_loads_as_ct(real_data):
    """VerSe sub-verse006 is cropped to the spine: no air, 0.5th percentile about -116 HU."""
    path = real_data / "verse/rawdata/sub-verse006/sub-verse006_ct.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} not in the real samples")
    image = load_scan(path)
    assert -900 < image.data.min() < -100
    assert image.data.max() > 500  # bone


def _write(tmp_path, data, affine=None, name="img.nii.gz", **codes) -> str:
    img = nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine)
    for form, code in codes.items():
        getattr(img, f"set_{form}")(img.affine, code=code)
    path = tmp_path / name
    nib.save(img, path)
    return path


def _assert_names_file_and_fix(exc: pytest.ExceptionInfo, path, *words: str) -> None:
    message = str(exc.value)
    assert str(path) in message and "Fix:" in message, message
    for word in words:
        assert word in message.lower(), message


def test_save_and_load_round_trip_keeps_geometry_and_values(tmp_path, ct_image):
    path = save_image(ct_image, tmp_path / "ct.nii.gz")
    loaded = load_scan(path)
    assert loaded.orientation == "PIR"
    np.testing.assert_allclose(loaded.affine, ct_image.affine, atol=1e-6)
    np.testing.assert_array_equal(loaded.data, ct_image.data)
    assert nib.load(path).header["qform_code"] == 1 and nib.load(path).header["sform_code"] == 1
    geometry = read_nifti_geometry(path)
    assert geometry.shape == ct_image.shape and np.allclose(geometry.affine, ct_image.affine)


def test_label_masks_are_saved_as_integers_and_float_masks_load_as_integers(tmp_path, ct_image):
    labels = np.zeros(ct_image.shape, dtype=np.int64)
    labels[3:6, 3:6, 3:6] = 20
    labels[6:9, 3:6, 3:6] = 28
    path = save_image(ct_image.with_data(labels), tmp_path / "m.nii.gz")
    assert nib.load(path).get_data_dtype() == np.uint8
    float_path = _write(tmp_path, labels.astype(np.float64), ct_image.affine, "f.nii.gz", sform=1)
    mask = load_mask(float_path)
    assert mask.data.dtype.kind in "iu"
    assert sorted(np.unique(mask.data)) == [0, 20, 28]


def test_probability_maps_are_stored_as_uint8_and_read_back_as_probabilities(tmp_path, ct_image):
    rng = np.random.default_rng(0)
    prob = rng.random(ct_image.shape).astype(np.float32)
    prob[0, 0, 0], prob[0, 0, 1], prob[0, 0, 2] = 0.0, 1.0, 1.2  # 1.2: clipped to 1
    path = save_probability_map(ct_image.with_data(prob), tmp_path / "p.nii.gz")
    img = nib.load(path)
    assert img.get_data_dtype() == np.uint8
    assert img.header["qform_code"] == 1 and img.header["sform_code"] == 1
    np.testing.assert_allclose(img.affine, ct_image.affine, atol=1e-6)
    back = img.get_fdata()
    assert (
        back[0, 0, 0] == 0.0 and abs(back[0, 0, 1] - 1.0) < 1e-6 and abs(back[0, 0, 2] - 1) < 1e-6
    )
    assert np.abs(back - np.clip(prob, 0, 1)).max() <= 0.5 / 255 + 1e-6
    loaded = read_nifti(path)  # spinefx's own reader applies the slope too
    assert loaded.data.dtype == np.float32
    np.testing.assert_allclose(loaded.data, back, atol=1e-6)
    with pytest.raises(InputError, match="unsupported output file name"):
        save_probability_map(ct_image.with_data(prob), tmp_path / "p.png")


def _crash_half_way(monkeypatch):
    """Make ``nib.save`` die in the middle of writing: half the file is on disk, then an error."""
    real_save = nib.save

    def save_half_then_fail(img, filename, *args, **kwargs):
        real_save(img, filename, *args, **kwargs)
        raw = Path(filename).read_bytes()
        Path(filename).write_bytes(raw[: len(raw) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", save_half_then_fail)


def test_save_image_crashing_mid_write_leaves_no_file(tmp_path, ct_image, monkeypatch):
    _crash_half_way(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_image(ct_image, tmp_path / "ct.nii.gz")
    assert list(tmp_path.iterdir()) == []  # neither a partial ct.nii.gz nor a temporary file


def test_save_image_crashing_mid_write_keeps_the_previous_file(tmp_path, ct_image, monkeypatch):
    path = save_image(ct_image, tmp_path / "ct.nii.gz")
    before = path.read_bytes()
    _crash_half_way(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_image(ct_image.with_data(ct_image.data + 1), path)
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]
    assert path.read_bytes() == before
    np.testing.assert_array_equal(load_scan(path).data, ct_image.data)


def test_truncated_nifti_names_the_file_and_the_fix(tmp_path, ct_image):
    big = Image(np.tile(ct_image.data, (4, 4, 4)), ct_image.affine)
    path = save_image(big, tmp_path / "ct.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    raw = path.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as exc:
        load_scan(cut)
    _assert_names_file_and_fix(exc, cut, "truncated")


def test_truncated_real_ct_names_the_file(real_data, tmp_path):
    source = real_data / "tptbox/sub-ct_label-22_ct.nii.gz"
    cut = tmp_path / "cut_ct.nii.gz"
    shutil.copy(source, cut)
    cut.write_bytes(cut.read_bytes()[:5000])
    with pytest.raises(InputError) as exc:
        load_scan(cut)
    _assert_names_file_and_fix(exc, cut, "corrupt")


def test_not_gzip_at_all_is_an_input_error(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"this is not a nifti file")
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as exc:
        load_scan(tmp_path / "nope.nii.gz")
    assert "not found" in str(exc.value)


@pytest.mark.parametrize("shape", [(20, 20), (20, 20, 1)])
def test_two_dimensional_image_is_rejected(tmp_path, shape):
    path = _write(tmp_path, np.full(shape, -1000, np.int16), sform=1)
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "2-d")


def test_singleton_fourth_dimension_is_squeezed_and_a_real_4d_rejected(tmp_path):
    data = np.stack([np.asarray(np.broadcast_to(ct_like_block(), (8, 8, 8)))], axis=-1)
    image = load_scan(_write(tmp_path, data, name="one.nii.gz", sform=1))
    assert image.shape == (8, 8, 8)
    path = _write(tmp_path, np.concatenate([data, data], axis=-1), name="two.nii.gz", sform=1)
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "4-d")


def ct_like_block() -> np.ndarray:
    data = np.full((8, 8, 8), -1000.0, dtype=np.float32)
    data[2:6, 2:6, 2:6] = 500.0
    return data


def test_nan_voxels_are_rejected(tmp_path):
    data = ct_like_block()
    data[3, 3, 3] = np.nan
    path = _write(tmp_path, data, sform=1)
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "nan")


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(0).uniform(0, 900, (16, 16, 16)).astype(np.float32),  # MRI-like
        np.random.default_rng(1).integers(0, 4096, (16, 16, 16)).astype(np.uint16),  # raw DICOM
        np.random.default_rng(2).uniform(0, 1, (16, 16, 16)).astype(np.float32),  # normalised
    ],
    ids=["mri", "unscaled", "unit"],
)
def test_non_hu_intensities_are_rejected(tmp_path, data):
    path = _write(tmp_path, data, sform=1)
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "does not look like ct in hounsfield units")


def test_file_without_orientation_is_rejected_rather_than_guessed(tmp_path):
    path = _write(tmp_path, ct_like_block(), qform=0, sform=0)
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "sform")


def test_sform_is_preferred_over_a_disagreeing_qform(tmp_path, caplog):
    img = nib.Nifti1Image(ct_like_block(), np.eye(4))
    sform = np.diag([2.0, 2.0, 2.0, 1.0])
    img.set_qform(np.eye(4), code=1)
    img.set_sform(sform, code=2)
    path = tmp_path / "both.nii.gz"
    nib.save(img, path)
    assert np.allclose(load_scan(path).affine, sform)
    assert "qform and sform differ" in caplog.text


def test_mask_with_fractional_values_is_rejected(tmp_path):
    path = _write(tmp_path, np.full((6, 6, 6), 20.5, np.float32), sform=1)
    with pytest.raises(InputError) as exc:
        load_mask(path)
    _assert_names_file_and_fix(exc, path, "non-integer")


def test_mask_with_unknown_labels_is_rejected_unless_allowed(tmp_path):
    data = np.zeros((6, 6, 6), np.int16)
    data[1:3, 1:3, 1:3] = 41  # a sub-region label, not a vertebra
    path = _write(tmp_path, data, sform=1)
    with pytest.raises(InputError) as exc:
        load_mask(path)
    _assert_names_file_and_fix(exc, path, "[41]")
    assert load_mask(path, known_labels=None).data.max() == 41


def test_unsupported_format(tmp_path):
    path = tmp_path / "scan.mha"
    path.write_bytes(b"x")
    with pytest.raises(InputError) as exc:
        load_scan(path)
    _assert_names_file_and_fix(exc, path, "unsupported")


def test_gzip_module_is_what_truncation_trips(tmp_path):
    """Guard the premise of the truncation test: the cut file really is a broken gzip stream."""
    path = save_image(Image(ct_like_block(), np.eye(4)), tmp_path / "x.nii.gz")
    raw = path.read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(raw[: len(raw) // 2])


def test_qform_only_file_uses_the_qform(tmp_path):
    affine = np.array([[0, 0, 1.5, -10], [-1.2, 0, 0, 20], [0, -1.0, 0, 30], [0, 0, 0, 1.0]])
    path = _write(tmp_path, ct_like_block(), affine, qform=1, sform=0)
    image = load_scan(path)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)
    assert image.orientation == "PIR"


_PERMS = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]


@settings(max_examples=25, deadline=None)
@given(
    perm=st.sampled_from(_PERMS),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.floats(0.3, 4.0)] * 3),
)
def test_save_image_round_trips_in_any_orientation(tmp_path_factory, perm, signs, spacing):
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, list(perm)] * np.array(signs) * np.array(spacing)
    affine[:3, 3] = (12.5, -40.0, 300.0)
    image = Image(ct_like_block().astype(np.int16), affine)
    loaded = load_scan(save_image(image, tmp_path_factory.mktemp("o") / "ct.nii.gz"))
    assert loaded.orientation == image.orientation
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(loaded.data, image.data)
    corner = np.array([7.0, 0.0, 7.0])  # a voxel maps to the same world point
    np.testing.assert_allclose(
        loaded.voxel_to_world(corner), image.voxel_to_world(corner), atol=1e-4
    )
