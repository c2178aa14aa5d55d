"""One synthetic spine CT with its masks, centroids and per-vertebra ground truth.

``generate_case(config, rng)`` first draws everything random (patient with its tissue HU, bone
model and body habitus; fractures, field of view, ribs, acquisition), then renders: soft
tissue and organs, canal and discs, ribs, vertebrae (each in its own frame, at
``build_spacing_mm``), metal streaks, then the acquisition (kernel, artefacts, noise). Texture
fields are drawn from the same generator while rendering, in a fixed order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from spinefx.conventions import level_name
from spinefx.image import Image
from spinefx.synthesis.acquisition import acquire, add_metal_streaks, sample_scan
from spinefx.synthesis.body import sample_body
from spinefx.synthesis.bone import sample_bone, trabecular_tile
from spinefx.synthesis.config import SynthesisConfig
from spinefx.synthesis.fractures import FractureTruth, sample_fractures
from spinefx.synthesis.grid import BuildGrid, LocalBox
from spinefx.synthesis.intensities import TISSUE_LABELS, sample_intensities
from spinefx.synthesis.ribs import render_ribs, sample_ribs
from spinefx.synthesis.spine import (
    SYNTH_LABELS,
    PatientSpec,
    VertebraSpec,
    build_spine,
    sacrum_spec,
)
from spinefx.synthesis.tissue import draw_canal_and_discs, soft_tissue
from spinefx.synthesis.vertebra import Volumes, body_mask, render_vertebra

SPLIT_NAMES = ("training", "validation", "test")


@dataclass(frozen=True)
class SyntheticVertebra:
    """Ground truth of one vertebra whose body centroid lies in the field of view.

    Attributes:
        vertebra_label: VerSe label.
        centroid_mm: vertebral-body centroid, world RAS+ mm, shape ``(3,)``.
        genant_grade: intended Genant grade 0-3.
        shape: "wedge" / "biconcave" / "crush", or None.
        height_loss: intended fractional height loss.
        foreign_material: carries pedicle screws (VerSe ``x``).
        fully_in_view: the whole body is inside the field of view (graded in the table).
        schmorl_node / osteophytes / disc_narrowed_below: hard-negative findings.
    """

    vertebra_label: int
    centroid_mm: np.ndarray
    genant_grade: int
    shape: str | None
    height_loss: float
    foreign_material: bool
    fully_in_view: bool
    schmorl_node: bool = False
    osteophytes: bool = False

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)


@dataclass
class SyntheticCase:
    """A generated scan.

    Attributes:
        ct: CT in HU (int16) in the written orientation and spacing.
        vertebra_mask / subregion_mask / fxzone_mask: label images on the CT grid.
        vertebrae: truth per vertebra whose centroid is in view, cranial to caudal.
        split: "training" / "validation" / "test".
        acquisition: what was drawn (spacing, orientation, kernel, noise, tissue HU, ...),
            for provenance.
        tissue_mask: tissue class of every voxel (codes of
            :data:`spinefx.synthesis.intensities.TISSUE_LABELS`), on the CT grid.
    """

    ct: Image
    vertebra_mask: Image
    subregion_mask: Image
    fxzone_mask: Image
    vertebrae: list[SyntheticVertebra]
    split: str
    acquisition: dict = field(default_factory=dict)
    tissue_mask: Image | None = None

    @property
    def centroids_mm(self) -> dict[int, np.ndarray]:
        """Body centroid per VerSe label, world RAS+ mm."""
        return {v.vertebra_label: v.centroid_mm for v in self.vertebrae}


def sample_patient(config: SynthesisConfig, rng: np.random.Generator) -> PatientSpec:
    """Draw a patient: spine geometry, bone density, fractures and hard negatives."""
    an = config.anatomy
    osteoporotic = bool(rng.random() < an.osteoporosis_probability)
    lo, hi = an.trabecular_hu_range
    trabecular = (
        rng.uniform(lo, lo + 0.35 * (hi - lo))
        if osteoporotic
        else rng.uniform(lo + 0.3 * (hi - lo), hi)
    )
    truths = sample_fractures(
        len(SYNTH_LABELS), rng, config=config.fractures, osteoporotic=osteoporotic
    )
    degenerated: set[int] = set()
    if rng.random() < an.degeneration_probability:
        degenerated = {
            int(x)
            for x in rng.choice(np.arange(17, 25), size=int(rng.integers(1, 4)), replace=False)
        }
    vertebrae = build_spine(
        truths,
        rng,
        config=an,
        size_scale=float(rng.uniform(*an.size_scale_range)),
        degenerated=degenerated,
    )
    for spec in vertebrae:
        if spec.truth.genant_grade == 0 and rng.random() < an.schmorl_probability:
            # off the mid-sagittal band, where morphometry measures (a hard negative there)
            spec.schmorl = (
                float(rng.choice([-1, 1]) * rng.uniform(0.4, 0.55)),
                float(rng.uniform(-0.3, 0.3)),
                float(rng.uniform(2.5, 4.0)),
                bool(rng.random() < 0.6),
            )
        spec.osteophytes = spec.label in degenerated or (spec.label - 1) in degenerated
    vertebrae.append(sacrum_spec(vertebrae[-1], rng))
    for spec in vertebrae:
        spec.texture_offset_mm = tuple(float(x) for x in rng.uniform(0, 100, size=3))
        if spec.label != 26 and rng.random() < an.basivertebral_probability:
            spec.vein_mm = float(rng.uniform(0.25, 0.4) * spec.depth_mm)
    # dense trabecular bone goes with a dense cortex (young), thin and less dense cortex with
    # osteoporosis: the cortex is drawn in the upper part of its range for a dense spine
    density = (trabecular - lo) / max(hi - lo, 1e-6)
    c_lo, c_hi = an.cortical_hu_range
    cortical = float(c_lo + (c_hi - c_lo) * (0.6 * density + 0.4 * rng.random()))
    hu = sample_intensities(
        config.tissue,
        an,
        rng,
        trabecular_hu=float(trabecular),
        cortical_hu=cortical,
        osteoporotic=osteoporotic,
    )
    vein_hu = rng.uniform(0.0, 50.0)
    if hu.contrast_phase == "venous":
        vein_hu = 0.5 * (vein_hu + hu.mean_hu["blood"])
    return PatientSpec(
        vertebrae=vertebrae,
        osteoporotic=osteoporotic,
        hu=hu,
        bone=sample_bone(an, rng, osteoporotic=osteoporotic, vein_hu=float(vein_hu)),
        body=sample_body(config.tissue, rng, elderly=osteoporotic),
    )


def body_centroid_mm(spec: VertebraSpec) -> np.ndarray:
    """Centroid of the (deformed) body, world mm, from a 0.5 mm local sampling of its shape."""
    a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
    axes = tuple(np.arange(-lim - 4, lim + 4, 0.5, dtype=np.float32) for lim in (a, b, h / 2))
    box = LocalBox(axes=axes, frame=np.eye(3, dtype=np.float32))  # type: ignore[arg-type]
    body = body_mask(spec, box, np.random.default_rng(0)).body
    u, v, w = box.uvw()
    local = np.array([np.broadcast_to(c, body.shape)[body].mean() for c in (u, v, w)])
    return spec.origin_mm + spec.frame @ local


def _field_of_view(patient: PatientSpec, config: SynthesisConfig, rng: np.random.Generator):
    acq = config.acquisition
    vs = patient.vertebrae[:-1]
    n = int(rng.integers(acq.n_levels_range[0], min(acq.n_levels_range[1], len(vs)) + 1))
    start = int(rng.integers(0, len(vs) - n + 1))
    top, bottom = vs[start], vs[start + n - 1]
    z_hi = top.origin_mm[2] + rng.uniform(-0.3, 0.8) * top.height_mm
    z_lo = bottom.origin_mm[2] - rng.uniform(-0.3, 0.8) * bottom.height_mm
    if start + n == len(vs):
        z_lo -= rng.uniform(0, 25)  # show some sacrum under L5
    inview = vs[start : start + n]
    cx = np.mean([s.origin_mm[0] for s in inview]) + rng.uniform(-8, 8)
    cy = np.mean([s.origin_mm[1] - s.depth_mm / 2 for s in inview]) - 12 + rng.uniform(-8, 8)
    side = rng.uniform(*acq.fov_xy_mm_range)
    lower = np.array([cx - side / 2, cy - side / 2, z_lo])
    upper = np.array([cx + side / 2, cy + side / 2, z_hi])
    return lower, upper, list(range(start, start + n))


def generate_case(config: SynthesisConfig, rng: np.random.Generator) -> SyntheticCase:
    """Generate one synthetic spine CT.

    Args:
        config: generator configuration (see :func:`spinefx.synthesis.preset`).
        rng: the case's random generator; the same state gives the same case.

    Returns:
        The scan, its masks and the truth of every vertebra whose body centroid is in view.
    """
    acq = config.acquisition
    patient = sample_patient(config, rng)
    lower, upper, in_view = _field_of_view(patient, config, rng)
    if rng.random() < acq.screw_probability:
        # fusions are mostly lumbar / thoracolumbar; higher up when only those are in view
        candidates = [i for i in in_view if patient.vertebrae[i].label >= 17] or in_view
        if len(candidates) >= 2:
            n = int(rng.integers(2, min(4, len(candidates)) + 1))
            first = int(rng.integers(0, len(candidates) - n + 1))
            for i in candidates[first : first + n]:
                patient.vertebrae[i].screws = True
    scan = sample_scan(acq, rng)
    ribs = sample_ribs(
        patient.vertebrae, rng, cartilage_probability=config.anatomy.costal_cartilage_probability
    )
    split = str(rng.choice(SPLIT_NAMES, p=np.asarray(config.splits) / np.sum(config.splits)))

    sp = acq.build_spacing_mm
    shape = tuple(int(n) for n in np.ceil((upper - lower) / sp) + 1)
    grid = BuildGrid(origin_mm=lower, spacing_mm=sp, shape=shape)  # type: ignore[arg-type]
    hu, tissue = soft_tissue(grid, patient, rng)
    draw_canal_and_discs(grid, hu, tissue, patient, rng)
    tile = trabecular_tile(rng, patient.bone, osteoporotic=patient.osteoporotic)
    if config.anatomy.ribs:
        render_ribs(grid, hu, tissue, ribs, patient, tile)
    volumes = Volumes(
        hu=hu,
        vertebra=np.zeros(shape, np.uint8),
        subregion=np.zeros(shape, np.uint8),
        fxzone=np.zeros(shape, np.uint8),
        metal=np.zeros(shape, bool),
    )
    for spec in patient.vertebrae:
        render_vertebra(spec, grid, volumes, rng, hu=patient.hu, bone=patient.bone, tile=tile)
    tissue[volumes.vertebra > 0] = TISSUE_LABELS["bone"]
    tissue[volumes.metal] = TISSUE_LABELS["metal"]
    if volumes.metal.any():
        add_metal_streaks(hu, volumes.metal, grid, rng)
    ct, masks = acquire(
        hu,
        {
            "vertebra": volumes.vertebra,
            "subregion": volumes.subregion,
            "fxzone": volumes.fxzone,
            "tissue": tissue,
        },
        grid,
        scan=scan,
        rng=rng,
    )
    truth = _vertebra_truth(patient, ct, masks["vertebra"], masks["subregion"])
    return SyntheticCase(
        ct=ct,
        vertebra_mask=masks["vertebra"],
        subregion_mask=masks["subregion"],
        fxzone_mask=masks["fxzone"],
        vertebrae=truth,
        split=split,
        acquisition={
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(scan).items()},
            "osteoporotic": patient.osteoporotic,
            "contrast": patient.contrast,
            "contrast_phase": patient.hu.contrast_phase,
            "tissue_hu": dict(patient.hu.mean_hu),
            "tissue_sd_hu": dict(patient.hu.sd_hu),
        },
        tissue_mask=masks["tissue"],
    )


def _touches_border(vertebra: Image, subregion: Image, label: int) -> bool:
    body = (vertebra.data == label) & (subregion.data >= 49)
    for axis in range(3):
        if np.take(body, 0, axis=axis).any() or np.take(body, -1, axis=axis).any():
            return True
    return False


def _vertebra_truth(
    patient: PatientSpec, ct: Image, vertebra: Image, subregion: Image
) -> list[SyntheticVertebra]:
    out = []
    for spec in patient.vertebrae:
        if spec.label == 26:
            continue
        centroid = body_centroid_mm(spec)
        if not bool(ct.contains_world(centroid, margin_vox=0.0)):
            continue
        a, b, h = spec.width_mm / 2, spec.depth_mm / 2, spec.height_mm
        corners = np.array([[x, y, z] for x in (-a, a) for y in (-b, b) for z in (-h / 2, h / 2)])
        fully = bool(
            np.all(ct.contains_world(spec.origin_mm + corners @ spec.frame.T, margin_vox=-1.0))
        ) and not _touches_border(vertebra, subregion, spec.label)
        t: FractureTruth = spec.truth
        out.append(
            SyntheticVertebra(
                vertebra_label=spec.label,
                centroid_mm=centroid,
                genant_grade=t.genant_grade,
                shape=t.shape,
                height_loss=t.height_loss,
                foreign_material=spec.screws,
                fully_in_view=fully,
                schmorl_node=spec.schmorl is not None,
                osteophytes=spec.osteophytes,
            )
        )
    return out
