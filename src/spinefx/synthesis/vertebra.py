"""One vertebra in its local frame, rendered into the build grid with the bone model.

Local coordinates ``(u, v, w)`` mm: u lateral (+right), v anterior, w cranial, origin at the
body centre. The body is an implicit shape (waisted elliptic cylinder with concave endplates,
deformed by its fracture); the posterior elements live in :mod:`spinefx.synthesis.posterior`.
HU follow :mod:`spinefx.synthesis.bone`: partial-volume cortex over textured trabecular bone.
Labels follow VerSe: the vertebra mask holds the VerSe label, the sub-region mask the posterior
element codes, 49 body cortex (corpus border; a one-voxel erosion shell) and 50 body interior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.synthesis.bone import (
    BoneSpec,
    TextureTile,
    basivertebral_weight,
    cortical_fraction,
)
from spinefx.synthesis.fractures import loss_field, posterior_loss
from spinefx.synthesis.grid import BuildGrid, LocalBox
from spinefx.synthesis.intensities import TissueIntensities
from spinefx.synthesis.posterior import posterior_parts, screw_mask
from spinefx.synthesis.spine import VertebraSpec

BODY_BORDER, BODY_CORE = 49, 50
METAL_HU = 3000.0


@dataclass
class Volumes:
    """The build-grid arrays every renderer writes into (all of ``grid.shape``)."""

    hu: np.ndarray  # float32 HU
    vertebra: np.ndarray  # uint8 VerSe labels
    subregion: np.ndarray  # uint8 VerSe sub-region labels
    fxzone: np.ndarray  # uint8 VerSe label of the fractured vertebra in its fracture zone
    metal: np.ndarray  # bool, screws


def _endplate_noise(u, v, rng: np.random.Generator, amplitude_mm: float) -> np.ndarray:
    # a few random sinusoids over the cross-section: an irregular fractured endplate
    out = np.zeros(np.broadcast(u, v).shape, np.float32)
    for _ in range(4):
        k = rng.uniform(0.25, 0.6, size=2) * rng.choice([-1, 1], size=2)
        out += np.sin(k[0] * u + k[1] * v + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return out * (amplitude_mm / 2.0)


@dataclass
class BodyShape:
    """A vertebral body on the voxels of a box (all arrays of the box's shape).

    Attributes:
        body: bool body mask.
        zone: bool fracture zone.
        condensation: float32 0-1 weight of the trabecular condensation band of a fracture.
        wall_mm: depth of a voxel inside the side / posterior walls, mm (0 outside the body).
        plate_mm: depth inside the nearest endplate (or Schmorl's node), mm.
        height_pos: 0 at the lower, 1 at the upper endplate.
    """

    body: np.ndarray
    zone: np.ndarray
    condensation: np.ndarray
    wall_mm: np.ndarray
    plate_mm: np.ndarray
    height_pos: np.ndarray


def body_mask(spec: VertebraSpec, box: LocalBox, rng: np.random.Generator) -> BodyShape:
    """Vertebral body of ``spec`` (deformed by its fracture), on the voxels of ``box``."""
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    reach = h / 2 * (1 + posterior_loss(spec.truth)) + 3.0
    out = BodyShape(
        body=np.zeros(box.shape, bool),
        zone=np.zeros(box.shape, bool),
        **{k: np.zeros(box.shape, np.float32) for k in ("condensation", "wall_mm", "plate_mm")},
        height_pos=np.zeros(box.shape, np.float32),
    )
    sub = box.sub_box(np.array([-a - 8, -b - 1, -reach]), np.array([a + 8, b + 8, reach]))
    if sub is None:
        if spec.truth.genant_grade > 0:
            _endplate_noise(0.0, 0.0, rng, 0.3)  # the same draws whether in view or not
        return out
    for name, value in zip(
        ("body", "zone", "condensation", "wall_mm", "plate_mm", "height_pos"),
        _body_shape(spec, *box.uvw(sub), rng),
        strict=True,
    ):
        getattr(out, name)[sub] = value
    return out


def _body_shape(spec: VertebraSpec, u, v, w, rng: np.random.Generator):
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    truth = spec.truth
    f = truth.superior_fraction
    w = w + (1 - 2 * f) * posterior_loss(truth) * h / 2  # recentre a crushed body
    u_rel, v_rel = u / a, v / b
    r2 = u_rel**2 + v_rel**2
    waist = 1.0 - 0.07 * np.clip(1.0 - (2 * w / h) ** 2, 0.0, 1.0)
    inside_xy = (r2 <= waist**2) & (v_rel >= -0.9)
    concavity = 0.04 * h * np.clip(1.0 - r2, 0.0, 1.0)  # normal endplate concavity
    h0 = h - 2 * concavity
    lam = loss_field(u_rel, v_rel, truth)
    top = h0 / 2 - f * lam * h0
    bottom = -h0 / 2 + (1 - f) * lam * h0
    zone = np.zeros(np.broadcast(u, v, w).shape, bool)
    cond = np.zeros(zone.shape, np.float32)
    if truth.genant_grade > 0:
        rough = _endplate_noise(u, v, rng, 0.3) * (lam > 0.02)
        top = top + rough * (f > 0.3)
        bottom = bottom + rough * (f < 0.7)
        moved = lam > 0.05 * truth.height_loss
        near_top = (top - w < 6.0) & (f > 0.3)
        near_bottom = (w - bottom < 6.0) & (f < 0.7)
        zone = moved & (near_top | near_bottom)
        cond = (lam / truth.height_loss) * np.clip(
            1.0
            - np.minimum(np.where(f > 0.3, top - w, 99), np.where(f < 0.7, w - bottom, 99)) / 5.0,
            0.0,
            1.0,
        )
    body = inside_xy & (w <= top) & (w >= bottom)
    # depths below the surface (first order: level-set value over its gradient)
    rho = np.sqrt(r2)
    grad = np.sqrt((u_rel / a) ** 2 + (v_rel / b) ** 2) / np.maximum(rho, 1e-3)
    wall = np.minimum((waist - rho) / np.maximum(grad, 1e-4), v + 0.9 * b)
    plate = np.minimum(top - w, w - bottom)
    if spec.osteophytes:
        r = np.sqrt(r2)
        near_plate = np.minimum(np.abs(w - top), np.abs(w - bottom))
        spur = (
            (r > 1.0) & (r < 1.0 + 4.0 / b * np.clip(1 - near_plate / 3.0, 0, 1)) & (v_rel > -0.4)
        )
        body |= spur & (w <= top + 1.5) & (w >= bottom - 1.5)
    if spec.schmorl is not None:
        su, sv, radius, superior = spec.schmorl
        cw = top if superior else bottom
        dist = np.sqrt((u - su * a) ** 2 + (v - sv * b) ** 2 + (w - cw) ** 2)
        body &= dist > radius
        plate = np.minimum(plate, dist - radius)
    height_pos = np.clip((w - bottom) / np.maximum(top - bottom, 1.0), 0.0, 1.0)
    return (
        body,
        zone & body,
        (cond * body).astype(np.float32),
        (np.maximum(wall, 0.0) * body).astype(np.float32),
        (np.maximum(plate, 0.0) * body).astype(np.float32),
        height_pos.astype(np.float32),
    )


def render_vertebra(
    spec: VertebraSpec,
    grid: BuildGrid,
    volumes: Volumes,
    rng: np.random.Generator,
    *,
    hu: TissueIntensities,
    bone: BoneSpec,
    tile: TextureTile,
) -> None:
    """Draw one vertebra (body, posterior elements, screws) into ``volumes`` in place.

    Args:
        spec: the vertebra.
        grid: the build grid.
        volumes: arrays drawn into.
        rng: the case's generator (texture offset, vein, fracture details).
        hu: the scan's tissue HU (``trabecular`` and ``cortical``).
        bone: the patient's bone model.
        tile: the patient's trabecular texture, sampled in this vertebra's frame.
    """
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    lower = np.array([-a - 36, -b - 75, -h / 2 - 42])
    upper = np.array([a + 36, b + 8, h / 2 + spec.disc_below_mm + 14])
    box = grid.box_around(spec.origin_mm, spec.frame, lower, upper)
    condensation_hu = float(rng.uniform(150, 300))
    if box is None:
        return
    local = grid.local_box(box, spec.origin_mm, spec.frame)
    shape = body_mask(spec, local, rng)
    parts = {} if spec.label == 26 else posterior_parts(spec, local)
    sp = grid.spacing_mm
    shell_vox = max(1, int(round(1.2 / sp)))
    out = volumes.hu[box]
    sub = volumes.subregion[box]
    trab, cort = hu.mean_hu["trabecular"], hu.mean_hu["cortical"]
    trab_sd = hu.sd_hu["trabecular"]
    offset = np.asarray(spec.texture_offset_mm)
    if parts:
        posterior = np.any(list(parts.values()), axis=0) & ~shape.body
        for code, mask in parts.items():
            sub[mask & posterior] = code
        shell = (posterior & ~_eroded(posterior, shell_vox))[posterior]
        tex = tile.sample(*local.uvw_at(posterior), offset)
        frac = np.where(shell, min(1.0, bone.wall_mm * 1.3 / sp), 0.0).astype(np.float32)
        inner = trab + bone.posterior_extra_hu + trab_sd * tex
        out[posterior] = frac * cort + (1 - frac) * inner
    body = shape.body
    core = _eroded(body, shell_vox)
    u, v, w = local.uvw_at(body)
    wall, plate = shape.wall_mm[body], shape.plate_mm[body]
    inner = (
        trab
        + trab_sd * tile.sample(u, v, w, offset)
        + 0.5 * trab_sd * tile.sample(w, v, u, offset, zoom=5.0)  # marrow heterogeneity
        + bone.sclerosis_hu * np.exp(-plate / 2.0) * (1.0 + spec.osteophytes)
        + condensation_hu * shape.condensation[body]
    )
    frac = np.maximum(
        cortical_fraction(wall, bone.wall_mm, sp), cortical_fraction(plate, bone.endplate_mm, sp)
    )
    values = frac * cort * (1.0 + 0.05 * tile.sample(w, u, v, offset)) + (1 - frac) * inner
    if spec.vein_mm > 0:
        weight = basivertebral_weight(
            u, v, shape.height_pos[body], a=a, b=b, length_mm=spec.vein_mm
        )
        values = (1 - weight) * values + weight * bone.vein_hu
    out[body] = values
    sub[body] = BODY_BORDER
    sub[core] = BODY_CORE
    volumes.vertebra[box][body | np.any(list(parts.values()), axis=0) if parts else body] = (
        spec.label
    )
    volumes.fxzone[box][shape.zone] = spec.label
    if spec.screws:
        metal = screw_mask(spec, local)
        out[metal] = METAL_HU
        volumes.metal[box] |= metal


def _eroded(mask: np.ndarray, iterations: int) -> np.ndarray:
    # binary erosion computed only inside the mask's bounding box (most of a box is empty)
    out = np.zeros_like(mask)
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return out
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    out[tuple(box)] = ndimage.binary_erosion(mask[tuple(box)], iterations=iterations)
    return out
