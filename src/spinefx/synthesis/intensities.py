"""Tissue classes of the synthetic body and their HU, drawn per scan (SynthSeg-style).

Every scan draws, for every tissue, a mean HU from its configured range and a spread (texture
sd); contrast phases brighten blood and the parenchymal organs. Renderers paint
``mean + sd * texture`` with unit-variance texture fields, and record the tissue class of
every voxel in a label map (:data:`TISSUE_LABELS`), so the drawn values can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.synthesis.config import AnatomyConfig, TissueConfig

#: Tissue class -> code of the tissue label map (0 is air outside the body).
TISSUE_LABELS: dict[str, int] = {
    "air": 0,
    "fat": 1,
    "muscle": 2,
    "skin": 3,
    "viscera": 4,
    "liver": 5,
    "spleen": 6,
    "kidney": 7,
    "bowel": 8,
    "gas": 9,
    "blood": 10,
    "lung": 11,
    "csf": 12,
    "cord": 13,
    "disc": 14,
    "bone": 15,
    "rib": 16,
    "cartilage": 17,
    "metal": 18,
}

#: Contrast phases a scan can be in.
CONTRAST_PHASES: tuple[str, ...] = ("none", "arterial", "venous")


@dataclass(frozen=True)
class TissueIntensities:
    """The HU of one scan's tissues.

    Attributes:
        mean_hu: tissue class -> mean HU (bone: ``trabecular`` and ``cortical``).
        sd_hu: tissue class -> texture sd, HU.
        contrast_phase: one of :data:`CONTRAST_PHASES`.
    """

    mean_hu: dict[str, float]
    sd_hu: dict[str, float]
    contrast_phase: str = "none"


def sample_intensities(
    tissue: TissueConfig,
    anatomy: AnatomyConfig,
    rng: np.random.Generator,
    *,
    trabecular_hu: float,
    cortical_hu: float,
    osteoporotic: bool,
) -> TissueIntensities:
    """Draw every tissue's mean HU and texture sd for one scan.

    Args:
        tissue: soft-tissue ranges.
        anatomy: bone and contrast ranges.
        rng: the case's generator.
        trabecular_hu / cortical_hu: the patient's bone HU (drawn with the patient).
        osteoporotic: coarser, more contrasted trabecular texture.
    """
    phase = "none"
    if rng.random() < anatomy.contrast_probability:
        phase = str(rng.choice(CONTRAST_PHASES[1:]))
    u = rng.uniform
    mean = {
        "fat": u(*tissue.fat_hu_range),
        "muscle": u(*tissue.muscle_hu_range),
        "viscera": u(*tissue.viscera_hu_range),
        "liver": u(*tissue.viscera_hu_range),
        "spleen": u(*tissue.viscera_hu_range),
        "kidney": u(*tissue.viscera_hu_range) - 10.0,
        "bowel": u(*tissue.viscera_hu_range) - 15.0,
        "blood": u(*tissue.blood_hu_range),
        "lung": u(*tissue.lung_hu_range),
        "csf": u(*tissue.csf_hu_range),
        "disc": u(*tissue.disc_hu_range),
        "cartilage": u(100.0, 200.0),
        "gas": u(-1000.0, -950.0),
        "air": -1000.0,
    }
    mean["cord"] = mean["csf"] + u(15.0, 30.0)
    mean["skin"] = mean["muscle"] + u(0.0, 20.0)
    if phase != "none":
        lo, hi = tissue.contrast_blood_hu_range
        mid = (lo + hi) / 2
        mean["blood"] = u(mid, hi) if phase == "arterial" else u(lo, mid)
        enhancement = u(*tissue.organ_enhancement_hu_range) * (0.4 if phase == "arterial" else 1.0)
        mean["liver"] += enhancement
        mean["spleen"] += 1.2 * enhancement
        mean["kidney"] += 2.5 * enhancement
        mean["bowel"] += 0.5 * enhancement
        mean["muscle"] += 0.1 * enhancement
    sd = {k: u(*tissue.texture_sd_hu_range) for k in mean}
    sd["lung"] = u(15.0, 40.0)
    sd["gas"] = sd["air"] = 5.0
    trab_sd = u(*anatomy.trabecular_sd_hu_range)
    mean["trabecular"], sd["trabecular"] = trabecular_hu, trab_sd * (1.3 if osteoporotic else 1.0)
    mean["cortical"], sd["cortical"] = cortical_hu, 0.06 * cortical_hu
    return TissueIntensities(
        mean_hu={k: float(v) for k, v in mean.items()},
        sd_hu={k: float(v) for k, v in sd.items()},
        contrast_phase=phase,
    )
