"""Thoracic and abdominal contents of the synthetic body, placed relative to the spine.

Organs are smooth random blobs (superellipses modulated by the scene's low-frequency field)
at plausible places: lungs with vessels and a gravity gradient above a sloping diaphragm,
mediastinum with heart, oesophagus and azygos; below it liver, spleen, kidneys in perirenal
fat, and bowel loops with gas in mesenteric fat; aorta (with optional calcified plaques), iliac
arteries and the inferior vena cava. Offsets are mm from the spine centre at each height.
"""

from __future__ import annotations

import numpy as np

from spinefx.synthesis.body import BodySpec
from spinefx.synthesis.intensities import TISSUE_LABELS
from spinefx.synthesis.scene import Slab, cavity_back


def _blob(s: Slab, cx, cy, rx, ry, *, power: float = 2.0, wobble: float = 0.08) -> np.ndarray:
    """Inside a superellipse around (cx, cy) (world mm), its edge wobbling with the low field."""
    q = np.abs((s.x - cx) / rx) ** power + np.abs((s.y - cy) / ry) ** power
    return q <= 1.0 + wobble * s.fields["low"]


def _tubes(s: Slab, width: np.ndarray | float) -> np.ndarray:
    """0-1 weight of a random tubular network (where two noise fields both cross zero)."""
    m = np.maximum(np.abs(s.fields["mid"]), np.abs(s.fields["fine"]))
    return np.clip(1.5 - m / width, 0.0, 1.0)


#: Superellipse exponent of a lung's cross-section and the tilt of its axes (radians).
LUNG_POWER = 2.4
LUNG_TILT = -0.5


def lung_shape(body: BodySpec, level, *, a, b):
    """Centre offset ((lateral, anterior) from the spine centre) and semi-axes of a lung, mm.

    The lateral offset is to be signed by the side. The cross-section is a superellipse
    tilted by :data:`LUNG_TILT` (its medial side turned backwards) whose posteromedial corner
    fills the paravertebral gutter beside the pedicles; the apex (T1-T4) is smaller.
    """
    apex = np.clip(0.5 + 0.5 * level / 4.0, 0.5, 1.0)
    rx, ry = body.lung_width_mm * apex, body.lung_depth_mm * (0.5 + 0.5 * apex)
    c = 2.0 ** (-1.0 / LUNG_POWER)
    sin, cos = np.sin(LUNG_TILT), np.cos(LUNG_TILT)
    corner_x = -c * rx * cos - c * ry * sin
    corner_y = c * rx * sin - c * ry * cos
    return (a + 12.0 - corner_x, -b - 20.0 - corner_y), (rx, ry)


def lung_outline(body: BodySpec, level: float, *, a, b, angles, gap: float) -> np.ndarray:
    """Points ``gap`` mm outside a right lung's outline at superellipse parameters ``angles``.

    ``-3 pi / 4`` is the posteromedial corner, 0 lateral (turned forwards by the tilt).

    Returns:
        ``(n, 2)`` lateral, anterior offsets from the spine centre, mm.
    """
    (ox, oy), (rx, ry) = lung_shape(body, level, a=a, b=b)
    c, s = np.cos(angles), np.sin(angles)
    px = (rx + gap) * np.sign(c) * np.abs(c) ** (2 / LUNG_POWER)
    py = (ry + gap) * np.sign(s) * np.abs(s) ** (2 / LUNG_POWER)
    sin, cos = np.sin(LUNG_TILT), np.cos(LUNG_TILT)
    return np.stack([ox + px * cos + py * sin, oy - px * sin + py * cos], axis=1)


