"""A synthetic patient's spine: vertebra sizes T1-L5, the curved centreline and local frames.

Geometry is in world RAS+ mm. Each vertebra gets a local frame: origin at the body centre,
columns ``(u, v, w)`` = (patient right-left lateral, anterior, cranial along the spine
tangent), right-handed and orthonormal, like the spine frames of ``spinefx.preprocessing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinefx.conventions import normal_vertebra_size
from spinefx.synthesis.body import BodySpec
from spinefx.synthesis.bone import BoneSpec
from spinefx.synthesis.config import AnatomyConfig
from spinefx.synthesis.fractures import FractureTruth, posterior_loss, wedge_angle_rad
from spinefx.synthesis.intensities import TissueIntensities

#: VerSe labels of the vertebrae the generator builds, cranial to caudal (T1..L5).
SYNTH_LABELS: tuple[int, ...] = tuple(range(8, 25))
#: The sacrum label of VerSe masks (drawn as bone below L5, never graded).
SACRUM_LABEL = 26

#: Normal body height/width/depth and disc below of a level (the reference table lives in
#: ``spinefx.conventions`` because morphometry and localisation use it too).
nominal_size = normal_vertebra_size


@dataclass
class VertebraSpec:
    """One synthetic vertebra in world space.

    Attributes:
        label: VerSe label (8-24), or 26 for the sacrum.
        origin_mm: body centre, world RAS+ mm, shape ``(3,)``.
        frame: ``(3, 3)`` columns u (lateral, +right), v (anterior), w (cranial).
        height_mm / width_mm / depth_mm: normal (undeformed) body size.
        disc_below_mm: height of the disc below.
        truth: fracture ground truth.
        schmorl: (u_rel, v_rel, radius_mm, superior) of a Schmorl's node, or None.
        osteophytes: whether the body margins carry osteophytes.
        screws: whether pedicle screws are placed.
        shape_jitter: two factors in [-1, 1] varying the spinous process angle and length.
        texture_offset_mm: where in the patient's trabecular texture tile this vertebra sits.
        vein_mm: length of the basivertebral vein channel, mm (0: none visible).
    """

    label: int
    origin_mm: np.ndarray
    frame: np.ndarray
    height_mm: float
    width_mm: float
    depth_mm: float
    disc_below_mm: float
    truth: FractureTruth = field(default_factory=FractureTruth)
    schmorl: tuple[float, float, float, bool] | None = None
    osteophytes: bool = False
    screws: bool = False
    shape_jitter: tuple[float, float] = (0.0, 0.0)
    texture_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    vein_mm: float = 0.0

    @property
    def thoracic(self) -> bool:
        return 8 <= self.label <= 19


@dataclass
class PatientSpec:
    """Patient-level draws shared by all vertebrae.

    Attributes:
        vertebrae: T1-L5 and the sacrum, cranial to caudal.
        osteoporotic: low bone density, coarse trabecular texture, more fractures.
        hu: every tissue's HU in this scan.
        bone: the bone model.
        body: habitus and organ layout.
    """

    vertebrae: list[VertebraSpec]
    osteoporotic: bool
    hu: TissueIntensities
    bone: BoneSpec
    body: BodySpec

    @property
    def contrast(self) -> bool:
        """Scanned in a contrast phase."""
        return self.hu.contrast_phase != "none"

    def z_of_level(self, level: float) -> float:
        """World z (mm) of a level index (0 = T1 body centre ... 16 = L5, 17 = sacrum)."""
        zs = [s.origin_mm[2] for s in self.vertebrae]
        return float(np.interp(level, np.arange(len(zs)), zs))


def _tangent(phi: float, psi: float) -> np.ndarray:
    # cranial-pointing unit tangent; phi tilts it anteriorly (+y), psi laterally (+x)
    return np.array([np.sin(psi), np.cos(psi) * np.sin(phi), np.cos(psi) * np.cos(phi)])


def local_frame(tangent: np.ndarray) -> np.ndarray:
    """Right-handed frame (u, v, w) with w = tangent and u as close to +x (right) as possible."""
    w = tangent / np.linalg.norm(tangent)
    u = np.array([1.0, 0.0, 0.0]) - w[0] * w
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    return np.stack([u, v, w], axis=1)


def build_spine(
    truths: list[FractureTruth],
    rng: np.random.Generator,
    *,
    config: AnatomyConfig,
    size_scale: float,
    degenerated: set[int],
) -> list[VertebraSpec]:
    """Stack T1-L5 along a curved centreline (arc length measured caudally from T1's top).

    Args:
        truths: fracture truth per label of :data:`SYNTH_LABELS`.
        rng: random generator (curvature, scoliosis, height variation).
        config: anatomy ranges.
        size_scale: the patient's size factor.
        degenerated: labels whose disc below is narrowed.

    Returns:
        Vertebra specs with world origins (the T12/L1 junction is near the world origin).
    """
    kyphosis = np.radians(rng.uniform(*config.kyphosis_deg_range))
    lordosis = np.radians(rng.uniform(*config.lordosis_deg_range))
    phi_tl = np.radians(rng.uniform(-14.0, -4.0))
    scoliosis = 0.0
    if rng.random() < config.scoliosis_probability:
        scoliosis = np.radians(rng.uniform(*config.scoliosis_deg_range)) * rng.choice([-1, 1])
    scol_phase = rng.uniform(0, 2 * np.pi)

    specs: list[VertebraSpec] = []
    for label, truth in zip(SYNTH_LABELS, truths, strict=True):
        size = nominal_size(label)
        hvar = 1.0 + float(np.clip(rng.normal(0, config.height_variation_sd), -0.06, 0.06))
        disc = size["disc"] * size_scale * rng.uniform(0.9, 1.1)
        if label in degenerated:
            disc *= rng.uniform(0.35, 0.65)
        specs.append(
            VertebraSpec(
                label=label,
                origin_mm=np.zeros(3),
                frame=np.eye(3),
                height_mm=size["height"] * size_scale * hvar,
                width_mm=size["width"] * size_scale * rng.uniform(0.96, 1.04),
                depth_mm=size["depth"] * size_scale * rng.uniform(0.96, 1.04),
                disc_below_mm=disc,
                truth=truth,
                shape_jitter=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
            )
        )
    # arc-length positions of body centres (caudal direction), fractures shorten the stack
    lengths = [s.height_mm * (1.0 - posterior_loss(s.truth)) for s in specs]
    centres, s = [], 0.0
    for spec, length in zip(specs, lengths, strict=True):
        centres.append(s + length / 2)
        s += length + spec.disc_below_mm
    centres = np.asarray(centres)
    s_tl = (centres[11] + centres[12]) / 2  # T12/L1 junction
    s_top, s_bot = centres[0], centres[-1]

    # tangent angle as a function of arc length: kyphosis above T12/L1, lordosis below,
    # plus a step of local kyphosis at each wedge fracture
    grid = np.linspace(s_top - 40, s_bot + 40, 800)
    ds = grid[1] - grid[0]
    blend = 1.0 / (1.0 + np.exp(-(grid - s_tl) / 15.0))
    curvature = -kyphosis / (s_tl - s_top) * (1 - blend) + lordosis / (s_bot - s_tl) * blend
    phi = np.cumsum(curvature) * ds
    for spec, c in zip(specs, centres, strict=True):
        angle = wedge_angle_rad(spec.truth, height_mm=spec.height_mm, depth_mm=spec.depth_mm)
        phi -= angle * (grid > c)
    phi += phi_tl - np.interp(s_tl, grid, phi)
    psi = scoliosis * np.sin(np.pi * (grid - s_top) / (s_bot - s_top) + scol_phase)
    tangents = np.stack([_tangent(a, b) for a, b in zip(phi, psi, strict=True)])
    # positions: moving caudally means moving along -tangent
    pos = -np.cumsum(tangents, axis=0) * ds
    pos -= np.array([np.interp(s_tl, grid, pos[:, i]) for i in range(3)])
    for spec, c in zip(specs, centres, strict=True):
        spec.origin_mm = np.array([np.interp(c, grid, pos[:, i]) for i in range(3)])
        t = np.array([np.interp(c, grid, tangents[:, i]) for i in range(3)])
        spec.frame = local_frame(t)
    return specs


def sacrum_spec(l5: VertebraSpec, rng: np.random.Generator) -> VertebraSpec:
    """S1 drawn below L5, tilted forward (sacral slope), as a bone block labelled 26."""
    tilt = np.radians(rng.uniform(15.0, 25.0))
    w5 = l5.frame[:, 2]
    rot_axis = l5.frame[:, 0]
    # rotate L5's axis about the lateral axis so the sacrum leans anteriorly at the top
    w = w5 * np.cos(tilt) + np.cross(rot_axis, w5) * np.sin(tilt)
    height = l5.height_mm * 1.1
    origin = l5.origin_mm - w5 * (l5.height_mm / 2 + l5.disc_below_mm) - w * height / 2
    return VertebraSpec(
        label=26,
        origin_mm=origin,
        frame=local_frame(w),
        height_mm=height,
        width_mm=l5.width_mm * 1.05,
        depth_mm=l5.depth_mm * 0.95,
        disc_below_mm=0.0,
    )
