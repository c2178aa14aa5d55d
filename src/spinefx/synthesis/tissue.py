"""Soft tissue around the spine: body wall, muscles, the body cavities, canal and discs.

:func:`soft_tissue` paints, on the build grid, a superelliptic body outline with skin,
subcutaneous fat and a muscular wall, the thoracic and abdominal contents
(:mod:`spinefx.synthesis.organs`), the paraspinal muscles and psoas, and records every voxel's
tissue class. Discs and the canal (dural sac, cord, epidural fat) are drawn in the vertebrae's
own frames by :func:`draw_canal_and_discs`.
"""

from __future__ import annotations

import numpy as np

from spinefx.synthesis.grid import BuildGrid
from spinefx.synthesis.intensities import TISSUE_LABELS
from spinefx.synthesis.organs import paint_abdomen, paint_thorax, paint_vessels
from spinefx.synthesis.posterior import canal_size
from spinefx.synthesis.scene import Slab, cavity_back, create_slab
from spinefx.synthesis.spine import PatientSpec, VertebraSpec, local_frame, nominal_size

#: Slices painted at a time (bounds the size of the painters' temporaries).
CHUNK_SLICES = 24


def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def soft_tissue(
    grid: BuildGrid, patient: PatientSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """HU and tissue labels of everything but bone, discs and canal on the build grid.

    Returns:
        (hu, labels): float32 HU and uint8 :data:`TISSUE_LABELS` codes, both ``grid.shape``.
    """
    scene = create_slab(grid, patient, rng)
    for s in scene.chunks(CHUNK_SLICES):
        inner = _body_wall(s, patient)
        paint_abdomen(s, inner)
        paint_thorax(s, inner)
        _back_muscles(s, patient)
        paint_vessels(s)
    return scene.hu, scene.labels


def _body_wall(s: Slab, patient: PatientSpec) -> np.ndarray:
    """Skin, fat and the muscular wall under a superelliptic outline; returns the cavity mask."""
    body = patient.body
    t = s.track
    muscle_depth = body.back_muscle_mm * (0.7 + 0.3 * t["lumbar"])
    back = t["y"] - t["b"] - 22.0 - muscle_depth - body.fat_mm  # posterior skin
    half_depth = body.half_depth_mm * (0.92 + 0.08 * t["lumbar"])
    cy = back + half_depth
    p = body.outline_power
    ex = np.abs(s.dx / body.half_width_mm) ** p  # (nx, 1, nz)
    ey = np.abs((s.y - cy) / half_depth) ** p  # (1, ny, nz)
    r = (ex + ey) ** (1.0 / p) * (1.0 + 0.015 * s.fields["low"])
    norm = np.sqrt(s.dx**2 + (s.y - cy) ** 2) + 1e-3
    radius = np.sqrt((body.half_width_mm * s.dx) ** 2 + (half_depth * (s.y - cy)) ** 2) / norm
    depth = (1.0 - r) * radius  # mm below the skin (first order)
    del r, norm, radius
    fat_depth = body.fat_mm * (1.0 + 0.25 * s.fields["low"])
    outline = depth >= 0
    s.paint(outline, "skin", "fine")
    s.paint(outline & (depth > 2.0), "fat", "mid")
    # fibrous septa of the subcutaneous fat
    septa = outline & (depth > 2.0) & (depth < fat_depth) & (np.abs(s.fields["fine"]) < 0.05)
    s.hu[septa] += 0.5 * (s.intensities.mean_hu["muscle"] - s.intensities.mean_hu["fat"])
    wall = outline & (depth > fat_depth)
    s.paint(wall, "muscle", "mid")
    # the body cavity: inside the muscular wall, in front of the back muscles (the lungs
    # reach further back, into the paravertebral gutters)
    inner = depth > fat_depth + 10.0 + 3.0 * s.fields["low"]
    s.paint(inner & (s.dy > cavity_back(s)), "fat", "mid")
    return inner


def _superellipse(s: Slab, cx, cy, rx, ry, power: float = 2.5) -> np.ndarray:
    return np.abs((s.x - cx) / rx) ** power + np.abs((s.y - cy) / ry) ** power


def _back_muscles(s: Slab, patient: PatientSpec) -> None:
    """The fat plane beside multifidus; psoas and quadratus lumborum; fatty marbling.

    Behind the spine everything inside the fat is muscle (painted by the body wall); a thin,
    broken fat plane separates multifidus from the erector spinae, and the marbling of all
    back muscles grows with age.
    """
    body = patient.body
    t, level = s.track, s.track["level"]
    depth = body.back_muscle_mm * (0.7 + 0.3 * t["lumbar"])
    y_lamina = t["y"] - t["b"] - 18.0
    back = (s.labels == TISSUE_LABELS["muscle"]) & (s.dy < -t["b"])
    planes = np.zeros(s.hu.shape, bool)
    for side in (-1.0, 1.0):
        # the fat plane between multifidus and the erector spinae, on the lateral side
        multifidus = _superellipse(
            s, t["x"] + side * 11.0, y_lamina - 0.45 * depth, 9.0 + 2.0 * t["lumbar"], 0.5 * depth
        )
        lateral = side * s.dx > 11.0 + 0.5 * t["a"]
        planes |= (np.abs(multifidus - 1.0) < 0.1) & lateral & (s.y < y_lamina - 6.0)
    planes &= back & (s.fields["low"] > -0.4)
    s.hu[planes] = 0.5 * (s.hu[planes] + s.intensities.mean_hu["fat"])
    muscles = np.zeros(s.hu.shape, bool)
    for side in (-1.0, 1.0):
        psoas_r = np.clip(4.0 + 3.0 * (level - 11.0), 0.0, 18.0)
        psoas = _ellipse(
            s.x,
            s.y,
            t["x"] + side * (t["a"] + 0.75 * psoas_r),
            t["y"] - 0.15 * t["b"],
            psoas_r + 1e-3,
            0.9 * psoas_r + 1e-3,
        ) & (psoas_r > 1.0)
        quadratus = (
            _ellipse(s.x, s.y, t["x"] + side * (t["a"] + 42.0), y_lamina + 2.0, 14.0, 9.0)
            & (level > 12.0)
            & (level < 16.5)
        )
        muscles |= psoas | quadratus
    muscles &= s.labels > 0  # inside the body outline
    s.paint(muscles, "muscle", "mid")
    marbling = (back | muscles) & (s.fields["fine"] > 1.6 - 2.0 * body.muscle_fat)
    s.paint(marbling, "fat", "fine", gain=0.5)


def draw_canal_and_discs(
    grid: BuildGrid,
    hu: np.ndarray,
    labels: np.ndarray,
    patient: PatientSpec,
    rng: np.random.Generator,
) -> None:
    """Canal (epidural fat, dural sac, cord) and the discs between vertebrae, in place."""
    vs = patient.vertebrae
    tissue = patient.hu
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
            np.array([cu + 2, -0.9 * b + 1, reach]),
        )
        if box is None:
            continue
        u, v, w = grid.local_coordinates(box, spec.origin_mm, spec.frame)
        vc = -0.9 * b - cv
        canal = ((u / cu) ** 2 + ((v - vc) / cv) ** 2 <= 1.0) & (np.abs(w) <= reach)
        # the dural sac sits anteriorly, epidural fat fills the space behind and beside it
        sac = ((u / (0.82 * cu)) ** 2 + ((v - vc - 0.12 * cv) / (0.8 * cv)) ** 2 <= 1.0) & canal
        cord = ((u / (0.45 * cu)) ** 2 + ((v - vc) / (0.55 * cv)) ** 2 <= 1.0) & canal
        sub, lab = hu[box], labels[box]
        sub[canal], lab[canal] = tissue.mean_hu["fat"] + 20.0, TISSUE_LABELS["fat"]
        sub[sac], lab[sac] = tissue.mean_hu["csf"], TISSUE_LABELS["csf"]
        if spec.label <= 20:  # the cord ends (conus) around L1
            sub[cord], lab[cord] = tissue.mean_hu["cord"], TISSUE_LABELS["cord"]
    for upper, lower in zip(vs[:-1], vs[1:], strict=True):
        _draw_disc(grid, hu, labels, upper, lower, patient, rng)