def _lung(s: Slab, body: BodySpec, side: float) -> np.ndarray:
    t = s.track
    (ox, oy), (rx, ry) = lung_shape(body, t["level"], a=t["a"], b=t["b"])
    lx, ly = side * s.dx - ox, s.dy - oy
    sin, cos = np.sin(LUNG_TILT), np.cos(LUNG_TILT)
    px, py = lx * cos - ly * sin, lx * sin + ly * cos
    q = np.abs(px / rx) ** LUNG_POWER + np.abs(py / ry) ** LUNG_POWER
    # not behind the line of the rib neck (head beside the body to the transverse process)
    lateral = side * s.dx
    neck = -0.5 * t["b"] - np.clip(lateral - t["a"] - 2.0, 0.0, 12.0) * (0.5 * t["b"] + 20.0) / 12.0
    beside = (lateral > t["a"] + 14.0) | (s.dy > neck)
    return (q <= 1.0 + 0.05 * s.fields["low"]) & (lateral > 0.6 * t["a"]) & beside


def _part(mask: np.ndarray, slab: Slab, sub: Slab) -> np.ndarray:
    """The slices of ``mask`` (given over ``slab``) that ``sub`` covers."""
    start = sub.index.start - slab.index.start
    return mask[:, :, start : start + sub.hu.shape[2]]


def _diaphragm_z(s: Slab) -> np.ndarray:
    """World z of the diaphragm over (x, y): two domes, sinking steeply behind (recesses)."""
    body = s.patient.body
    t = s.track
    out = None
    for side, level in ((1.0, body.dome_level), (-1.0, body.dome_level + 0.5)):
        cx, cy = side * 60.0, t["b"] + 35.0
        behind = np.clip((cy - s.dy) / (2 * t["b"] + 55.0), 0.0, None) ** 2
        front = np.clip((s.dy - cy) / 100.0, 0.0, None) ** 2
        dome = (
            s.patient.z_of_level(level)
            - body.recess_mm * (behind + 0.3 * front)
            - (s.dx - cx) ** 2 / 120.0
        )
        out = dome if out is None else np.maximum(out, dome)
    return out


def paint_thorax(chunk: Slab, inner: np.ndarray) -> None:
    """Lungs (vessels, gravity gradient), heart, oesophagus and azygos above the diaphragm.

    Args:
        chunk: the slices to paint.
        inner: their voxels inside the muscular body wall.
    """
    body = chunk.patient.body
    s = chunk.within(chunk.patient.z_of_level(body.dome_level + 3.5))
    if s is None:
        return
    thorax = _part(inner, chunk, s) & (s.z > _diaphragm_z(s))
    t, hu = s.track, s.intensities
    lungs = np.zeros(s.hu.shape, bool)
    for side in (-1.0, 1.0):
        lungs |= _lung(s, body, side)
    mediastinum = _blob(s, t["x"] - 8.0, t["y"] + t["b"] + 45.0, t["a"] + 14.0, 45.0)
    lungs &= thorax & ~mediastinum
    s.paint(lungs, "lung", "low")
    gravity = np.clip((t["y"] + t["b"] + 60.0 - s.y) / 140.0, 0.0, 1.0) * body.lung_gravity_hu
    s.hu[lungs] += np.broadcast_to(gravity, s.hu.shape)[lungs]
    hilum = np.exp(-((s.dx / 60.0) ** 2) - ((s.dy - 40.0) / 60.0) ** 2)
    vessels = np.maximum(np.abs(s.field("vessel_a")), np.abs(s.field("vessel_b")))
    vessels = np.clip(1.5 - vessels / (0.12 + 0.15 * hilum), 0.0, 1.0)[lungs]
    vessel_hu = 0.5 * (hu.mean_hu["blood"] + hu.mean_hu["muscle"])
    s.hu[lungs] += vessels * (vessel_hu - s.hu[lungs])
    # heart: from its top level down to the diaphragm, left-anterior
    heart = thorax & (s.z < s.patient.z_of_level(body.heart_top_level))
    chamber = heart & _blob(s, t["x"] - 25.0, t["y"] + t["b"] + 75.0, 62.0, 52.0)
    wall = heart & _blob(s, t["x"] - 25.0, t["y"] + t["b"] + 75.0, 70.0, 60.0) & ~chamber
    s.paint(wall, "viscera", "mid")
    s.paint(chamber, "blood", "low", gain=0.5)
    oesophagus = thorax & _blob(s, t["x"] + 2.0 - 0.6 * t["level"], t["y"] + t["b"] + 9.0, 9.0, 7.0)
    s.paint(oesophagus, "muscle", "mid")
    if body.oesophageal_air:
        s.paint(
            oesophagus & _blob(s, t["x"] + 2.0 - 0.6 * t["level"], t["y"] + t["b"] + 9.0, 3.0, 2.0),
            "gas",
            None,
        )
    azygos = thorax & _blob(s, t["x"] + 0.45 * t["a"], t["y"] + 0.55 * t["b"] + 5.0, 4.0, 4.0)
    s.paint(azygos, "blood", None)


