"""The input grid of the body-centre heatmap network (:mod:`spinefx.models.body_heatmap`).

Training (:mod:`spinefx.training.body_heatmap`) and inference
(:mod:`spinefx.inference.body_heatmap`) both put a CT on this grid, so it lives in one place.
"""

from __future__ import annotations

import numpy as np

from spinefx.image import Image
from spinefx.preprocessing.orientation import reorient
from spinefx.preprocessing.resample import resample_to_spacing

#: working grid of the heatmap network, mm (a lumbar body is ~10 voxels across)
HEATMAP_GRID_MM = 4.0


def scale_hu(hu: np.ndarray) -> np.ndarray:
    """HU to the network's input range: air -1, water 0, dense bone ~1.5 (clipped)."""
    return (np.clip(np.asarray(hu, np.float32), -1000.0, 2000.0) / 1000.0).astype(np.float32)


def heatmap_grid(scan: Image) -> Image:
    """``scan`` on the network's RAS+ grid (:data:`HEATMAP_GRID_MM`, linear, air outside)."""
    return resample_to_spacing(
        reorient(scan, "RAS"), HEATMAP_GRID_MM, interpolation="linear", fill_value=-1000.0
    )
