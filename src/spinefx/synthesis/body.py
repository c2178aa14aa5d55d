"""A synthetic patient's body habitus and organ layout: numbers drawn once per scan.

Positions along the spine are *level indices* (0 = T1 body centre, 11 = T12, 16 = L5) that
the renderers turn into world z with the patient's own vertebrae; lateral and anterior
offsets are mm from the spine centre. Right is +x (RAS), anterior +y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.synthesis.config import TissueConfig


@dataclass(frozen=True)
class BodySpec:
    """Body outline, fat, muscles and organs of one patient.

    Attributes:
        half_width_mm / half_depth_mm: semi-axes of the body outline.
        fat_mm: subcutaneous fat thickness.
        outline_power: exponent of the superellipse outline (2 ellipse, larger boxier).
        back_muscle_mm: depth of the paraspinal muscles behind the laminae (lumbar).
        muscle_fat: 0-1 fatty infiltration of the muscles.
        dome_level: level index of the right diaphragm dome (the left is half a level lower).
        recess_mm: how far the posterior costophrenic recesses reach below the dome.
        lung_width_mm / lung_depth_mm: semi-axes of a lung at mid-thorax.
        lung_gravity_hu: extra density of the dependent (posterior) lung.
        liver_bottom_level / spleen_bottom_level: lowest level of liver and spleen.
        kidney_levels: (left, right) level index of the kidney centres.
        kidney_size_mm: semi-axes (lateral, anterior, cranial) of a kidney.
        heart_top_level: level index of the top of the heart.
        aortic_calcification: calcified plaques in the aortic wall.
        oesophageal_air: an air-filled oesophageal lumen.
        bowel_gas: fraction of the bowel holding gas.
    """

    half_width_mm: float
    half_depth_mm: float
    fat_mm: float
    outline_power: float
    back_muscle_mm: float
    muscle_fat: float
    dome_level: float
    recess_mm: float
    lung_width_mm: float
    lung_depth_mm: float
    lung_gravity_hu: float
    liver_bottom_level: float
    spleen_bottom_level: float
    kidney_levels: tuple[float, float]
    kidney_size_mm: tuple[float, float, float]
    heart_top_level: float
    aortic_calcification: bool
    oesophageal_air: bool
    bowel_gas: float


def sample_body(config: TissueConfig, rng: np.random.Generator, *, elderly: bool) -> BodySpec:
    """Draw the habitus and organ layout of one patient (``elderly``: fattier muscles)."""
    u = rng.uniform
    half_width = u(*config.body_half_width_mm_range)
    fat_lo, fat_hi = config.fat_thickness_mm_range
    # fat thickness goes with the body size (an obese patient is wide and fat)
    size = (half_width - config.body_half_width_mm_range[0]) / max(
        np.ptp(config.body_half_width_mm_range), 1e-6
    )
    fat = fat_lo + (fat_hi - fat_lo) * float(np.clip(0.7 * size + 0.3 * u(0, 1), 0, 1))
    dome = u(8.5, 10.5)
    return BodySpec(
        half_width_mm=float(half_width),
        half_depth_mm=float(u(*config.body_half_depth_mm_range)),
        fat_mm=float(fat),
        outline_power=float(u(2.0, 2.6)),
        back_muscle_mm=float(u(45.0, 65.0)),
        muscle_fat=float(u(0.1, 0.35) if elderly else u(0.0, 0.15)),
        dome_level=float(dome),
        recess_mm=float(u(50.0, 90.0)),
        lung_width_mm=float(u(45.0, 60.0)),
        lung_depth_mm=float(u(60.0, 80.0)),
        lung_gravity_hu=float(u(20.0, 100.0)),
        liver_bottom_level=float(dome + u(4.5, 6.5)),
        spleen_bottom_level=float(dome + u(2.5, 3.5)),
        kidney_levels=(float(u(11.8, 12.8)), float(u(12.3, 13.3))),
        kidney_size_mm=(float(u(22.0, 28.0)), float(u(20.0, 26.0)), float(u(48.0, 60.0))),
        heart_top_level=float(u(3.5, 5.0)),
        aortic_calcification=bool(rng.random() < config.aortic_calcification_probability),
        oesophageal_air=bool(rng.random() < 0.4),
        bowel_gas=float(u(*config.bowel_gas_range)),
    )