def paint_abdomen(chunk: Slab, inner: np.ndarray) -> None:
    """Liver, spleen, kidneys in perirenal fat and bowel loops with gas, below the diaphragm.

    ``inner`` holds the chunk's voxels inside the muscular body wall.
    """
    body = chunk.patient.body
    s = chunk.within(z_hi=chunk.patient.z_of_level(body.dome_level - 0.5))
    if s is None:
        return
    abdomen = _part(inner, chunk, s) & (s.z <= _diaphragm_z(s)) & (s.dy > cavity_back(s))
    t, hu = s.track, s.intensities
    # bowel loops in mesenteric fat, in front of the retroperitoneum
    front = abdomen & (s.dy > t["b"] + 25.0 + 12.0 * s.fields["low"])
    loops = front & (s.fields["mid"] > 0.1)
    s.paint(loops, "bowel", "fine")
    lumen = loops & (s.fields["mid"] > 0.55)
    s.hu[lumen] -= 20.0
    gas = lumen & (s.fields["fine"] > 1.9 - 2.5 * body.bowel_gas)
    s.paint(gas, "gas", None)
    z_dome = s.patient.z_of_level(body.dome_level)
    _organ(
        s,
        abdomen,
        "liver",
        z_dome,
        s.patient.z_of_level(body.liver_bottom_level),
        (75.0, 25.0),
        (95.0, 85.0),
        side=1.0,
        vessels=True,
    )
    _organ(
        s,
        abdomen,
        "spleen",
        z_dome - 15.0,
        s.patient.z_of_level(body.spleen_bottom_level),
        (75.0, -5.0),
        (30.0, 50.0),
        side=-1.0,
        vessels=False,
    )
    for side, level in zip((-1.0, 1.0), body.kidney_levels, strict=True):
        z_kidney = s.patient.z_of_level(level)
        reach = 1.3 * body.kidney_size_mm[2]
        sub = s.within(z_kidney - reach, z_kidney + reach)
        if sub is not None:
            region = _part(abdomen, s, sub)
            _kidney(
                sub,
                region,
                z_kidney,
                side,
                body.kidney_size_mm,
                arterial=hu.contrast_phase == "arterial",
            )


def _organ(s: Slab, region, tissue: str, z_top, z_bottom, offset, size, *, side, vessels):
    """A parenchymal organ tapering from ``z_top`` down to ``z_bottom`` (with vessel tree)."""
    t = s.track
    span = max(z_top - z_bottom, 1.0)
    taper = np.sqrt(np.clip(1.0 - ((z_top - s.z) / span) ** 2, 0.0, 1.0)) * (s.z <= z_top)
    scale = 0.25 + 0.75 * taper
    cx = t["x"] + side * (t["a"] + offset[0] + 25.0 * (1.0 - taper))
    mask = (
        region
        & (taper > 0)
        & _blob(
            s,
            cx,
            t["y"] + offset[1],
            size[0] * scale + 1e-3,
            size[1] * scale + 1e-3,
            power=2.3,
            wobble=0.2,
        )
    )
    s.paint(mask, tissue, "mid", gain=0.7)
    if vessels:
        phase = s.intensities.contrast_phase
        contrast = {"none": -15.0, "arterial": -5.0, "venous": 45.0}[phase]
        tree = _tubes(s, 0.07)[mask]
        s.hu[mask] += tree * contrast


