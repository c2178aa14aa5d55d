"""HU tissue model of a CT rendered from a vertebra label map (before the acquisition).

Inside each vertebra: a cortical shell (thickness in mm, anisotropic voxels allowed) around
trabecular bone with a band-passed, vertically elongated texture; posterior elements denser.
Around it: discs and the spinal canal (see :mod:`spinefx.synthesis.mask_anatomy`), paraspinal
muscles, psoas, aorta and caval vein, abdominal organs with bowel gas or lungs and mediastinum
above the diaphragm, a fat layer under a smooth body outline with a random habitus, and air
outside. Every value is drawn per scan into :class:`TissueParams`; rendering is deterministic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import ndtri

from spinefx.image import apply_affine
from spinefx.synthesis.grid import smooth_noise
from spinefx.synthesis.mask_anatomy import (
    VertebraGeometry,
    analyse_vertebrae,
    axial_axis,
    disc_masks,
    snapped_affine,
    spine_track,
    world_axes,
)
from spinefx.synthesis.mask_deform import to_render_grid

AIR_HU = -1000.0
LUNG_HU = -860.0
GAS_HU = -980.0
_SHELL_SIGMA_MM = 1.2
_WARP_MM = 4.0


@dataclass(frozen=True)
class TissueParams:
    """HU and shapes of one scan's tissues (all drawn per scan).

    Attributes:
        cortical_hu / trabecular_hu: mean HU of cortical shell and trabecular bone.
        cortical_mm: cortical shell thickness of the bodies (posterior elements: 1.5x).
        posterior_extra_hu: posterior elements' trabecular bone is denser by this much.
        vertebra_sd: relative sd of the trabecular HU between vertebrae.
        texture_sd_hu / texture_mm / texture_anisotropy: trabecular texture amplitude, in-plane
            correlation length and vertical-to-horizontal length ratio.
        disc_hu / nucleus_delta_hu: annulus HU and nucleus offset.
        csf_hu / cord_hu / epidural_fat_hu: canal contents.
        muscle_hu / fat_hu / organ_hu / tissue_sd_hu: soft tissue means and smooth spread.
        muscle_fat_fraction: share of fatty infiltration of the paraspinal muscles.
        aorta_hu / cava_hu: vessel HU (contrast or not).
        organ_fraction / gas_fraction: share of the abdomen that is organ / bowel gas.
        body_half_width_mm / body_half_depth_mm: body outline semi-axes.
        back_mm: skin to spinous-process line distance.
        subcutaneous_fat_mm: fat layer thickness.
        outline_harmonics: relative amplitudes of outline harmonics 2, 3, 4.
        diaphragm_mm: diaphragm height relative to the T12 body centroid.
        field_seed: seed of every random field (texture, organs, marbling).
    """

    cortical_hu: float = 800.0
    trabecular_hu: float = 200.0
    cortical_mm: float = 1.2
    posterior_extra_hu: float = 120.0
    vertebra_sd: float = 0.05
    texture_sd_hu: float = 60.0
    texture_mm: float = 0.7
    texture_anisotropy: float = 2.0
    disc_hu: float = 90.0
    nucleus_delta_hu: float = -15.0
    csf_hu: float = 12.0
    cord_hu: float = 35.0
    epidural_fat_hu: float = -80.0
    muscle_hu: float = 50.0
    fat_hu: float = -100.0
    organ_hu: float = 45.0
    tissue_sd_hu: float = 8.0
    muscle_fat_fraction: float = 0.1
    aorta_hu: float = 45.0
    cava_hu: float = 40.0
    organ_fraction: float = 0.6
    gas_fraction: float = 0.05
    body_half_width_mm: float = 150.0
    body_half_depth_mm: float = 110.0
    back_mm: float = 40.0
    subcutaneous_fat_mm: float = 20.0
    outline_harmonics: tuple[float, float, float] = (0.03, 0.02, 0.01)
    diaphragm_mm: float = 0.0
    field_seed: int = 0


def render_tissue(
    labels: np.ndarray,
    affine: np.ndarray,
    params: TissueParams,
    *,
    factors: tuple[int, int, int] = (1, 1, 1),
) -> np.ndarray:
    """HU of the scene on the grid of ``labels`` (float32, ``labels.shape``).

    Args:
        labels: VerSe label array ``(X, Y, Z)`` on a render grid (voxels up to ~1.5 mm).
        affine: its voxel->world RAS+ affine.
        params: the drawn tissue parameters.
        factors: sub-slices per output voxel of the render grid; the soft tissue (smooth,
            unlabelled) is drawn on the output grid and interpolated, bone and discs are drawn
            on the render grid itself.
    """
    rng = np.random.default_rng(params.field_seed)
    vertebrae = analyse_vertebrae(labels, affine)
    if not vertebrae:
        return np.full(labels.shape, AIR_HU, np.float32)
    shape = tuple(n // f for n, f in zip(labels.shape, factors, strict=True))
    to_fine = np.diag([*(float(f) for f in factors), 1.0])
    to_fine[:3, 3] = [(f - 1) / 2.0 for f in factors]
    scene = _Scene.build(shape, affine @ to_fine, vertebrae)
    hu = soft_tissue(scene, params, rng)
    sac = dural_sac(hu, scene, params)
    hu = to_render_grid(hu, factors)
    sac = to_render_grid(sac, factors) > 0.5
    for v in vertebrae:  # epidural fat in the bony canal around the sac
        sub = hu[v.box]
        sub[v.canal & (labels[v.box] == 0) & ~sac[v.box]] = params.epidural_fat_hu
    disc, nucleus = disc_masks(labels, affine, vertebrae)
    hu[disc] = params.disc_hu
    hu[nucleus] += params.nucleus_delta_hu
    paint_bone(hu, labels, affine, vertebrae, params, rng)
    return hu


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


@dataclass(frozen=True, eq=False)
class _Scene:
    """Soft-tissue coordinates: the grid's axes snapped to world axes (see ``snapped_affine``),
    so each coordinate spans one array axis; the spine track and the vertebrae in that frame."""

    shape: tuple[int, ...]
    spacing_mm: float
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    track: dict[str, np.ndarray]
    vertebrae: list[VertebraGeometry]

    @classmethod
    def build(cls, shape, affine, vertebrae: list[VertebraGeometry]) -> _Scene:
        frame = snapped_affine(affine)
        to_frame = frame @ np.linalg.inv(affine)
        moved = [
            dataclasses.replace(
                v,
                centroid_mm=apply_affine(to_frame, v.centroid_mm),
                canal_mm=apply_affine(to_frame, v.canal_mm),
            )
            for v in vertebrae
        ]
        x, y, z = world_axes(frame, shape)
        lattice = np.arange(float(z.min()) - 1, float(z.max()) + 2, 1.0)
        track = {
            k: np.interp(z, lattice, v).astype(np.float32)
            for k, v in spine_track(moved, lattice).items()
        }
        spacing = float(np.mean(_spacing(affine)))
        return cls(tuple(shape), spacing, x, y, z, track, moved)

    def field(self, rng, mm: float) -> np.ndarray:
        return smooth_noise(self.shape, rng, scale_vox=mm / self.spacing_mm)

    def level_z(self, label: int) -> float | None:
        return next((float(v.centroid_mm[2]) for v in self.vertebrae if v.label == label), None)


def soft_tissue(scene: _Scene, p: TissueParams, rng) -> np.ndarray:
    """Air, body outline, fat, muscles, organs, lungs and vessels (float32 ``scene.shape``)."""
    t = scene.track
    # tissue boundaries wander by a few mm (no ruler-straight interfaces along the spine)
    dx = scene.x - t["x"] + _WARP_MM * scene.field(rng, 30.0)
    dy = scene.y - t["y"] + _WARP_MM * scene.field(rng, 30.0)
    low, blobs, fine = scene.field(rng, 40.0), scene.field(rng, 15.0), scene.field(rng, 5.0)
    # body outline: a smooth closed curve around the spine (the spine sits at the back)
    centre_y = (t["posterior"] - t["y"]) - p.back_mm + p.body_half_depth_mm
    ex, ey = dx / p.body_half_width_mm, (dy - centre_y) / p.body_half_depth_mm
    theta = np.arctan2(ey, ex)
    limit = 1.0 + sum(a * np.cos((k + 2) * theta + k) for k, a in enumerate(p.outline_harmonics))
    r = np.sqrt(ex**2 + ey**2) / limit
    min_axis = min(p.body_half_width_mm, p.body_half_depth_mm)
    inner = r < 1.0 - p.subcutaneous_fat_mm / min_axis
    cavity = r < 1.0 - (p.subcutaneous_fat_mm + 10.0) / min_axis
    hu = np.where(r < 1.0, p.fat_hu + 0.6 * p.tissue_sd_hu * low, AIR_HU).astype(np.float32)
    hu[inner] = (p.muscle_hu + p.tissue_sd_hu * low)[inner]  # abdominal / chest wall
    # abdominal contents: organs and fat in front of and beside the spine, some bowel gas
    front = cavity & (dy > -t["b"] * 0.3)
    # retroperitoneal fat and vessels right in front of the bodies, organs farther out
    organ = front & (blobs > ndtri(1 - p.organ_fraction)) & (dy > t["b"] + 15.0)
    hu[front] = (p.fat_hu + p.tissue_sd_hu * fine)[front]
    hu[organ] = (p.organ_hu + 1.5 * p.tissue_sd_hu * low + 0.5 * p.tissue_sd_hu * fine)[organ]
    gas = organ & (fine > ndtri(1 - p.gas_fraction)) & (t["lumbar"] > 0.5)
    hu[gas] = GAS_HU
    _lungs(hu, cavity, dx, dy, scene, p, fine)
    # paraspinal muscles behind the canal, with fatty marbling; psoas beside lumbar bodies
    back = inner & (dy < (t["canal_y"] - t["y"]) + 4.0) & (np.abs(dx) < t["lateral"] + 25.0)
    hu[back] = (p.muscle_hu + p.tissue_sd_hu * low)[back]
    marbling = back & (fine > ndtri(1 - p.muscle_fat_fraction))
    hu[marbling] = p.fat_hu * 0.7
    radius = 6.0 + 16.0 * t["psoas"]
    for side in (-1.0, 1.0):
        cx = side * (t["a"] + 0.8 * radius)
        psoas = ((dx - cx) ** 2 + (dy + 0.2 * t["b"]) ** 2 < radius**2) & (t["lumbar"] > 0.5)
        hu[psoas & inner] = (p.muscle_hu + p.tissue_sd_hu * low)[psoas & inner]
    # aorta anterior-left of the bodies (patient left = -x), caval vein anterior-right
    r_aorta = 9.0 + 3.0 * (1.0 - t["lumbar"])
    aorta = (dx + 0.5 * t["a"] + 8.0) ** 2 + (dy - t["b"] - r_aorta - 2.0) ** 2 < r_aorta**2
    hu[aorta & inner] = p.aorta_hu
    cava = ((dx - 0.5 * t["a"] - 14.0) / 12.0) ** 2 + ((dy - t["b"] - 10.0) / 8.0) ** 2 < 1.0
    hu[cava & inner & (t["lumbar"] > 0.5)] = p.cava_hu
    return hu


def _lungs(hu, cavity, dx, dy, scene: _Scene, p: TissueParams, fine) -> None:
    t, t12 = scene.track, scene.level_z(19)
    if t12 is not None:
        dome = t12 + p.diaphragm_mm
    else:  # no T12 in view: all-lumbar scans have no lung, all-thoracic ones no diaphragm
        dome = np.inf if all(v.label >= 20 for v in scene.vertebrae) else -np.inf
    chest = cavity & (scene.z > dome) & (t["lumbar"] < 0.5)
    mediastinum = (np.abs(dx + 10.0) < 35.0 + 0.4 * np.maximum(dy - t["b"], 0)) & (dy > -t["b"])
    lung = chest & ~mediastinum & (dy > (t["canal_y"] - t["y"]) - 8.0)
    lung &= np.abs(dx) > t["a"] + 4.0
    hu[lung] = LUNG_HU + 40.0 * fine[lung]
    vessels = lung & (fine > 2.3)
    hu[vessels] = 20.0
    heart = chest & mediastinum & (dy > t["b"] + 25.0)
    hu[heart] = p.organ_hu - 5.0


def dural_sac(hu: np.ndarray, scene: _Scene, p: TissueParams) -> np.ndarray:
    """Paint the CSF-filled dural sac (with the cord above L1) in a tube along the canal
    (in place); the sac's mask."""
    t, z = scene.track, scene.z
    cx, cy = scene.x - t["canal_x"], scene.y - t["canal_y"]
    semi_x = 8.0 + 2.5 * t["lumbar"]
    sac = (cx / semi_x) ** 2 + (cy / 6.5) ** 2 < 1.0
    levels = [float(v.centroid_mm[2]) for v in scene.vertebrae]
    sac = sac & (z > min(levels) - 20.0) & (z < max(levels) + 20.0)
    sac = np.broadcast_to(sac, scene.shape)
    hu[sac] = p.csf_hu
    l1 = scene.level_z(20)
    if l1 is not None:  # the cord ends (conus medullaris) at about L1
        z_conus = l1 - 10.0
    else:
        z_conus = np.inf if all(v.label >= 20 for v in scene.vertebrae) else -np.inf
    cord = ((cx / (0.45 * semi_x)) ** 2 + (cy / 3.5) ** 2 < 1.0) & (z > z_conus) & sac
    hu[cord] = p.cord_hu
    return sac


