"""Mask-driven rendering: determinism, geometry, labels under deformation, HU, dataset layout."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spinefx.image import Image
from spinefx.io import load_dataset, load_scan, save_image
from spinefx.preprocessing import reorient
from spinefx.synthesis import case_rng, generate_case, preset
from spinefx.synthesis.mask_anatomy import analyse_vertebrae, disc_masks
from spinefx.synthesis.mask_deform import DeformParams, labelled_centre_mm
from spinefx.synthesis.mask_render import (
    MaskRenderConfig,
    crop_to_labels,
    generate_mask_render_dataset,
    render_ct,
    sample_render_params,
)
from spinefx.synthesis.real_sources import RealScan, RealSubject, find_real_subjects, load_real_mask

# the official grade table of the test subject: any values do (the writer must copy them)
FAST = MaskRenderConfig(resample_probability=0.0)


@pytest.fixture(scope="module")
def synthetic() -> Image:
    """The vertebra mask of a small synthetic case (6-7 vertebrae, ~1.3 mm)."""
    case = generate_case(preset("small"), case_rng(0, 2))
    return crop_to_labels(case.vertebra_mask, margin_mm=8.0)


@pytest.fixture(scope="module")
def subject(synthetic, tmp_path_factory) -> RealSubject:
    labels = sorted(int(v) for v in np.unique(synthetic.data) if 0 < v < 26)
    grades = {label: (0, None) for label in labels[1:-1]}  # the end vertebrae are ungraded
    grades[labels[2]] = (2, "wedge")
    grades[labels[3]] = (3, "crush")
    del grades[labels[-2]]  # pedicle screws: foreign material, no grade
    path = tmp_path_factory.mktemp("masks") / "synth_seg.nii.gz"
    save_image(synthetic, path)
    scan = RealScan("synth02", None, path, grades, frozenset({labels[-2]}))
    return RealSubject("synth02", "test", (scan,), "test licence", True)


@pytest.fixture(scope="module")
def dataset(subject, tmp_path_factory) -> Path:
    config = MaskRenderConfig(
        resample_probability=1.0,
        inplane_spacing_mm_range=(1.2, 1.3),
        slice_spacing_mm_range=(2.6, 3.0),
    )
    root = tmp_path_factory.mktemp("mr") / "a"
    return generate_mask_render_dataset(root, subjects=[subject], n_scans=2, seed=0, config=config)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _padded(mask: Image, pad_vox: int) -> Image:
    shift = np.eye(4)
    shift[:3, 3] = -pad_vox
    return Image(np.pad(np.asarray(mask.data), pad_vox), mask.affine @ shift)


def _centroids(data: np.ndarray, affine: np.ndarray) -> dict[int, np.ndarray]:
    out = {}
    for label in np.unique(data[data > 0]):
        ijk = np.argwhere(data == label)
        out[int(label)] = (ijk @ affine[:3, :3].T + affine[:3, 3]).mean(0)
    return out


def test_same_seed_same_files_another_seed_other_files(dataset, subject, tmp_path):
    config = MaskRenderConfig(
        resample_probability=1.0,
        inplane_spacing_mm_range=(1.2, 1.3),
        slice_spacing_mm_range=(2.6, 3.0),
    )
    # case 1 alone comes out byte for byte the same (cases do not depend on n_scans)
    again = _files(
        generate_mask_render_dataset(
            tmp_path / "b", subjects=[subject], n_scans=1, seed=0, config=config
        )
    )
    full = _files(dataset)
    case_files = [k for k in again if "sub-mr0001" in k]
    assert len(case_files) == 3 and all(again[k] == full[k] for k in case_files)
    other = generate_mask_render_dataset(
        tmp_path / "c", subjects=[subject], n_scans=1, seed=1, config=config
    )
    ct = "rawdata/sub-mr0001/sub-mr0001_ct.nii.gz"
    assert _files(other)[ct] != _files(dataset)[ct]
    # parameters are drawn first, into a frozen value: same generator state, same parameters
    assert sample_render_params(np.random.default_rng(5)) == sample_render_params(
        np.random.default_rng(5)
    )
    assert sample_render_params(np.random.default_rng(5)) != sample_render_params(
        np.random.default_rng(6)
    )


@pytest.mark.parametrize("variant", ["anisotropic", "reoriented_oblique"])
def test_rendered_ct_keeps_the_masks_grid(synthetic, variant):
    mask = synthetic
    if variant == "anisotropic":  # every second slice: 1.25 x 1.25 x ~2.8 mm
        scale = np.diag([1.0, 1.0, 2.0, 1.0])
        mask = Image(np.ascontiguousarray(mask.data[:, :, ::2]), mask.affine @ scale)
    else:  # PIR, tilted by 7 degrees about the left-right axis (like real VerSe grids)
        mask = reorient(mask, "PIR")
        c, s = np.cos(np.radians(7)), np.sin(np.radians(7))
        tilt = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])
        mask = Image(np.asarray(mask.data), tilt @ mask.affine)
    ct, labels = render_ct(mask, sample_render_params(np.random.default_rng(1), FAST))
    for image in (ct, labels):
        assert image.shape == mask.shape
        assert np.array_equal(image.affine, mask.affine)
    assert set(np.unique(labels.data)) == set(np.unique(mask.data))
    assert ct.data.dtype == np.float32 and np.array_equal(ct.data, np.rint(ct.data))
    assert -1024 <= ct.data.min() and ct.data.max() <= 3071


def test_identity_deformation_reproduces_the_mask_exactly(synthetic):
    mask = synthetic
    thick = Image(np.ascontiguousarray(mask.data[:, :, ::2]), mask.affine @ np.diag([1, 1, 2, 1]))
    params = dataclasses.replace(
        sample_render_params(np.random.default_rng(0)), deform=DeformParams()
    )
    for source in (mask, thick):  # render grid subdivided 3x along the thick axis
        _, labels = render_ct(source, params)
        assert np.array_equal(labels.data, source.data)


def test_labels_follow_the_deformation_within_its_bound(synthetic):
    mask = synthetic
    mask = _padded(mask, 16)  # room to move: the deformation is applied in full
    config = MaskRenderConfig(
        rotation_deg_max=10.0, scale_range=(0.9, 1.1), elastic_mm_range=(4.0, 4.0)
    )
    params = sample_render_params(np.random.default_rng(3), config)
    deform = params.deform
    assert max(abs(r) for r in deform.rotation_deg) > 3.0  # a real deformation
    ct, labels = render_ct(mask, params)
    assert ct.meta["deform_factor"] == 1.0
    before = _centroids(np.asarray(mask.data), mask.affine)
    after = _centroids(np.asarray(labels.data), labels.affine)
    assert set(after) == set(before)
    centre = labelled_centre_mm(mask)
    tolerance = deform.bound_mm() + float(mask.spacing_mm.max())
    moved_far = False
    for label, x in before.items():
        expected = centre + deform.matrix @ (x - centre)
        assert np.linalg.norm(after[label] - expected) <= tolerance, label
        moved_far |= np.linalg.norm(after[label] - x) > tolerance
    assert moved_far  # some centroid moved farther than the bound: it is not met trivially


def test_a_vertebra_never_vanishes_even_in_a_tight_grid(synthetic):
    mask = synthetic
    tight = crop_to_labels(mask, margin_mm=0.0)  # every vertebra touches the border
    config = MaskRenderConfig(rotation_deg_max=10.0, scale_range=(0.9, 0.9))
    ct, labels = render_ct(tight, sample_render_params(np.random.default_rng(2), config))
    assert set(np.unique(labels.data)) == set(np.unique(tight.data))
    counts = np.bincount(np.asarray(labels.data).ravel())
    reference = np.bincount(np.asarray(tight.data).ravel(), minlength=len(counts))
    present = reference[1:] > 0
    assert np.all(counts[1:][present] >= 0.6 * reference[1:][present])
    assert 0.0 <= ct.meta["deform_factor"] <= 1.0


def test_hu_of_bone_disc_fat_air_and_the_noise(synthetic):
    mask = synthetic
    mask = _padded(mask, 30)  # 38 mm more on every side: the body outline and air are in view
    drawn = sample_render_params(np.random.default_rng(4), FAST)
    tissue = dataclasses.replace(
        drawn.tissue,
        body_half_width_mm=110.0,
        body_half_depth_mm=90.0,
        back_mm=25.0,
        subcutaneous_fat_mm=15.0,
    )
    clean_acq = dataclasses.replace(
        drawn.acquisition, noise_sd_hu=0.0, bias_fraction=0.0, bias_offset_hu=0.0, kernel="standard"
    )
    clean = dataclasses.replace(drawn, deform=DeformParams(), tissue=tissue, acquisition=clean_acq)
    ct, labels = render_ct(mask, clean)
    hu, lab = np.asarray(ct.data), np.asarray(labels.data)
    from scipy import ndimage

    shell = np.zeros(lab.shape, bool)
    core = np.zeros(lab.shape, bool)
    for v in analyse_vertebrae(lab, ct.affine):
        body = np.zeros(lab.shape, bool)
        body[v.box] = v.body
        shell |= body & ~ndimage.binary_erosion(body)
        core |= ndimage.binary_erosion(body, iterations=4)
    disc, _ = disc_masks(lab, ct.affine, analyse_vertebrae(lab, ct.affine))
    disc_core = ndimage.binary_erosion(disc)
    assert np.median(hu[shell]) > np.median(hu[core]) + 100
    assert np.median(hu[core]) > np.median(hu[disc_core]) + 30
    assert 40 <= np.median(hu[disc_core]) <= 140
    # behind the spine at mid height: muscle, then subcutaneous fat, then air
    ras, ras_labels = np.asarray(reorient(ct, "RAS").data), np.asarray(reorient(labels, "RAS").data)
    bone = np.argwhere(ras_labels > 0)
    z_mid = int(np.median(bone[:, 2]))
    x_mid = int(np.median(bone[bone[:, 2] == z_mid, 0]))
    y_back = int(bone[bone[:, 2] == z_mid, 1].min())
    line = ras[x_mid, :y_back, z_mid][::-1]  # from the spine backwards to the grid's edge
    fat = (line < -40) & (line > -160)
    assert fat.sum() * ct.spacing_mm.min() >= 8.0  # a fat layer of at least 8 mm
    assert np.all(np.abs(line[-5:] + 1000) <= 5)  # air outside the body
    assert np.flatnonzero(fat).max() < np.flatnonzero(line < -990).min()  # fat inside air
    air = hu < -900
    assert air.mean() > 0.02 and abs(np.median(hu[air]) + 1000) <= 2
    # the noise: its sd is the drawn one (measured against the noise-free render)
    noisy_acq = dataclasses.replace(clean_acq, noise_sd_hu=drawn.acquisition.noise_sd_hu)
    noisy, _ = render_ct(mask, dataclasses.replace(clean, acquisition=noisy_acq))
    unclipped = (hu > -900) & (np.asarray(noisy.data) > -1000)
    measured = float(np.std(np.asarray(noisy.data)[unclipped] - hu[unclipped]))
    assert abs(measured - drawn.acquisition.noise_sd_hu) <= 0.06 * drawn.acquisition.noise_sd_hu
    low, high = FAST.noise_sd_hu_range
    assert low <= drawn.acquisition.noise_sd_hu <= high


def test_written_dataset_loads_with_the_official_grades(dataset, subject):
    scans = sorted((dataset / "rawdata").rglob("*_ct.nii.gz"))
    assert len(scans) == 2
    for path in scans:
        ct = load_scan(path)  # validated as CT
        assert ct.spacing_mm[2] >= 2.6 - 1e-6  # rendered on the drawn (resampled) grid
    scan = subject.scans[0]
    official, metal = scan.grades, scan.foreign_material
    with (dataset / "fracture_grades.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    codes = {None: "0", "wedge": "1", "biconcave": "2", "crush": "3"}
    for row in rows:  # the official grade and shape, "x" for metal, empty where none
        label = int(row["label"])
        if label in metal:
            assert (row["grade"], row["shape"]) == ("x", "")
        elif label in official:
            grade, shape = official[label]
            assert (row["grade"], row["shape"]) == (str(grade), codes[shape])
        else:
            assert (row["grade"], row["shape"]) == ("", "")
    cases = load_dataset(dataset)
    assert [c.case_id for c in cases] == ["sub-mr0001", "sub-mr0002"]
    for case in cases:
        got = {v.vertebra_label: (v.genant_grade, v.shape) for v in case.vertebrae}
        graded = {k: official[k] for k in official if k not in metal}
        assert {k: g for k, g in got.items() if k in graded} == graded
        assert all(v.foreign_material == (v.vertebra_label in metal) for v in case.vertebrae)
        assert all(got[k] == (None, None) for k in got if k not in official)
    with (dataset / "sources.csv").open(encoding="utf-8") as handle:
        sources = list(csv.DictReader(handle))
    assert [(s["source_subject"], s["licence"], s["shippable"]) for s in sources] == [
        ("synth02", "test licence", "True")
    ] * 2


def test_config_is_validated():
    with pytest.raises(ValueError, match="noise_sd_hu_range"):
        MaskRenderConfig(noise_sd_hu_range=(40.0, 10.0))
    with pytest.raises(ValueError, match="trabecular_hu_range"):
        MaskRenderConfig(trabecular_hu_range=(80.0, 5000.0))
    with pytest.raises(ValueError, match="kernels"):
        MaskRenderConfig(kernels=("sharp",))
    with pytest.raises(ValueError, match="orientations"):
        MaskRenderConfig(orientations=("RAR",))
    with pytest.raises(ValueError, match="contrast_probability"):
        MaskRenderConfig(contrast_probability=1.5)


def test_a_real_anisotropic_mask_renders_on_its_own_grid(real_data):
    subject = next(s for s in find_real_subjects(real_data) if s.subject_id == "verse018")
    scan = subject.scans[0]
    mask = load_real_mask(scan)  # PIR, 1 x 1 x 3 mm, oblique
    lumbar = mask.with_data(np.where(np.asarray(mask.data) >= 20, mask.data, 0))
    crop = crop_to_labels(lumbar, margin_mm=20.0)
    ct, labels = render_ct(crop, sample_render_params(np.random.default_rng(0)))
    assert ct.shape == crop.shape and np.array_equal(ct.affine, crop.affine)
    assert set(np.unique(labels.data)) == {0, 20, 21, 22, 23, 24}
    assert np.median(ct.data[np.asarray(labels.data) > 0]) > 150  # bone
    assert {20, 21, 22, 23} <= set(scan.grades)  # official grades exist for these levels


def test_a_real_expert_mask_becomes_a_dataset_with_its_official_fractures(real_data, tmp_path):
    subject = next(s for s in find_real_subjects(real_data) if s.subject_id == "verse004")
    root = generate_mask_render_dataset(
        tmp_path / "v4", subjects=[subject], n_scans=1, seed=0, config=FAST
    )
    (case,) = load_dataset(root)
    grades = {v.level: v.genant_grade for v in case.vertebrae}
    assert grades["T9"] == 2 and grades["T10"] == 2 and grades["L1"] == 3
    assert grades["L3"] == 0
    load_scan(case.scan_path)
