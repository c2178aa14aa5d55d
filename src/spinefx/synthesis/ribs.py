"""Ribs: full arcs from the costovertebral joint, past the transverse process, around the lung.

Each rib of a thoracic vertebra is a smooth curve through its head (beside the upper body),
its tubercle (in front of the transverse-process tip) and points just outside the lung's
cross-section at that level, descending anteriorly; T11 and T12 are short floating ribs.
It is rasterised as a tube of elliptic section (taller than thick) measured from the curve's
projection on the axial plane, with a cortical shell over trabecular bone; optional costal
cartilage continues the true ribs. Ribs get no vertebra label (VerSe masks have none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

from spinefx.synthesis.bone import TextureTile, cortical_fraction
from spinefx.synthesis.grid import BuildGrid
from spinefx.synthesis.intensities import TISSUE_LABELS
from spinefx.synthesis.organs import lung_outline
from spinefx.synthesis.posterior import TP_LEFT, TP_RIGHT, transverse_processes
from spinefx.synthesis.spine import PatientSpec, VertebraSpec

_STEP_MM = 0.4


@dataclass(frozen=True)
class RibSpec:
    """One rib (drawn per patient).

    Attributes:
        label: VerSe label of its vertebra (8-19).
        side: +1 right, -1 left.
        drop_mm: how far the anterior end lies below the head.
        half_thickness_mm / half_height_mm: semi-axes of the shaft's section.
        end_angle: where the bony rib ends on the lung outline (radians, 0 lateral, pi/2
            anterior).
        cartilage: continues as costal cartilage.
    """

    label: int
    side: float
    drop_mm: float
    half_thickness_mm: float
    half_height_mm: float
    end_angle: float
    cartilage: bool


def sample_ribs(
    vertebrae: list[VertebraSpec], rng: np.random.Generator, *, cartilage_probability: float
) -> list[RibSpec]:
    """Draw the ribs of every thoracic vertebra (both sides)."""
    size = rng.uniform(0.85, 1.15)
    cartilage = bool(rng.random() < cartilage_probability)
    ribs = []
    for spec in vertebrae:
        if not spec.thoracic:
            continue
        n = spec.label - 7  # rib number 1-12
        end = {11: 0.1, 12: -0.6}.get(n, 1.3 if n <= 7 else 1.0)
        drop = 25.0 + 55.0 * np.clip((n - 1) / 4.0, 0.0, 1.0) - (15.0 if n >= 11 else 0.0)
        for side in (-1.0, 1.0):
            ribs.append(
                RibSpec(
                    label=spec.label,
                    side=side,
                    drop_mm=float(drop * rng.uniform(0.85, 1.15)),
                    half_thickness_mm=float(size * rng.uniform(2.4, 3.2)),
                    half_height_mm=float(size * rng.uniform(5.0, 6.5) * (0.7 if n == 1 else 1.0)),
                    end_angle=float(end + rng.uniform(-0.1, 0.1)),
                    cartilage=cartilage and n <= 10,
                )
            )
    return ribs


def rib_centreline(
    rib: RibSpec, spec: VertebraSpec, patient: PatientSpec
) -> tuple[np.ndarray, np.ndarray, float]:
    """The rib's centre curve, head first.

    Returns:
        (points, arc_mm, bony_mm): ``(n, 3)`` world mm every 0.4 mm, their arc length from
        the head, and the arc length where bone ends (costal cartilage beyond).
    """
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    tp = TP_RIGHT if rib.side > 0 else TP_LEFT
    _, tip, tp_radius = transverse_processes(spec)[tp]
    head = np.array([rib.side * (0.75 * a + 4.0), -0.6 * b, 0.3 * h])
    tubercle = tip + np.array([rib.side * 1.0, tp_radius + 0.6 * rib.half_thickness_mm, -1.0])
    local = np.stack([head, tubercle])
    world = spec.origin_mm + local @ spec.frame.T
    # then around the lung, just outside its outline at the level of this vertebra
    level = float(spec.label - 8)
    angles = np.linspace(-0.75 * np.pi, rib.end_angle, 16)
    if rib.cartilage:
        angles = np.r_[angles, rib.end_angle + np.linspace(0.15, 0.6, 4)]
    gap = rib.half_thickness_mm + 2.0
    px, py = lung_outline(patient.body, level, a=a, b=b, angles=angles, gap=gap).T
    keep = px > abs(tubercle[0]) + 12.0
    arc = np.stack([spec.origin_mm[0] + rib.side * px[keep], spec.origin_mm[1] + py[keep]], 1)
    points = np.vstack([world[:, :2], arc])
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    frac = chord / chord[-1]
    z = world[0, 2] + (world[1, 2] - world[0, 2]) * np.minimum(frac / frac[1], 1.0)
    z = z - rib.drop_mm * np.clip((frac - frac[1]) / (1 - frac[1]), 0.0, 1.0) ** 1.5
    spline = CubicSpline(chord, np.column_stack([points, z]), bc_type="natural")
    s_dense = np.arange(0.0, chord[-1], _STEP_MM)
    bony = chord[-1] * (0.8 if rib.cartilage else 1.0)  # the last fifth is costal cartilage
    return spline(s_dense), s_dense, bony


def render_ribs(
    grid: BuildGrid,
    hu: np.ndarray,
    labels: np.ndarray,
    ribs: list[RibSpec],
    patient: PatientSpec,
    tile: TextureTile,
) -> np.ndarray:
    """Draw every rib into ``hu`` / ``labels`` in place; returns the bool rib mask."""
    by_label = {v.label: v for v in patient.vertebrae}
    out = np.zeros(grid.shape, bool)
    for rib in ribs:
        curve, arc_mm, bony_mm = rib_centreline(rib, by_label[rib.label], patient)
        _rasterise(grid, hu, labels, out, rib, curve, arc_mm, bony_mm, patient, tile)
    return out


def _rasterise(grid, hu, labels, out, rib, curve, arc_mm, bony_mm, patient, tile) -> None:
    # section: round near the head, a tall flat band along the shaft
    along = np.clip(arc_mm / 30.0, 0.0, 1.0)
    half_t = rib.half_thickness_mm * (1.4 - 0.4 * along)
    half_h = rib.half_height_mm * (0.75 + 0.25 * along)
    reach = float(half_h.max()) + grid.spacing_mm
    lo = np.floor((curve.min(0) - reach - grid.origin_mm) / grid.spacing_mm).astype(int)
    hi = np.ceil((curve.max(0) + reach - grid.origin_mm) / grid.spacing_mm).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, grid.shape)
    if np.any(hi <= lo):
        return
    axes = [grid.origin_mm[i] + grid.spacing_mm * np.arange(lo[i], hi[i]) for i in range(3)]
    px, py = np.meshgrid(axes[0], axes[1], indexing="ij")
    dist, nearest = cKDTree(curve[:, :2]).query(np.column_stack([px.ravel(), py.ravel()]))
    ring = np.flatnonzero(dist < half_t[nearest])
    if ring.size == 0:
        return
    i = nearest[ring]
    dz = (axes[2][None, :] - curve[i, 2][:, None]) / half_h[i][:, None]
    q = np.sqrt((dist[ring] / half_t[i])[:, None] ** 2 + dz**2)
    inside = q <= 1.0
    col, k = np.nonzero(inside)
    gi = lo[0] + ring[col] // px.shape[1]
    gj = lo[1] + ring[col] % px.shape[1]
    gk = lo[2] + k
    depth = (1.0 - q[col, k]) * np.minimum(half_t[i[col]], half_h[i[col]])
    tissue = patient.hu
    cartilage = arc_mm[i[col]] > bony_mm
    tex = tile.sample(grid.axis_mm(0)[gi], grid.axis_mm(1)[gj], grid.axis_mm(2)[gk], np.zeros(3))
    marrow = 0.8 * tissue.mean_hu["trabecular"] + tissue.sd_hu["trabecular"] * tex
    frac = cortical_fraction(depth, patient.bone.wall_mm, grid.spacing_mm)
    value = frac * tissue.mean_hu["cortical"] + (1 - frac) * marrow
    value = np.where(cartilage, tissue.mean_hu["cartilage"] + 10.0 * tex, value)
    hu[gi, gj, gk] = value
    labels[gi, gj, gk] = np.where(cartilage, TISSUE_LABELS["cartilage"], TISSUE_LABELS["rib"])
    out[gi, gj, gk] = True