def paint_bone(hu, labels, affine, vertebrae, p: TissueParams, rng) -> None:
    """Cortical shell and textured trabecular bone inside every vertebra (in place).

    Each vertebra is drawn in its own box, so touching vertebrae each keep their shell. The
    shell is thickest at the endplates (surfaces facing along the vertebra's axis), thinner on
    the body walls and thicker again on the posterior elements; the depth below the surface
    is read off the Gaussian-smoothed vertebra mask (exact for a flat surface).
    """
    spacing = _spacing(affine)
    pad = int(np.ceil(3 * _SHELL_SIGMA_MM / spacing.min())) + 1
    for v in vertebrae:
        box = tuple(
            slice(max(b.start - pad, 0), min(b.stop + pad, n))
            for b, n in zip(v.box, labels.shape, strict=True)
        )
        own = labels[box] == v.label
        inner = tuple(
            slice(b.start - o.start, b.stop - o.start) for b, o in zip(v.box, box, strict=True)
        )
        posterior = np.zeros(own.shape, bool)
        posterior[inner] = v.vertebra & ~v.body
        smooth = ndimage.gaussian_filter(own.astype(np.float32), _SHELL_SIGMA_MM / spacing)
        smooth = np.pad(smooth, 1, mode="edge")
        idx = np.nonzero(own)
        depth = _SHELL_SIGMA_MM * ndtri(np.clip(smooth[1:-1, 1:-1, 1:-1][idx], 0.5, 0.9999))
        endplate = np.abs(_surface_normals(smooth, idx, affine) @ v.axes[:, 2])
        post = posterior[idx]
        thickness = p.cortical_mm * np.where(post, 1.3, 0.6 + 0.8 * endplate**2)
        cortex = np.clip((thickness + 0.3 - depth) / 0.6, 0.0, 1.0)
        texture = _texture(own.shape, affine, p, rng)[idx]
        patchy = smooth_noise(own.shape, rng, scale_vox=6.0 / float(spacing.mean()))[idx]
        factor = 1.0 + p.vertebra_sd * rng.standard_normal()
        trabecular = p.trabecular_hu * factor + p.posterior_extra_hu * post
        trabecular = trabecular + p.texture_sd_hu * texture + 0.3 * p.texture_sd_hu * patchy
        cortical = p.cortical_hu * (1.0 + 0.12 * patchy + 0.06 * texture)
        sub = hu[box]
        sub[idx] = (1.0 - cortex) * trabecular + cortex * cortical


