"""Implicit shapes of one vertebra in its local frame, rendered into the build grid.

Local coordinates ``(u, v, w)`` mm: u lateral (+right), v anterior, w cranial, origin at the
body centre. Parts are unions of elliptic cylinders and capsules; the cortical shell is the
part minus its erosion. Labels follow VerSe: the vertebra mask holds the VerSe label, the
sub-region mask 41 arch (pedicles + laminae), 42 spinous process, 43/44 transverse process
left/right, 45/46 superior and 47/48 inferior articular processes left/right, 49 body cortex
(corpus border), 50 body interior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.synthesis.fractures import loss_field, posterior_loss
from spinefx.synthesis.grid import BuildGrid, LocalBox
from spinefx.synthesis.spine import VertebraSpec

ARCH, SPINOUS, TP_LEFT, TP_RIGHT = 41, 42, 43, 44
SUP_LEFT, SUP_RIGHT, INF_LEFT, INF_RIGHT = 45, 46, 47, 48
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


def _capsule(u, v, w, p0, p1, radius) -> np.ndarray:
    """Inside a capsule (segment p0-p1, local mm) of ``radius`` mm."""
    p0 = np.asarray(p0, np.float32)
    d = np.asarray(p1, np.float32) - p0
    length2 = float(d @ d)
    du, dv, dw = u - p0[0], v - p0[1], w - p0[2]
    t = np.clip((du * d[0] + dv * d[1] + dw * d[2]) / length2, 0.0, 1.0)
    return (du - t * d[0]) ** 2 + (dv - t * d[1]) ** 2 + (dw - t * d[2]) ** 2 <= radius**2


def _on_sub_box(box: LocalBox, lower, upper, shape_fn) -> np.ndarray:
    """``shape_fn(u, v, w)`` evaluated only on the sub-box its local bounds cover (full box out)."""
    out = np.zeros(box.shape, bool)
    sub = box.sub_box(np.asarray(lower, float), np.asarray(upper, float))
    if sub is not None:
        out[sub] = shape_fn(*box.uvw(sub))
    return out


def _capsule_in(box: LocalBox, p0, p1, radius) -> np.ndarray:
    lo = np.minimum(p0, p1) - radius
    hi = np.maximum(p0, p1) + radius
    return _on_sub_box(box, lo, hi, lambda u, v, w: _capsule(u, v, w, p0, p1, radius))


def _endplate_noise(u, v, rng: np.random.Generator, amplitude_mm: float) -> np.ndarray:
    # a few random sinusoids over the cross-section: an irregular fractured endplate
    out = np.zeros(np.broadcast(u, v).shape, np.float32)
    for _ in range(4):
        k = rng.uniform(0.25, 0.6, size=2) * rng.choice([-1, 1], size=2)
        out += np.sin(k[0] * u + k[1] * v + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return out * (amplitude_mm / 2.0)


def canal_size(spec: VertebraSpec) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the spinal canal at this vertebra."""
    return (8.5, 7.5) if spec.thoracic else (11.0, 8.5)


