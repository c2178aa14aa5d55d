"""Intensity windowing: CT Hounsfield units <-> the [0, 1] range networks are fed."""

from __future__ import annotations

import numpy as np

from spinefx.conventions import HU_CLIP
from spinefx.errors import InputError


def hu_to_unit(array: np.ndarray, *, clip_hu: tuple[float, float] = HU_CLIP) -> np.ndarray:
    """Clip HU to ``clip_hu`` and scale linearly to ``[0, 1]``.

    Args:
        array: CT intensities in HU, any shape.
        clip_hu: ``(low, high)`` HU window; ``low`` maps to 0 and ``high`` to 1.

    Returns:
        float32 array of the same shape, values in ``[0, 1]``.
    """
    low, high = _window(clip_hu)
    out = (np.asarray(array, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def unit_to_hu(array: np.ndarray, *, clip_hu: tuple[float, float] = HU_CLIP) -> np.ndarray:
    """Inverse of :func:`hu_to_unit` (exact for HU values inside ``clip_hu``).

    Returns:
        float32 array in HU, values in ``[clip_hu[0], clip_hu[1]]``.
    """
    low, high = _window(clip_hu)
    unit = np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0)
    return unit * np.float32(high - low) + np.float32(low)


def _window(clip_hu: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in clip_hu)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise InputError(
            f"invalid HU window {clip_hu!r}", fix="give (low, high) with low < high, in HU"
        )
    return low, high
