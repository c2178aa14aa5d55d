"""Load a CT scan (NIfTI file or DICOM folder) or a label mask, validated at the boundary.

What "looks like CT in Hounsfield units" means here (checked on a subsample of voxels):

* all voxels finite (no NaN / inf);
* the low tail is negative: the 0.5th percentile is below ``-50`` HU (every CT of the body
  holds air or fat, fat being -150..-50 HU; MRI, raw unscaled DICOM values and
  [0, 1]-normalised images have no negative values). A tight crop around the spine may hold
  no air at all (VerSe ``sub-verse006``: minimum -750 HU, 0.5th percentile -116 HU);
* the minimum is not below ``-4000`` HU (padding values of -2048 / -3024 are CT; lower is not);
* the high tail is not above ``CT_PLAUSIBLE_HU[1]``: the 99.5th percentile <= 4000 HU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from spinefx.conventions import CT_PLAUSIBLE_HU, NON_VERTEBRA_LABELS, VERTEBRA_LEVELS
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io.nifti import is_nifti_path, read_nifti

log = logging.getLogger(__name__)

#: Labels a vertebra mask may hold: background, vertebrae (VerSe numbering), sacrum, coccyx.
VERTEBRA_MASK_LABELS: frozenset[int] = frozenset({0, *VERTEBRA_LEVELS, *NON_VERTEBRA_LABELS})

_LOW_TAIL_MAX_HU = -50.0
_MIN_HU = -4000.0
_MAX_SAMPLE_VOXELS = 4_000_000


def load_scan(path: str | Path) -> Image:
    """Load a CT scan from a NIfTI file or a folder of DICOM slices.

    Args:
        path: ``.nii``/``.nii.gz`` file, or a folder holding one DICOM series (the series
            with the most slices is used when there are several; see
            :func:`spinefx.io.dicom.load_dicom_series`).

    Returns:
        Image of shape ``(X, Y, Z)`` in the source's voxel order, intensities in HU, affine
        voxel -> RAS+ mm. ``meta["source"]`` names the input, ``meta["format"]`` is
        ``"nifti"`` or ``"dicom"``.

    Raises:
        InputError: missing/corrupt file, not 3-D, non-finite voxels, or intensities that do
            not look like CT in Hounsfield units.
    """
    path = Path(path)
    if path.is_dir():
        from spinefx.io.dicom import load_dicom_series

        image = load_dicom_series(path)
        image.meta["format"] = "dicom"
        if image.meta.get("modality") not in ("", "CT"):
            raise InputError(
                f"the DICOM series has Modality {image.meta['modality']}; a CT is expected",
                path=path,
                fix="pass a CT series (spinefx works on CT in Hounsfield units)",
            )
    elif not path.exists():
        raise InputError("file or folder not found", path=path, fix="check the path")
    elif is_nifti_path(path):
        image = read_nifti(path)
        image.meta["format"] = "nifti"
    elif path.suffix.lower() in (".dcm", ".ima", "") and _is_dicom_file(path):
        raise InputError(
            "this is a single DICOM slice; a scan is the whole series",
            path=path,
            fix=f"pass the folder that holds all slices of the series ({path.parent})",
        )
    else:
        raise InputError(
            f"unsupported scan format {''.join(path.suffixes) or '(no suffix)'}",
            path=path,
            fix="pass a .nii/.nii.gz file or the folder that holds the DICOM slices",
        )
    check_ct_intensities(image.data, path=path)
    return image


def _is_dicom_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _sample(data: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((data.size / _MAX_SAMPLE_VOXELS) ** (1 / 3))))
    return np.asarray(data[::step, ::step, ::step])


def check_ct_intensities(data: np.ndarray, *, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` unless ``data`` looks like a CT volume in HU.

    Args:
        data: array ``(X, Y, Z)`` of intensities.
        path: the file named in the error.
    """
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(
            f"image holds {bad} NaN or infinite voxels",
            path=path,
            fix="export the CT again without NaN/inf (or replace them with -1000 HU, air)",
        )
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"image data type {data.dtype} is not numeric", path=path, fix="pass a CT volume"
        )
    sample = _sample(data).astype(np.float64, copy=False)
    lo, hi = np.percentile(sample, [0.5, 99.5])
    vmin = float(data.min())
    if lo > _LOW_TAIL_MAX_HU or vmin < _MIN_HU or hi > CT_PLAUSIBLE_HU[1]:
        raise InputError(
            "image does not look like CT in Hounsfield units "
            f"(min {vmin:.4g}, 0.5-99.5th percentile {lo:.4g}..{hi:.4g}; CT spans about "
            "-1024..3000 HU with air near -1000)",
            path=path,
            fix="pass a CT scan in HU (an MRI cannot be used; raw DICOM values need "
            "RescaleSlope/RescaleIntercept applied)",
        )


def load_mask(
    path: str | Path, *, known_labels: Iterable[int] | None = VERTEBRA_MASK_LABELS
) -> Image:
    """Load an integer label map (e.g. a VerSe ``_seg-vert_msk`` vertebra mask).

    Args:
        path: NIfTI file. Float-typed files are accepted when every voxel is an integer.
        known_labels: labels allowed in the mask (default: background, VerSe vertebra ids
            1-25/28, sacrum 26, coccyx 27); None accepts any label (sub-region masks).

    Returns:
        Image with integer ``data`` (uint8/int16/int32) of shape ``(X, Y, Z)``.

    Raises:
        InputError: unreadable file, non-integer values, or labels not in ``known_labels``.
    """
    path = Path(path)
    image = read_nifti(path)
    data = image.data
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.all(np.mod(data, 1) == 0):
            raise InputError(
                "label mask holds non-integer values (is this an image rather than a mask?)",
                path=path,
                fix="pass an integer label map (nearest-neighbour resampled, not interpolated)",
            )
    elif data.dtype.kind not in "iub":
        raise InputError(f"label mask has dtype {data.dtype}", path=path, fix="use integer labels")
    labels = np.unique(data).astype(np.int64)
    if known_labels is not None:
        unknown = sorted(set(labels.tolist()) - set(known_labels))
        if unknown:
            raise InputError(
                f"mask holds labels {unknown} that are not VerSe vertebra labels",
                path=path,
                fix="use VerSe numbering (1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13; "
                "26 sacrum, 27 coccyx) or relabel the mask",
            )
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    dtype = next(
        t
        for t in (np.uint8, np.int16, np.int32, np.int64)
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max
    )
    image.meta["format"] = "nifti"
    return Image(data.astype(dtype), image.affine, image.meta)