def body_mask(
    spec: VertebraSpec, box: LocalBox, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertebral body of ``spec`` (deformed by its fracture), on the voxels of ``box``.

    Returns:
        (body, zone, condensation): bool body mask, bool fracture zone, float32 0-1 weight of
        the trabecular condensation band; all of ``box.shape``.
    """
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    reach = h / 2 * (1 + posterior_loss(spec.truth)) + 3.0
    body = np.zeros(box.shape, bool)
    zone = np.zeros(box.shape, bool)
    cond = np.zeros(box.shape, np.float32)
    sub = box.sub_box(np.array([-a - 8, -b - 1, -reach]), np.array([a + 8, b + 8, reach]))
    if sub is None:
        if spec.truth.genant_grade > 0:
            _endplate_noise(0.0, 0.0, rng, 0.3)  # the same draws whether in view or not
        return body, zone, cond
    body[sub], zone[sub], cond[sub] = _body_shape(spec, *box.uvw(sub), rng)
    return body, zone, cond


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
        node = (u - su * a) ** 2 + (v - sv * b) ** 2 + (w - cw) ** 2 <= radius**2
        body &= ~node
    return body, zone & body, (cond * body).astype(np.float32)


def posterior_parts(spec: VertebraSpec, box: LocalBox) -> dict[int, np.ndarray]:
    """Sub-region label -> bool mask (of ``box.shape``) of the posterior elements."""
    b, h = spec.depth_mm / 2, spec.height_mm
    cu, cv = canal_size(spec)
    vb = -0.9 * b
    vc = vb - cv
    lt = 4.0 if spec.thoracic else 5.0
    parts: dict[int, np.ndarray] = {}
    pu, pw, wp = (3.5, 6.0, 0.15 * h) if spec.thoracic else (4.5, 7.0, 0.15 * h)

    def pedicles(u, v, w):
        return (((np.abs(u) - cu - pu * 0.6) / pu) ** 2 + ((w - wp) / pw) ** 2 <= 1.0) & (
            (v <= vb + 2) & (v >= vc - 0.3 * cv)
        )

    w_low = -0.45 * h - (6 if spec.thoracic else 3)

    def lamina(u, v, w):
        ring = ((u / (cu + lt)) ** 2 + ((v - vc) / (cv + lt)) ** 2 <= 1.0) & (v <= vc + 0.3 * cv)
        return ring & (w <= 0.4 * h) & (w >= w_low)

    pu_max = cu + 1.6 * pu
    parts[ARCH] = _on_sub_box(
        box, (-pu_max, vc - 0.3 * cv, wp - pw), (pu_max, vb + 2, wp + pw), pedicles
    ) | _on_sub_box(
        box, (-cu - lt, vc - cv - lt, w_low), (cu + lt, vc + 0.3 * cv, 0.4 * h), lamina
    )
    # spinous process: long, thin and steep in the thorax; a tall, short plate in the loins
    angle = np.radians((55.0 if spec.thoracic else 8.0) + spec.shape_jitter[0] * 8.0)
    length = (38.0 if spec.thoracic else 30.0) * (1.0 + 0.12 * spec.shape_jitter[1])
    p0 = np.array([0.0, vc - cv - lt * 0.5, 0.0])
    p1 = np.array([0.0, p0[1] - length * np.cos(angle), -length * np.sin(angle)])
    if spec.thoracic:
        parts[SPINOUS] = _capsule_in(box, p0, p1, 4.0)
    else:  # two stacked capsules make a plate ~ 0.6 body heights tall
        dz = np.array([0.0, 0.0, 0.17 * h])
        parts[SPINOUS] = (
            _capsule_in(box, p0 + dz, p1 + dz, 4.5)
            | _capsule_in(box, p0 - dz, p1 - dz, 4.5)
            | _capsule_in(box, p0, p1, 4.5)
        )
    for code, (q0, q1, radius) in transverse_processes(spec).items():
        parts[code] = _capsule_in(box, q0, q1, radius)
    reach = h / 2 + spec.disc_below_mm * 0.5
    for sign, sup, inf in ((-1.0, SUP_LEFT, INF_LEFT), (1.0, SUP_RIGHT, INF_RIGHT)):
        parts[sup] = _capsule_in(
            box, np.array([sign * (cu + 3), vc, 0.2 * h]), np.array([sign * (cu + 5), vc - 1, reach]), 3.8
        )
        parts[inf] = _capsule_in(
            box,
            np.array([sign * (cu + 1), vc - cv, -0.1 * h]),
            np.array([sign * (cu + 2), vc - cv - 3, -reach - 2]),
            3.5,
        )
    canal = _on_sub_box(
        box,
        (-cu, vc - cv, box.axes[2].min() - 1e3),
        (cu, vc + cv, box.axes[2].max() + 1e3),
        lambda u, v, w: (u / cu) ** 2 + ((v - vc) / cv) ** 2 <= 1.0,
    )
    return {k: m & ~canal for k, m in parts.items()}


def transverse_processes(spec: VertebraSpec) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """Sub-region label -> (root, tip, radius) of the transverse-process capsules, local mm."""
    b, h = spec.depth_mm / 2, spec.height_mm
    cu, cv = canal_size(spec)
    vc = -0.9 * b - cv
    lt = 4.0 if spec.thoracic else 5.0
    wp = 0.15 * h
    if spec.thoracic:
        direction, tp_len, tp_r = np.array([0.7, -0.6, 0.15]), 22.0, 4.5
    else:
        direction, tp_len, tp_r = np.array([1.0, -0.15, 0.0]), 24.0, 3.5
    direction = direction / np.linalg.norm(direction)
    out = {}
    for sign, code in ((-1.0, TP_LEFT), (1.0, TP_RIGHT)):
        q0 = np.array([sign * (cu + lt * 0.5), vc, wp])
        q1 = q0 + tp_len * direction * np.array([sign, 1.0, 1.0])
        out[code] = (q0, q1, tp_r)
    return out


def screw_mask(spec: VertebraSpec, box: LocalBox) -> np.ndarray:
    """Two transpedicular screws and a rod segment on each side (metal), of ``box.shape``."""
    b, h = spec.depth_mm / 2, spec.height_mm
    cu, cv = canal_size(spec)
    vc = -0.9 * b - cv
    out = np.zeros(box.shape, bool)
    for sign in (-1.0, 1.0):
        entry = np.array([sign * (cu + 6.0), vc - cv - 8.0, 0.15 * h])
        tip = np.array([sign * 0.35 * spec.width_mm / 2, 0.55 * b, 0.1 * h])
        out |= _capsule_in(box, entry, tip, 3.0)
        rod = (sign * (cu + 8.0), vc - cv - 11.0)
        out |= _capsule_in(
            box,
            np.array([*rod, -h / 2 - spec.disc_below_mm / 2]),
            np.array([*rod, h / 2 + 3]),
            2.8,
        )
    return out


def render_vertebra(
    spec: VertebraSpec,
    grid: BuildGrid,
    volumes: Volumes,
    rng: np.random.Generator,
    *,
    trabecular_hu: float,
    cortical_hu: float,
) -> None:
    """Draw one vertebra (body, posterior elements, screws) into ``volumes`` in place."""
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    lower = np.array([-a - 36, -b - 75, -h / 2 - 42])
    upper = np.array([a + 36, b + 8, h / 2 + spec.disc_below_mm + 14])
    box = grid.box_around(spec.origin_mm, spec.frame, lower, upper)
    if box is None:
        return
    local = grid.local_box(box, spec.origin_mm, spec.frame)
    body, zone, cond = body_mask(spec, local, rng)
    parts = {} if spec.label == 26 else posterior_parts(spec, local)
    shell_vox = max(1, int(round(1.2 / grid.spacing_mm)))
    hu = volumes.hu[box]
    sub = volumes.subregion[box]
    texture = _trabecular_texture(body.shape, rng, grid.spacing_mm)
    for code, mask in parts.items():
        mask = mask & ~body
        core = _eroded(mask, shell_vox)
        hu[mask] = cortical_hu * 0.8
        hu[core] = trabecular_hu + 80.0 + 50.0 * texture[core]
        sub[mask] = code
    core = _eroded(body, shell_vox)
    hu[body] = cortical_hu + 60.0 * texture[body]
    hu[core] = trabecular_hu + 75.0 * texture[core] + rng.uniform(150, 300) * cond[core]
    sub[body] = BODY_BORDER
    sub[core] = BODY_CORE
    volumes.vertebra[box][body | np.any(list(parts.values()), axis=0) if parts else body] = (
        spec.label
    )
    volumes.fxzone[box][zone] = spec.label
    if spec.screws:
        metal = screw_mask(spec, local)
        hu[metal] = METAL_HU
        volumes.metal[box] |= metal


def _eroded(mask: np.ndarray, iterations: int) -> np.ndarray:
    # binary erosion computed only inside the mask's bounding box (most of a box is empty)
    idx = np.argwhere(mask)
    out = np.zeros_like(mask)
    if idx.size == 0:
        return out
    box = tuple(slice(a, b + 1) for a, b in zip(idx.min(0), idx.max(0), strict=True))
    out[box] = ndimage.binary_erosion(mask[box], iterations=iterations)
    return out


def _trabecular_texture(shape, rng: np.random.Generator, spacing_mm: float) -> np.ndarray:
    # band-pass noise, stretched along z (vertical trabeculae): the mottled look of
    # cancellous bone at CT resolution
    noise = rng.standard_normal(shape).astype(np.float32)
    s = 0.9 / spacing_mm
    fine = ndimage.gaussian_filter(noise, (s, s, 1.8 * s))
    coarse = ndimage.gaussian_filter(fine, 2.0 / spacing_mm)
    tex = fine - coarse
    return tex / (tex.std() + 1e-6)
