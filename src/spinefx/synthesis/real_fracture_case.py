"""One case of fracture simulation on real tissue: what is drawn for a canvas, then applied.

A canvas is one real CT with its VerSe-id vertebra mask. :func:`make_real_fracture_case` crops
it to a random window of consecutive vertebrae, grades what is in view (official grades; for
subjects without any, such as tptbox and totalseg, vertebrae that spinefx's morphometry
measures as grade 0 count as healthy), fractures healthy vertebrae with
``fracture_probability`` (never two neighbours), draws a small rigid motion and the noise of
stretched discs, then deforms the scan so that morphometry measures the intended Genant
losses (:func:`~spinefx.synthesis.genant_deformation.deform_to_genant`). Vertebrae that the
motion takes out of view are written ungraded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinefx.conventions import SHAPE_CODES, VERTEBRA_LEVELS, spine_rank
from spinefx.image import Image
from spinefx.morphometry import VertebraMorphometry
from spinefx.synthesis.config import FractureConfig
from spinefx.synthesis.deformation import random_rigid_transform
from spinefx.synthesis.fractures import SHAPES, FractureTruth, sample_height_loss
from spinefx.synthesis.genant_deformation import deform_to_genant, measure_by_label
from spinefx.synthesis.real_sources import RealScan


def _range(name: str, value, lo: float, hi: float) -> None:
    if len(value) != 2 or not lo <= value[0] <= value[1] <= hi:
        raise ValueError(
            f"{name} must be (low, high) with {lo} <= low <= high <= {hi}, got {value}"
        )


@dataclass(frozen=True)
class RealFractureConfig:
    """How healthy real vertebrae are turned into fractures.

    Attributes:
        fracture_probability: chance that an eligible healthy vertebra is fractured.
        grade_weights: relative frequency of grades 1, 2, 3.
        shape_weights: relative frequency of wedge, biconcave, crush.
        boundary_margin: losses are drawn this far inside a grade's range (fraction).
        severe_max_loss: upper limit of a grade-3 loss.
        superior_fraction_range: share of the loss at the superior endplate (wedge, crush).
        biconcave_superior_fraction_range: the same for biconcave fractures (both endplates).
        condensation: strength of the HU rise of compressed bone (0 = none).
        falloff_mm: fade-out of the deformation outside the body's cross-section, mm.
        crop_levels: (min, max) consecutive vertebrae kept in a random window, None = all.
        crop_margin_mm: margin kept around the window's vertebrae, mm.
        rotation_deg / shift_mm: small random rigid motion of every case, all vertebrae alike
            (0 and 0: none; then healthy voxels are copied, not interpolated).
        restore_noise: add noise where discs are stretched (keeps their grain).
        calibration_steps: re-runs that correct the own-height losses until morphometry
            measures the intended loss (0 = one run).
    """

    fracture_probability: float = 0.4
    grade_weights: tuple[float, float, float] = (0.3, 0.45, 0.25)
    shape_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
    boundary_margin: float = 0.01
    severe_max_loss: float = 0.55
    superior_fraction_range: tuple[float, float] = (0.6, 1.0)
    biconcave_superior_fraction_range: tuple[float, float] = (0.35, 0.65)
    condensation: float = 1.0
    falloff_mm: float = 6.0
    crop_levels: tuple[int, int] | None = (4, 7)
    crop_margin_mm: float = 15.0
    rotation_deg: float = 3.0
    shift_mm: float = 1.5
    restore_noise: bool = True
    calibration_steps: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.fracture_probability <= 1.0:
            raise ValueError(
                f"fracture_probability must be in [0, 1], got {self.fracture_probability}"
            )
        for name in ("grade_weights", "shape_weights"):
            w = getattr(self, name)
            if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
                raise ValueError(f"{name} must be 3 weights >= 0 with a positive sum, got {w}")
        if not 0.0 <= self.boundary_margin < 0.025:
            raise ValueError(
                f"boundary_margin must be in [0, 0.025) (grade 1 spans 0.05), got {self.boundary_margin}"
            )
        if not 0.4 + 2 * self.boundary_margin < self.severe_max_loss <= 0.8:
            raise ValueError(
                f"severe_max_loss must be in (0.4 + 2 margins, 0.8], got {self.severe_max_loss}"
            )
        _range("superior_fraction_range", self.superior_fraction_range, 0.0, 1.0)
        _range(
            "biconcave_superior_fraction_range", self.biconcave_superior_fraction_range, 0.0, 1.0
        )
        if self.crop_levels is not None:
            _range("crop_levels", self.crop_levels, 1, 30)
        if min(self.condensation, self.falloff_mm, self.crop_margin_mm, self.shift_mm) < 0:
            raise ValueError("condensation, falloff_mm, crop_margin_mm and shift_mm must be >= 0")
        if not 0 <= self.calibration_steps <= 3:
            raise ValueError(f"calibration_steps must be 0-3, got {self.calibration_steps}")
        if not 0.0 <= self.rotation_deg <= 15.0:
            raise ValueError(
                f"rotation_deg must be in [0, 15] (a light augmentation), got {self.rotation_deg}"
            )


@dataclass
class RealFractureCase:
    """One output case in memory.

    Attributes:
        ct / mask: deformed CT (float32 HU) and vertebra mask on the (cropped) canvas grid.
        grades: label -> (grade text "0"-"3" / "x" / "", shape code text or "").
        truth: label -> intended fracture (simulated ones), with the applied own-height loss.
        measured: label -> morphometry of the output mask.
    """

    ct: Image
    mask: Image
    grades: dict[int, tuple[str, str]]
    truth: dict[int, tuple[FractureTruth, float]] = field(default_factory=dict)
    measured: dict[int, VertebraMorphometry] = field(default_factory=dict)


def crop_to_vertebrae(
    ct: Image, mask: Image, labels: list[int], *, margin_mm: float
) -> tuple[Image, Image]:
    """Exact crop (no resampling) to the bounding box of ``labels`` plus ``margin_mm``."""
    from spinefx.preprocessing.resample import crop_to

    where = np.isin(mask.data, labels)
    pad = np.ceil(margin_mm / mask.spacing_mm).astype(int)
    return crop_to(ct, where, margin_vox=pad), crop_to(mask, where, margin_vox=pad)


def _grades(scan: RealScan, rows: dict[int, VertebraMorphometry], labels) -> dict:
    unlabeled = not scan.grades and not scan.foreign_material
    out = {}
    for k in labels:
        row = rows.get(k)
        in_view = row is not None and row.note == ""
        if k in scan.foreign_material:
            out[k] = ("x", "")
        elif k in scan.grades and in_view:
            grade, shape = scan.grades[k]
            out[k] = (str(grade), str(SHAPE_CODES.get(shape, 0)) if grade else "0")
        elif unlabeled and in_view and row.genant_grade == 0:
            out[k] = ("0", "0")
        else:
            out[k] = ("", "")
    return out


def draw_fractures(
    grades: dict[int, tuple[str, str]],
    rows: dict[int, VertebraMorphometry],
    config: RealFractureConfig,
    rng: np.random.Generator,
) -> dict[int, FractureTruth]:
    """Fractures of the healthy vertebrae (grade "0", measured 0), cranial to caudal.

    A vertebra next to one just fractured is skipped (one disc is stretched by one fracture).
    """
    fx_config = FractureConfig(
        boundary_margin=config.boundary_margin, severe_max_loss=config.severe_max_loss
    )
    grade_p = np.asarray(config.grade_weights, float) / sum(config.grade_weights)
    shape_p = np.asarray(config.shape_weights, float) / sum(config.shape_weights)
    out: dict[int, FractureTruth] = {}
    previous = None
    for k in sorted(grades, key=spine_rank):
        healthy = grades[k][0] == "0" and rows.get(k) is not None and rows[k].genant_grade == 0
        if healthy and previous not in out and rng.random() < config.fracture_probability:
            grade = int(rng.choice([1, 2, 3], p=grade_p))
            shape = str(rng.choice(SHAPES, p=shape_p))
            loss = sample_height_loss(grade, rng, config=fx_config)
            lo, hi = (
                config.biconcave_superior_fraction_range
                if shape == "biconcave"
                else config.superior_fraction_range
            )
            out[k] = FractureTruth(grade, shape, loss, float(rng.uniform(lo, hi)))
        previous = k
    return out


def make_real_fracture_case(
    ct: Image, mask: Image, scan: RealScan, config: RealFractureConfig, rng: np.random.Generator
) -> RealFractureCase:
    """Draw everything random for one canvas (window, fractures, motion, noise), then deform.

    Args:
        ct / mask: the canvas: a real CT in HU and its VerSe-id vertebra mask, on one grid.
        scan: its :class:`~spinefx.synthesis.real_sources.RealScan` (official grades, metal).
        config: simulation settings.
        rng: the case's generator; all draws happen before the deformation.

    Returns:
        The case; vertebrae not fully in view after the motion are written ungraded.
    """
    labels = sorted(
        (int(x) for x in np.unique(mask.data) if int(x) in VERTEBRA_LEVELS), key=spine_rank
    )
    if config.crop_levels is not None and labels:
        n = int(rng.integers(config.crop_levels[0], config.crop_levels[1] + 1))
        n = min(n, len(labels))
        start = int(rng.integers(0, len(labels) - n + 1))
        ct, mask = crop_to_vertebrae(
            ct, mask, labels[start : start + n], margin_mm=config.crop_margin_mm
        )
        labels = [k for k in labels if np.any(mask.data == k)]
    rows = measure_by_label(mask)
    grades = _grades(scan, rows, labels)
    fractures = draw_fractures(grades, rows, config, rng)
    transform = None
    if config.rotation_deg > 0 or config.shift_mm > 0:
        centre = ct.voxel_to_world((np.asarray(ct.shape) - 1) / 2.0)
        transform = random_rigid_transform(
            centre, rng, rotation_deg=config.rotation_deg, shift_mm=config.shift_mm
        )
    noise = rng.standard_normal(ct.shape, dtype=np.float32) if config.restore_noise else None
    ct_out, mask_out, measured, own = deform_to_genant(
        ct,
        mask,
        fractures,
        condensation=config.condensation,
        falloff_mm=config.falloff_mm,
        calibration_steps=config.calibration_steps,
        transform=transform,
        noise=noise,
    )
    for k, t in fractures.items():
        grades[k] = (str(t.genant_grade), str(t.shape_code))
    for k in grades:
        if k not in measured or measured[k].note:  # moved out of view, or never in it
            grades[k] = ("", "")
    truth = {k: (t, own[k]) for k, t in fractures.items()}
    return RealFractureCase(ct_out, mask_out, grades, truth, measured)