def _surface_normals(padded: np.ndarray, idx, affine: np.ndarray) -> np.ndarray:
    """Unit world gradients ``(N, 3)`` of a field (padded by one voxel) at voxels ``idx``."""
    grad = np.empty((len(idx[0]), 3), np.float32)
    for axis in range(3):
        hi = [i + 1 for i in idx]
        lo = [i + 1 for i in idx]
        hi[axis] = hi[axis] + 1
        lo[axis] = lo[axis] - 1
        grad[:, axis] = (padded[tuple(hi)] - padded[tuple(lo)]) / 2.0
    world = grad @ np.linalg.inv(affine[:3, :3]).astype(np.float32)  # d/dworld = J^-T d/didx
    return world / (np.linalg.norm(world, axis=1, keepdims=True) + 1e-9)


def _texture(shape, affine, p: TissueParams, rng) -> np.ndarray:
    """Band-passed unit-sd noise, elongated along the array axis closest to world superior."""
    spacing = _spacing(affine)
    sigma = np.full(3, p.texture_mm)
    sigma[axial_axis(affine)] *= p.texture_anisotropy
    white = rng.standard_normal(shape, dtype=np.float32)
    fine = ndimage.gaussian_filter(white, sigma / spacing)
    coarse = ndimage.gaussian_filter(fine, 2.0 * sigma / spacing)
    band = fine - coarse
    return band / (band.std() + 1e-6)
