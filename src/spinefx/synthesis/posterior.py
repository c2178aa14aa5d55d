"""Posterior elements of a vertebra (arch, processes), its canal size and pedicle screws.

Local coordinates ``(u, v, w)`` mm as in :mod:`spinefx.synthesis.vertebra`. Parts are unions of
elliptic cylinders and capsules, each evaluated only on the sub-box its bounds cover. Labels
follow VerSe: 41 arch (pedicles + laminae), 42 spinous process, 43/44 transverse process
left/right, 45/46 superior and 47/48 inferior articular processes left/right.
"""

from __future__ import annotations

import numpy as np

from spinefx.synthesis.grid import LocalBox
from spinefx.synthesis.spine import VertebraSpec

ARCH, SPINOUS, TP_LEFT, TP_RIGHT = 41, 42, 43, 44
SUP_LEFT, SUP_RIGHT, INF_LEFT, INF_RIGHT = 45, 46, 47, 48


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


def canal_size(spec: VertebraSpec) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the spinal canal at this vertebra."""
    return (8.5, 7.5) if spec.thoracic else (11.0, 8.5)


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
    ) | _on_sub_box(box, (-cu - lt, vc - cv - lt, w_low), (cu + lt, vc + 0.3 * cv, 0.4 * h), lamina)
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
            box,
            np.array([sign * (cu + 3), vc, 0.2 * h]),
            np.array([sign * (cu + 5), vc - 1, reach]),
            3.8,
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