def _kidney(s: Slab, region, z_centre, side, size, *, arterial: bool) -> None:
    """A bean-shaped kidney (cortex, medulla, hilum with sinus fat) in perirenal fat.

    Its upper pole is medial; its hilum faces anteromedially.
    """
    t = s.track
    kx, ky, kz = size
    dz = s.z - z_centre
    lx = side * (s.x - t["x"]) - (t["a"] + 12.0 + kx - 0.2 * dz)
    ly = s.y - (t["y"] - 8.0 + 0.1 * dz)
    cos, sin = np.cos(0.6), np.sin(0.6)
    kx_, ky_ = lx * cos - ly * sin, lx * sin + ly * cos  # kx_ < 0: medial, towards the hilum
    r2 = (kx_ / kx) ** 2 + (ky_ / ky) ** 2 + (dz / kz) ** 2
    s.paint(region & (r2 <= np.maximum(1.7 + 0.4 * s.fields["low"], 1.25)), "fat", "mid")
    kidney = region & (r2 * (1.0 + 0.04 * s.fields["low"]) <= 1.0)
    sinus = ((kx_ + 0.8 * kx) / (0.5 * kx)) ** 2 + (ky_ / (0.4 * ky)) ** 2 + (dz / (0.45 * kz)) ** 2
    s.paint(kidney, "kidney", "fine", gain=0.5)
    if arterial:  # cortico-medullary phase: darker medulla
        s.hu[kidney & (r2 < 0.5) & (sinus > 1.0)] -= 70.0
    s.paint(kidney & (sinus <= 1.0), "fat", "mid")


def paint_vessels(s: Slab) -> None:
    """Aorta (thoracic, abdominal, iliac bifurcation), inferior vena cava, calcified plaques."""
    t, hu, body = s.track, s.intensities, s.patient.body
    level = t["level"]
    lumbar = np.clip(level - 10.5, 0.0, 1.5) / 1.5  # the aorta moves in front of the spine
    radius = 12.0 - 2.0 * lumbar
    ax = t["x"] - (1 - lumbar) * (0.55 * t["a"] + 10.0) - lumbar * (0.3 * t["a"] + 4.0)
    ay = t["y"] + (1 - lumbar) * (0.25 * t["b"] + 10.0) + lumbar * (t["b"] + radius + 3.0)
    present = (level > 3.0) & (level < 15.6)
    dist = np.sqrt((s.x - ax) ** 2 + (s.y - ay) ** 2)
    aorta = (dist <= radius) & present
    for side in (-1.0, 1.0):  # common iliac arteries below the bifurcation
        spread = np.clip(level - 15.6, 0.0, 3.0) * 14.0
        iliac = np.sqrt((s.x - t["x"] - side * (spread + 6.0)) ** 2 + (s.y - ay) ** 2) <= 7.0
        aorta |= iliac & (level >= 15.6)
    s.paint(aorta, "blood", "low", gain=0.3)
    if body.aortic_calcification:
        ring = aorta & (dist > radius - 1.8) & (s.fields["fine"] > 1.3)
        s.hu[ring] = hu.mean_hu["cortical"] * 0.6
    vein = 40.0 if hu.contrast_phase == "arterial" else hu.mean_hu["blood"]
    ivc = _blob(s, t["x"] + 0.5 * t["a"] + 14.0, t["y"] + t["b"] + 8.0, 12.0, 9.0, wobble=0.1)
    ivc &= (level > 10.5) & (level < 16.2)
    s.hu[ivc] = vein + 3.0 * s.fields["low"][ivc]
    s.labels[ivc] = TISSUE_LABELS["blood"]