def _draw_disc(grid, hu, labels, upper: VertebraSpec, lower: VertebraSpec, patient, rng) -> None:
    frame = local_frame(upper.frame[:, 2] + lower.frame[:, 2])
    centre = (upper.origin_mm + lower.origin_mm) / 2
    gap = float(np.linalg.norm(upper.origin_mm - lower.origin_mm))
    a = (upper.width_mm + lower.width_mm) / 4
    b = (upper.depth_mm + lower.depth_mm) / 4
    depressions = max(
        upper.truth.height_loss * upper.height_mm, lower.truth.height_loss * lower.height_mm
    )
    half = gap / 2 - 0.5 * (upper.height_mm + lower.height_mm) / 2 + depressions + 2.5
    half = max(half, 1.0)
    nucleus_hu = patient.hu.mean_hu["disc"] - rng.uniform(5, 20)
    annulus_hu = patient.hu.mean_hu["disc"] + rng.uniform(5, 20)
    vacuum = rng.random() < 0.4
    box = grid.box_around(
        centre, frame, np.array([-a - 3, -b - 3, -half]), np.array([a + 3, b + 3, half])
    )
    if box is None:
        return
    u, v, w = grid.local_coordinates(box, centre, frame)
    r2 = (u / (a * 1.03)) ** 2 + (v / (b * 1.03)) ** 2
    disc = (r2 <= 1.0) & (v >= -0.93 * b) & (np.abs(w) <= half)
    value = np.where(r2 < 0.35, nucleus_hu, annulus_hu).astype(np.float32)
    degenerated = lower.disc_below_mm < 0 or upper.disc_below_mm < 0.7 * _normal_disc(upper)
    if degenerated:
        value = value - 20.0  # desiccated degenerated disc
    sub, lab = hu[box], labels[box]
    sub[disc], lab[disc] = value[disc], TISSUE_LABELS["disc"]
    if degenerated and vacuum:  # vacuum phenomenon: a gas cleft in the nucleus
        gas = disc & (r2 < 0.25) & (np.abs(w) < 0.8) & (np.abs(u) < 0.6 * a)
        sub[gas], lab[gas] = patient.hu.mean_hu["gas"], TISSUE_LABELS["gas"]


def _normal_disc(spec: VertebraSpec) -> float:
    return nominal_size(spec.label)["disc"] * 0.9 if spec.label != 26 else 0.0
