"""Load a CT scan (NIfTI file or DICOM folder) or a label mask, validated at the boundary.

What "looks like CT in Hounsfield units" means here (checked on a subsample of voxels):

* all voxels finite (no NaN / inf);
* the low tail is negative: the 0.5th percentile is below ``-50`` HU (every CT of the body
  holds air or fat, fat being -150..-50 HU; MRI, raw unscaled DICOM values and
  [0, 1]-normalised images have no negative values). A tight crop around the spine may hold
  no air at all (VerSe ``sub-verse006``: minimum -750 HU, 0.5th percentile -116 HU);
* the minimum is not below ``-4000`` HU (padding values of -2048 / -3024 are CT; lower is not);
* the high tail is not above ``CT_PLAUSIBLE_HU[1]``: the 99.5th percentile <= 4000 HU;
* bone is present: at least ``_MIN_BONE_FRACTION`` of the voxels are at or above 150 HU (an
  all-air, all-water or constant volume holds no vertebra to assess, and would otherwise
  read as "no fracture"). Soft tissue is not required: test phantoms and some crops have
  none, and the low-tail rule above already refuses MRI and normalised images.

``--no-ct-check`` (:func:`ct_check_disabled`) skips the intensity checks, never the NaN check.
Geometry is checked on every scan and mask: each voxel spacing within
``PLAUSIBLE_SPACING_MM`` and each axis at most ``MAX_EXTENT_MM`` long; a header outside these
(a 1e6 mm spacing, a metre-sized voxel) is wrong, and every measurement made on it would be.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
_BONE_HU = 150.0
_MIN_BONE_FRACTION = 1e-4
#: smallest and largest voxel spacing (mm) of a plausible CT or mask header
PLAUSIBLE_SPACING_MM = (0.05, 20.0)
#: longest plausible axis of a scan (mm): a whole-body CT is about 2 m
MAX_EXTENT_MM = 3000.0
_CT_CHECK: ContextVar[bool] = ContextVar("spinefx_ct_check", default=True)


def ct_check_enabled() -> bool:
    """Whether :func:`load_scan` checks intensities by default here (False: ``--no-ct-check``)."""
    return _CT_CHECK.get()


def set_ct_check(enabled: bool) -> None:
    """Set the default for this thread; for worker processes, which do not inherit a context
    (their initializer calls it with the parent's :func:`ct_check_enabled`)."""
    _CT_CHECK.set(bool(enabled))


@contextmanager
def ct_check_disabled() -> Iterator[None]:
    """Within the block, scans that fail the CT intensity check load with a warning."""
    token = _CT_CHECK.set(False)
    try:
        yield
    finally:
        _CT_CHECK.reset(token)


def check_geometry(image: Image, *, path: str | Path | None = None, what: str = "scan") -> None:
    """Refuse a voxel spacing or extent no CT (or mask of one) can have.

    Raises:
        InputError: a spacing outside ``PLAUSIBLE_SPACING_MM`` or an axis longer than
            ``MAX_EXTENT_MM``.
    """
    spacing = np.asarray(image.spacing_mm, dtype=float)
    lo, hi = PLAUSIBLE_SPACING_MM
    if not np.all((spacing >= lo) & (spacing <= hi)):
        raise InputError(
            f"the {what}'s voxel spacing {tuple(round(float(s), 4) for s in spacing)} mm is not "
            f"plausible for CT ({lo:g}-{hi:g} mm per voxel); the header's affine or pixdim is "
            "wrong, and every size measured on it would be too",
            path=path,
            fix="export the image again with its true voxel spacing",
        )
    extent = spacing * np.asarray(image.shape[:3], dtype=float)
    if np.any(extent > MAX_EXTENT_MM):
        raise InputError(
            f"the {what} is {tuple(round(float(e)) for e in extent)} mm long, more than any CT "
            f"({MAX_EXTENT_MM:g} mm); the header's spacing is wrong",
            path=path,
            fix="export the image again with its true voxel spacing",
        )


def load_scan(path: str | Path, *, ct_check: bool | None = None) -> Image:
    """Load a CT scan from a NIfTI file or a folder of DICOM slices.

    Args:
        path: ``.nii``/``.nii.gz`` file, or a folder holding one DICOM series (the series
            with the most slices is used when there are several; see
            :func:`spinefx.io.dicom.load_dicom_series`).

    Returns:
        Image of shape ``(X, Y, Z)`` in the source's voxel order, intensities in HU, affine
        voxel -> RAS+ mm. ``meta["source"]`` names the input, ``meta["format"]`` is
        ``"nifti"`` or ``"dicom"``.

        ct_check: check that the intensities look like CT in HU (default: yes, unless inside
            :func:`ct_check_disabled`, i.e. ``--no-ct-check``).

    Raises:
        InputError: missing/corrupt file, not 3-D, implausible spacing or size, non-finite
            voxels, or intensities that do not look like CT in Hounsfield units.
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
    check_geometry(image, path=path)
    if ct_check is None:
        ct_check = _CT_CHECK.get()
    if ct_check:
        check_ct_intensities(image.data, path=path)
    else:
        check_finite(image.data, path=path)
        try:
            check_ct_intensities(image.data, path=path)
        except InputError as exc:
            log.warning("%s (loaded anyway: --no-ct-check)", exc.args[0] if exc.args else exc)
    return image


def _is_dicom_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _sample(data: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((data.size / _MAX_SAMPLE_VOXELS) ** (1 / 3))))
    return np.asarray(data[::step, ::step, ::step])


def check_finite(data: np.ndarray, *, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` for a non-numeric array or one holding NaN / inf."""
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"image data type {data.dtype} is not numeric", path=path, fix="pass a CT volume"
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(
            f"image holds {bad} NaN or infinite voxels",
            path=path,
            fix="export the CT again without NaN/inf (or replace them with -1000 HU, air)",
        )


def check_ct_intensities(data: np.ndarray, *, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` unless ``data`` looks like a CT volume in HU.

    Args:
        data: array ``(X, Y, Z)`` of intensities.
        path: the file named in the error.
    """
    check_finite(data, path=path)
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
            "RescaleSlope/RescaleIntercept applied); --no-ct-check loads it anyway",
        )
    bone = float(np.mean(sample >= _BONE_HU))
    if bone < _MIN_BONE_FRACTION:
        raise InputError(
            f"image holds no bone: {100 * bone:.2g} % of its voxels are at or above "
            f"{_BONE_HU:g} HU, so there is no vertebra to assess (an all-air, constant or "
            "empty volume?)",
            path=path,
            fix="pass the CT that shows the spine; --no-ct-check loads it anyway",
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
    check_geometry(image, path=path, what="mask")
    data = image.data
    if data.dtype.kind == "f":
        finite = bool(np.all(np.isfinite(data)))
        if not finite or not np.all(np.mod(data, 1) == 0) or np.abs(data).max() > 2**31:
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
