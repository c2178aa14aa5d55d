"""DICOM series reader (pydicom): a folder of slices -> one 3-D :class:`Image` in RAS+ mm.

This is the only module of spinefx that knows the DICOM patient space (LPS+); the affine is
converted to RAS+ here by negating x and y.

Decisions on imperfect series (exact geometry first):

* **Several series in one folder**: the one with the most slices is read; the choice is
  logged and recorded in ``meta["dicom_series"]``.
* **Slice spacing**: positions are projected on the slice normal and sorted. A spread of the
  gaps up to ``max(1e-3 mm, 0.1 %)`` is rounding; up to 5 % of the mean gap it is logged as a
  warning, recorded in ``meta["slice_spacing_deviation_mm"]``, and the mean gap is used
  (sub-voxel error); beyond that (a missing slice, variable spacing) it is an
  :class:`InputError`, because no affine can describe such a grid.
* **Gantry tilt** (slice origins not moving along the normal): the affine built from the
  first and last slice positions is sheared and exact. Up to 1 degree the series is read with
  that affine, a warning is logged and ``meta["gantry_tilt_deg"]`` set; beyond 1 degree it is
  an :class:`InputError` asking to correct the tilt (e.g. ``dcm2niix``), because the shear
  makes voxel spacing and axis codes misleading and many tools silently drop it.
* Rescale slope/intercept are applied per slice (they may differ between slices).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from spinefx.errors import InputError
from spinefx.image import Image

log = logging.getLogger(__name__)

#: DICOM LPS+ -> RAS+ (negate x and y).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
MAX_GANTRY_TILT_DEG = 1.0
MAX_SPACING_DEVIATION = 0.05


#: tags a slice needs to be placed in the volume (others are ignored or defaulted)
REQUIRED_TAGS = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
)


def _read_headers(folder: Path) -> list:
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers, incomplete, broken = [], {}, []
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError):
            if _has_dicom_preamble(file):  # a DICOM file that cannot be read: say so
                broken.append(file.name)
            else:
                log.debug("%s: not a DICOM file, ignored", file)
            continue
        if len(ds) == 0:  # a preamble and file meta, then nothing: truncated
            broken.append(file.name)
            continue
        missing = [tag for tag in REQUIRED_TAGS if tag not in ds]
        if len(missing) == len(REQUIRED_TAGS) or "ImagePositionPatient" in missing:
            log.debug("%s: DICOM without image geometry, ignored", file)
            continue
        if missing or not _valid_geometry(ds):
            incomplete[file.name] = missing or ["a malformed position, orientation or spacing"]
            continue
        headers.append((file, ds))
    if broken:
        log.warning(
            "%s: %d DICOM files could not be read and were ignored (e.g. %s); if they are "
            "slices of the series, it is shorter than it should be",
            folder,
            len(broken),
            broken[0],
        )
    if incomplete:
        names = sorted(incomplete)
        tags = sorted({tag for found in incomplete.values() for tag in found})
        if not headers:
            raise InputError(
                f"the DICOM slices lack {', '.join(tags)} ({len(names)} files, e.g. {names[0]})",
                path=folder,
                fix="export the series again with its image geometry (a CT series carries "
                "position, orientation, pixel spacing, rows and columns on every slice)",
            )
        log.warning(
            "%s: %d DICOM files lack %s and were ignored (e.g. %s)",
            folder,
            len(names),
            ", ".join(tags),
            names[0],
        )
    return headers


def _has_dicom_preamble(file: Path) -> bool:
    try:
        with file.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _valid_geometry(ds) -> bool:
    try:
        ok = len(ds.ImagePositionPatient) == 3 and len(ds.ImageOrientationPatient) == 6
        spacing = [float(v) for v in ds.PixelSpacing]
        return ok and len(spacing) == 2 and min(spacing) > 0 and int(ds.Rows) > 0
    except (TypeError, ValueError, AttributeError):
        return False


def _series_key(ds) -> tuple:
    iop = tuple(np.round(np.asarray(ds.ImageOrientationPatient, dtype=float), 4))
    return (str(ds.get("SeriesInstanceUID", "")), iop, int(ds.Rows), int(ds.Columns))


def _choose_series(folder: Path, headers: list) -> list:
    groups: dict[tuple, list] = defaultdict(list)
    for file, ds in headers:
        groups[_series_key(ds)].append((file, ds))
    if len(groups) > 1:
        sizes = sorted((len(v) for v in groups.values()), reverse=True)
        log.warning(
            "%s: %d DICOM series found (slices: %s); reading the largest",
            folder,
            len(groups),
            sizes,
        )
    return max(groups.values(), key=len)


def _geometry(folder: Path, series: list) -> tuple[list, np.ndarray, dict]:
    """Sort slices along the normal and build the LPS affine; returns (sorted, affine, meta)."""
    ds0 = series[0][1]
    iop = np.asarray(ds0.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([np.asarray(ds.ImagePositionPatient, dtype=float) for _, ds in series])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    series = [series[i] for i in order]
    positions, along = positions[order], along[order]
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    meta = {**_check_gaps(folder, along), **_check_tilt(folder, step, normal)}
    row_spacing, col_spacing = (float(v) for v in ds0.PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing  # array axis 0 = column index, moves along the row
    affine[:3, 1] = col_dir * row_spacing  # array axis 1 = row index, moves down the column
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    return series, affine, meta


def _check_gaps(folder: Path, along: np.ndarray) -> dict:
    """Validate sorted slice positions along the normal (mm); returns meta flags."""
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        raise InputError(
            f"{int(np.sum(gaps < 1e-3)) + 1} slices share a position (several acquisitions "
            "or echoes in one folder?)",
            path=folder,
            fix="put each series/acquisition in its own folder",
        )
    mean_gap = float((along[-1] - along[0]) / (len(along) - 1))
    deviation = float(np.abs(gaps - mean_gap).max())
    if deviation <= max(1e-3, 1e-3 * mean_gap):
        return {}
    if deviation > MAX_SPACING_DEVIATION * mean_gap:
        raise InputError(
            f"inconsistent slice spacing: gaps from {gaps.min():.4g} to {gaps.max():.4g} mm "
            "(a missing slice or variable spacing)",
            path=folder,
            fix="export the complete series with constant spacing, or convert it with "
            "dcm2niix (which resamples variable spacing) and pass the NIfTI",
        )
    log.warning(
        "%s: slice gaps vary by up to %.3g mm around %.4g mm; using the mean",
        folder,
        deviation,
        mean_gap,
    )
    return {"slice_spacing_deviation_mm": deviation}


def _check_tilt(folder: Path, step: np.ndarray, normal: np.ndarray) -> dict:
    """Gantry tilt: angle (deg) between the slice-to-slice step and the normal; meta flags."""
    tilt = float(np.degrees(np.arccos(min(1.0, abs(step @ normal) / np.linalg.norm(step)))))
    if tilt <= 0.01:
        return {}
    if tilt > MAX_GANTRY_TILT_DEG:
        raise InputError(
            f"gantry tilt of {tilt:.2f} degrees (slice origins do not move along the slice normal)",
            path=folder,
            fix="correct the tilt when converting (e.g. `dcm2niix` does) and pass the NIfTI",
        )
    log.warning("%s: gantry tilt of %.3f degrees; using the sheared affine", folder, tilt)
    return {"gantry_tilt_deg": tilt}


def _pixels(file: Path, folder: Path) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(str(file))
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(
            "multi-frame (enhanced) DICOM is not supported",
            path=file,
            fix="convert the series with dcm2niix and pass the NIfTI",
        )
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError/NotImplementedError/ValueError
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        compressed = bool(getattr(syntax, "is_compressed", False))
        raise InputError(
            f"cannot decode the pixel data (transfer syntax {getattr(syntax, 'name', syntax)}: "
            f"{exc})",
            path=file,
            fix="install the pydicom decoders (`pip install pylibjpeg pylibjpeg-openjpeg "
            "pylibjpeg-libjpeg`, or python-gdcm)"
            if compressed
            else "the slice's pixel data is truncated or corrupt: export the series again",
        ) from None
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _check_series_size(series, folder: Path) -> None:
    """Refuse a series whose headers declare more voxels than the image cap (before decoding)."""
    from spinefx.io.nifti import max_image_gb

    ds0 = series[0][1]
    declared = len(series) * int(ds0.Rows) * int(ds0.Columns) * 4  # decoded as float32 at most
    cap_gb = max_image_gb()
    if declared > cap_gb * 1024**3:
        raise InputError(
            f"the series declares {len(series)} slices of {ds0.Rows}x{ds0.Columns} "
            f"({declared / 1024**3:.1f} GB decoded), more than the {cap_gb:g} GB limit",
            path=folder,
            fix="check the series, or raise the limit (SPINEFX_MAX_IMAGE_GB; the app: "
            "--max-image-gb)",
        )


def load_dicom_series(folder: str | Path) -> Image:
    """Read the DICOM series in ``folder`` into one 3-D image.

    Args:
        folder: folder with the slices (searched recursively; non-DICOM files are ignored).

    Returns:
        Image of shape ``(columns, rows, slices)``: axis 0 follows the DICOM row direction,
        axis 1 the column direction, axis 2 the slice normal (slices sorted by position).
        Intensities are HU (rescale applied; int16 when slope is 1 and intercepts are
        integers). Affine voxel -> RAS+ mm. ``meta`` holds the source, the number of slices
        and any geometry warnings (see module docstring).

    Raises:
        InputError: no DICOM slices, one slice only, duplicate positions, inconsistent
            spacing, gantry tilt above 1 degree, undecodable pixel data.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("DICOM folder not found", path=folder, fix="check the path")
    headers = _read_headers(folder)
    if not headers:
        raise InputError(
            "no DICOM image slices found",
            path=folder,
            fix="pass the folder that holds the .dcm slices of one CT series",
        )
    series = _choose_series(folder, headers)
    if len(series) < 2:
        raise InputError(
            "the DICOM series has a single slice (a 2-D image); a 3-D CT volume is expected",
            path=folder,
            fix="pass the folder with all slices of the series",
        )
    series, affine_lps, meta = _geometry(folder, series)
    _check_series_size(series, folder)
    data = np.stack([_pixels(f, folder).T for f, _ in series], axis=-1)
    rescales = {
        (float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0))
        for _, ds in series
    }
    integral = all(s == 1 and b == int(b) for s, b in rescales)
    if integral and data.min() >= -32768 and data.max() <= 32767:
        data = data.astype(np.int16)
    ds0 = series[0][1]
    meta.update(
        source=str(folder),
        dicom_series=str(ds0.get("SeriesInstanceUID", "")),
        dicom_slices=len(series),
        dicom_files_ignored=len(headers) - len(series),
        modality=str(ds0.get("Modality", "")),
    )
    return Image(data, LPS_TO_RAS @ affine_lps, meta)
