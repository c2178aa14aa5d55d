"""Soft tissue around the spine: body outline, fat, muscles, lungs, aorta, canal and discs.

Structures that run along the spine are drawn slice by slice (per world z) around the spine
centre interpolated at that height, which is cheap and accurate enough for tissue that has no
label. Discs and the canal are drawn in the vertebrae's own frames.
"""

from __future__ import annotations

import numpy as np

from spinefx.synthesis.grid import BuildGrid, smooth_noise
from spinefx.synthesis.spine import PatientSpec, VertebraSpec
from spinefx.synthesis.vertebra import canal_size

AIR_HU, FAT_HU, MUSCLE_HU, VISCERA_HU, LUNG_HU = -1000.0, -100.0, 50.0, 35.0, -850.0
CSF_HU, CORD_HU = 12.0, 35.0


def _spine_track(vertebrae: list[VertebraSpec], z: np.ndarray) -> dict[str, np.ndarray]:
    """Spine centre x, y, body half-width and half-depth and lumbar weight per world z."""
    order = np.argsort([s.origin_mm[2] for s in vertebrae])
    vs = [vertebrae[i] for i in order]
    zs = np.array([s.origin_mm[2] for s in vs])
    track = {
        "x": np.interp(z, zs, [s.origin_mm[0] for s in vs]),
        "y": np.interp(z, zs, [s.origin_mm[1] for s in vs]),
        "a": np.interp(z, zs, [s.width_mm / 2 for s in vs]),
        "b": np.interp(z, zs, [s.depth_mm / 2 for s in vs]),
        "lumbar": np.interp(z, zs, [0.0 if s.thoracic else 1.0 for s in vs]),
    }
    return track


def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def soft_tissue(grid: BuildGrid, patient: PatientSpec, rng: np.random.Generator) -> np.ndarray:
    """HU of everything but bone, discs and canal on the build grid, float32 ``grid.shape``."""
    x = grid.axis_mm(0).astype(np.float32)[:, None, None]
    y = grid.axis_mm(1).astype(np.float32)[None, :, None]
    z = grid.axis_mm(2)
    vertebrae = [v for v in patient.vertebrae if v.label != 26]
    t = {k: val.astype(np.float32)[None, None, :] for k, val in _spine_track(vertebrae, z).items()}
    big_a, big_b = patient.body_semi_axes_mm
    back = t["y"] - t["b"] - 75.0  # posterior skin
    cy = back + big_b
    outline = _ellipse(x, y, t["x"], cy, big_a, big_b)
    fat_t = patient.fat_thickness_mm
    inner = _ellipse(x, y, t["x"], cy, big_a - fat_t, big_b - fat_t * 0.8)
    low = smooth_noise(grid.shape, rng, scale_vox=12.0 / grid.spacing_mm)
    hu = np.full(grid.shape, AIR_HU, np.float32)
    hu[outline] = FAT_HU + 15.0 * low[outline]
    # abdominal / mediastinal contents in front of the spine, wrapping around it laterally
    viscera = inner & (y > t["y"] + t["b"] + 4.0 - 0.012 * (x - t["x"]) ** 2)
    blobs = smooth_noise(grid.shape, rng, scale_vox=5.0 / grid.spacing_mm)
    hu[viscera] = VISCERA_HU + 8.0 * low[viscera]
    fat_blobs = viscera & (blobs > 1.4)
    hu[fat_blobs] = FAT_HU + 10.0 * low[fat_blobs]
    # lungs above the diaphragm (thoracic levels), lateral and anterior of the spine
    thorax = (1.0 - t["lumbar"]) > 0.5
    for side in (-1.0, 1.0):
        lung = (
            _ellipse(x, y, t["x"] + side * (t["a"] + 55.0), t["y"] + 15.0, 50.0, 70.0)
            & thorax
            & inner
        )
        hu[lung] = LUNG_HU + 30.0 * low[lung]
    # paraspinal muscles (erector spinae + multifidus hugging the arch) and psoas, with fatty
    # marbling where the fine noise field is high
    marbling = blobs > 1.1
    for side in (-1.0, 1.0):
        erector = _ellipse(x, y, t["x"] + side * 27.0, t["y"] - t["b"] - 36.0, 19.0, 21.0)
        erector |= _ellipse(x, y, t["x"] + side * 11.0, t["y"] - t["b"] - 33.0, 9.0, 15.0)
        erector &= outline
        hu[erector] = MUSCLE_HU + 6.0 * low[erector]
        hu[erector & marbling] = FAT_HU * 0.6
        psoas_r = 6.0 + 16.0 * t["lumbar"]
        psoas = _ellipse(
            x, y, t["x"] + side * (t["a"] + psoas_r * 0.7), t["y"] - 0.2 * t["b"], psoas_r, psoas_r
        )
        psoas &= t["lumbar"] > 0.3
        hu[psoas] = MUSCLE_HU + 6.0 * low[psoas]
    aorta_hu = rng.uniform(250, 350) if patient.contrast else 42.0
    aorta = _ellipse(x, y, t["x"] - 0.35 * t["a"] - 8.0, t["y"] + t["b"] + 13.0, 12.0, 12.0)
    hu[aorta] = aorta_hu
    return hu


