"""The procedural generator's appearance model: tissue HU, bone, ribs, kernels and noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from spinefx.errors import InputError
from spinefx.synthesis import AcquisitionConfig, case_rng, generate_case, preset
from spinefx.synthesis.acquisition import ScanSpec, acquire, sample_scan
from spinefx.synthesis.bone import BoneSpec, basivertebral_weight, trabecular_tile
from spinefx.synthesis.config import AnatomyConfig, TissueConfig
from spinefx.synthesis.grid import BuildGrid
from spinefx.synthesis.intensities import TISSUE_LABELS, sample_intensities
from spinefx.synthesis.kernels import apply_kernel, correlated_noise, noise_filter_sd_vox


def _quiet(config, **acquisition):
    """``config`` without bias field, cupping and streaks (and other acquisition overrides)."""
    acq = dataclasses.replace(
        config.acquisition,
        bias_hu_range=(0.0, 0.0),
        cupping_hu_range=(0.0, 0.0),
        streak_probability=0.0,
        **acquisition,
    )
    return dataclasses.replace(config, acquisition=acq)


def _neighbour_correlation(noise: np.ndarray, axis: int) -> float:
    a = np.moveaxis(noise, axis, 0)
    return float(np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1])


def _scan(**overrides) -> ScanSpec:
    values = dict(
        spacing_mm=(1.0, 1.0, 1.0), slice_thickness_mm=1.0, orientation="RAS", blur_mm=0.4,
        kernel="standard", kernel_blur_mm=0.0, kernel_gain=0.0, kernel_sigma_mm=1.0,
        noise_hu=0.0, noise_grain_mm=0.8, bias_hu=0.0, bias_scale_mm=100.0, cupping_hu=0.0,
        streak_hu=0.0,
    )  # fmt: skip
    return ScanSpec(**{**values, **overrides})


def test_same_seed_gives_the_same_scan_and_another_seed_other_tissue_hu():
    config = preset("small")
    a, b = (generate_case(config, case_rng(4, 0)) for _ in range(2))
    assert np.array_equal(a.ct.data, b.ct.data)
    assert np.array_equal(a.tissue_mask.data, b.tissue_mask.data)
    assert a.acquisition == b.acquisition
    other = generate_case(config, case_rng(4, 1))
    assert other.acquisition["tissue_hu"]["fat"] != a.acquisition["tissue_hu"]["fat"]


def test_drawn_tissue_hu_lie_in_their_physical_ranges():
    tissue, anatomy = TissueConfig(), AnatomyConfig()
    rng = np.random.default_rng(0)
    phases = set()
    for _ in range(300):
        hu = sample_intensities(
            tissue, anatomy, rng, trabecular_hu=150.0, cortical_hu=800.0, osteoporotic=False
        )
        m = hu.mean_hu
        phases.add(hu.contrast_phase)
        assert -120 <= m["fat"] <= -70 and -900 <= m["lung"] <= -750
        assert 60 <= m["disc"] <= 110 and 0 <= m["csf"] <= 25
        if hu.contrast_phase == "none":
            assert 35 <= m["muscle"] <= 65 and 40 <= m["liver"] <= 70 and 35 <= m["blood"] <= 50
        else:
            assert 150 <= m["blood"] <= 400 and m["liver"] > 40
        assert all(tissue.texture_sd_hu_range[0] <= hu.sd_hu[k] <= 12 for k in ("fat", "muscle"))
    assert phases == {"none", "arterial", "venous"}


def test_tissue_hu_measured_in_the_tissue_masks_is_the_drawn_hu():
    case = generate_case(_quiet(preset("small")), case_rng(0, 2))
    ct, labels = case.ct.data.astype(float), case.tissue_mask.data
    drawn = case.acquisition["tissue_hu"]
    for name, tolerance in (("fat", 15), ("muscle", 15), ("disc", 30), ("blood", 20)):
        core = ndimage.binary_erosion(labels == TISSUE_LABELS[name], iterations=1)
        assert core.sum() > 50, name
        assert abs(np.median(ct[core]) - drawn[name]) < tolerance, name
    trabecular = ndimage.binary_erosion(case.subregion_mask.data == 50, iterations=1)
    assert abs(np.median(ct[trabecular]) - drawn["trabecular"]) < 60
    lo, hi = AnatomyConfig().trabecular_hu_range
    assert lo <= drawn["trabecular"] <= hi


def test_ribs_at_thoracic_levels_articulate_with_their_vertebra_and_none_at_lumbar():
    config = _quiet(preset("small"), n_levels_range=(17, 17), fov_xy_mm_range=(160.0, 160.0))
    case = generate_case(config, case_rng(1, 0))  # T5-L5 in view
    rib = case.tissue_mask.data == TISSUE_LABELS["rib"]
    ijk = np.argwhere(rib)
    rib_mm = ijk @ case.ct.affine[:3, :3].T + case.ct.affine[:3, 3]
    vertebra = case.vertebra_mask.data
    levels = {v.level: v for v in case.vertebrae}
    for level in ("T6", "T8", "T10"):
        v = levels[level]
        near = rib_mm[np.abs(rib_mm[:, 2] - v.centroid_mm[2]) < 12.0]
        dx = near[:, 0] - v.centroid_mm[0]
        assert (dx > 20).sum() > 30 and (dx < -20).sum() > 30, level
        # the rib touches its vertebra (costovertebral / costotransverse joints)
        own = np.argwhere(vertebra == v.vertebra_label)
        own_mm = own @ case.ct.affine[:3, :3].T + case.ct.affine[:3, 3]
        close = near[np.linalg.norm(near[:, :2] - v.centroid_mm[:2], axis=1) < 45]
        gap = np.min(np.linalg.norm(close[:, None, :] - own_mm[None, ::7, :], axis=2))
        assert gap < 3.0, level
    for level in ("L2", "L3", "L4", "L5"):
        v = levels[level]
        assert not np.any(np.abs(rib_mm[:, 2] - v.centroid_mm[2]) < 15.0), level


def test_trabecular_texture_is_elongated_along_the_vertebral_axis():
    spec = BoneSpec(
        grain_mm=1.0, anisotropy=3.0, wall_mm=1.0, endplate_mm=1.5, sclerosis_hu=50.0,
        posterior_extra_hu=50.0, vein_hu=30.0,
    )  # fmt: skip
    tile = trabecular_tile(np.random.default_rng(0), spec, osteoporotic=False).data
    lag = 3  # voxels of 0.6 mm
    across = np.corrcoef(tile[:-lag].ravel(), tile[lag:].ravel())[0, 1]
    along = np.corrcoef(tile[:, :, :-lag].ravel(), tile[:, :, lag:].ravel())[0, 1]
    assert along > across + 0.3
    assert abs(tile.std() - 1.0) < 0.01


def test_basivertebral_vein_enters_the_middle_of_the_posterior_wall():
    a, b = 20.0, 15.0
    u = np.array([0.0, 0.0, 0.0, 12.0])
    v = np.array([-0.9 * b, -0.9 * b, 10.0, -0.9 * b])
    height = np.array([0.5, 0.95, 0.5, 0.5])
    w = basivertebral_weight(u, v, height, a=a, b=b, length_mm=10.0)
    assert w[0] == pytest.approx(1.0) and w[1] == 0 and w[2] == 0 and w[3] == 0


def test_noise_has_the_drawn_sd_and_correlated_neighbours():
    rng = np.random.default_rng(0)
    for grain_mm in AcquisitionConfig().noise_grain_mm_range:
        for spacing in (0.6, 1.0):  # the in-plane spacing range, sharp kernels use 0.75 x grain
            grain = noise_filter_sd_vox(0.75 * grain_mm, spacing)
            noise = correlated_noise((96, 96, 24), rng, sd_hu=25.0, grain_vox=grain)
            assert noise.std() == pytest.approx(25.0, rel=0.01)
            assert _neighbour_correlation(noise, 0) > 0.3
            assert _neighbour_correlation(noise, 1) > 0.3
    # and in a generated scan: constant phantom through the whole acquisition
    grid = BuildGrid(origin_mm=np.zeros(3), spacing_mm=1.0, shape=(80, 80, 20))
    scan = _scan(noise_hu=30.0, kernel="sharp", kernel_gain=0.8, noise_grain_mm=0.6)
    ct, _ = acquire(np.full(grid.shape, 40.0, np.float32), {}, grid, scan=scan, rng=rng)
    noise = ct.data.astype(float) - 40.0
    assert noise.std() == pytest.approx(30.0, rel=0.05)
    assert _neighbour_correlation(noise, 0) > 0.3


def _edge_overshoot(kernel: str, gain: float) -> float:
    grid = BuildGrid(origin_mm=np.zeros(3), spacing_mm=1.0, shape=(80, 40, 8))
    hu = np.full(grid.shape, -100.0, np.float32)
    hu[40:] = 700.0  # a bone plateau: half space x >= 40 mm
    scan = _scan(kernel=kernel, kernel_gain=gain, kernel_blur_mm=0.5)
    ct, _ = acquire(hu, {}, grid, scan=scan, rng=np.random.default_rng(0))
    profile = ct.data[:, 20, 4].astype(float)
    return float(profile[40:50].max() - profile[60:].mean())


def test_sharp_kernel_increases_edge_overshoot():
    soft, sharp = _edge_overshoot("soft", 0.0), _edge_overshoot("sharp", 0.8)
    assert soft < 5.0
    assert sharp > soft + 100.0
    # an unsharp mask preserves the plateaus
    flat = apply_kernel(
        np.full((20, 20, 3), 300.0, np.float32), spacing_mm=(1, 1, 1), kernel="sharp", gain=1.0
    )
    assert np.allclose(flat, 300.0)


def test_clean_preset_stays_simple_and_configs_are_validated():
    scan = sample_scan(preset("clean").acquisition, np.random.default_rng(0))
    assert scan.spacing_mm == (1.0, 1.0, 1.0) and scan.orientation == "RAS"
    assert scan.kernel == "standard" and scan.kernel_gain == 0.0
    assert scan.bias_hu == scan.cupping_hu == scan.streak_hu == 0.0
    assert scan.noise_hu == 10.0
    with pytest.raises(InputError, match="low <= high"):
        AcquisitionConfig(noise_hu_range=(40.0, 10.0))
    with pytest.raises(InputError, match="kernels"):
        AcquisitionConfig(kernels=("blurry",), kernel_weights=(1.0,))
    with pytest.raises(InputError, match="probability"):
        TissueConfig(aortic_calcification_probability=1.5)