def draw_canal_and_discs(
    grid: BuildGrid, hu: np.ndarray, patient: PatientSpec, rng: np.random.Generator
) -> None:
    """CSF-filled canal with the cord, and the discs between vertebrae (in place, before bone)."""
    vs = patient.vertebrae
    for spec in vs:
        if spec.label == 26:
            continue
        b, h = spec.depth_mm / 2, spec.height_mm
        cu, cv = canal_size(spec)
        reach = h / 2 + spec.disc_below_mm + 3.0
        box = grid.box_around(
            spec.origin_mm,
            spec.frame,
            np.array([-cu - 2, -b - 2 * cv - 4, -reach]),
            np.array([cu + 2, -b, reach]),
        )
        if box is None:
            continue
        u, v, w = grid.local_coordinates(box, spec.origin_mm, spec.frame)
        vc = -0.9 * b - cv
        canal = ((u / cu) ** 2 + ((v - vc) / cv) ** 2 <= 1.0) & (np.abs(w) <= reach)
        cord = ((u / (0.45 * cu)) ** 2 + ((v - vc) / (0.55 * cv)) ** 2 <= 1.0) & canal
        sub = hu[box]
        sub[canal] = CSF_HU
        if spec.label <= 20:  # the cord ends (conus) around L1
            sub[cord] = CORD_HU
    for upper, lower in zip(vs[:-1], vs[1:], strict=True):
        _draw_disc(grid, hu, upper, lower, rng)


def _draw_disc(grid: BuildGrid, hu, upper: VertebraSpec, lower: VertebraSpec, rng) -> None:
    w_axis = upper.frame[:, 2] + lower.frame[:, 2]
    from spinefx.synthesis.spine import local_frame

    frame = local_frame(w_axis)
    centre = (upper.origin_mm + lower.origin_mm) / 2
    gap = float(np.linalg.norm(upper.origin_mm - lower.origin_mm))
    a = (upper.width_mm + lower.width_mm) / 4
    b = (upper.depth_mm + lower.depth_mm) / 4
    depressions = max(
        upper.truth.height_loss * upper.height_mm, lower.truth.height_loss * lower.height_mm
    )
    half = gap / 2 - 0.5 * (upper.height_mm + lower.height_mm) / 2 + depressions + 2.5
    half = max(half, 1.0)
    box = grid.box_around(
        centre, frame, np.array([-a - 3, -b - 3, -half]), np.array([a + 3, b + 3, half])
    )
    if box is None:
        return
    u, v, w = grid.local_coordinates(box, centre, frame)
    r2 = (u / (a * 1.03)) ** 2 + (v / (b * 1.03)) ** 2
    disc = (r2 <= 1.0) & (v >= -0.93 * b) & (np.abs(w) <= half)
    nucleus = r2 < 0.35
    value = np.where(nucleus, rng.uniform(70, 90), rng.uniform(95, 115)).astype(np.float32)
    if lower.disc_below_mm < 0 or upper.disc_below_mm < 0.7 * _normal_disc(upper):
        value = value - 20.0  # desiccated degenerated disc
    sub = hu[box]
    sub[disc] = value[disc] if value.shape else value


def _normal_disc(spec: VertebraSpec) -> float:
    from spinefx.synthesis.spine import nominal_size

    return nominal_size(spec.label)["disc"] * 0.9 if spec.label != 26 else 0.0
