"""NIfTI read/write (nibabel): the file's own voxel order, its best affine as RAS+ mm.

Reading wraps every nibabel/gzip failure (truncated download, corrupt header) into an
:class:`~spinefx.errors.InputError` that names the file and the fix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from spinefx.atomic import atomic_path
from spinefx.errors import InputError
from spinefx.image import Image

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: what is read: single files and NIfTI-1 pairs (a ``.hdr`` header beside its ``.img`` voxels)
NIFTI_READ_SUFFIXES = (*NIFTI_SUFFIXES, ".hdr", ".img", ".hdr.gz", ".img.gz")
_CIFTI_INTENTS = range(3000, 3100)  # NIfTI-2 intent codes of CIFTI-2 matrices
#: How far (mm) qform and sform may disagree before a warning is logged.
_QFORM_SFORM_TOLERANCE_MM = 1e-2


def is_nifti_path(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii``/``.nii.gz``) or half of a NIfTI pair."""
    return str(path).lower().endswith(NIFTI_READ_SUFFIXES)


def _open(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except FileNotFoundError as exc:
        missing = Path(exc.filename or path).name
        raise InputError(
            f"file not found ({missing})",
            path=path,
            fix="check the path; a .hdr header needs its .img beside it (same name)",
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel parses untrusted bytes with many error types
        # (HeaderDataError, ImageFileError, struct.error, OSError, zlib.error, ValueError...)
        raise _corrupt(path, exc) from None
    _check_kind(img, path)
    return img


def _check_kind(img, path: Path) -> None:
    """Refuse the nibabel image types that load but are not an oriented volume."""
    import nibabel as nib

    if isinstance(img, nib.Cifti2Image):
        intent = _CIFTI_INTENTS[0]
    else:
        header = img.header
        intent = int(header["intent_code"]) if "intent_code" in header else 0
    if intent in _CIFTI_INTENTS:
        raise InputError(
            "this is a CIFTI-2 file (a matrix over brain surface and grayordinates), not an "
            "image volume",
            path=path,
            fix="pass a CT volume as NIfTI (.nii/.nii.gz) or a DICOM folder",
        )
    shape = tuple(int(n) for n in img.shape)
    if not shape or min(shape) < 1:
        raise InputError(
            f"the header declares the shape {shape}, which holds no voxels",
            path=path,
            fix="the header is corrupt: export the file again",
        )
    if not isinstance(img, nib.Nifti1Image | nib.Nifti1Pair | nib.Nifti2Image | nib.Nifti2Pair):
        raise InputError(
            f"this is an {type(img).__name__.removesuffix('Image')} file, which stores no "
            "patient orientation",
            path=path,
            fix="convert it to NIfTI with its orientation (e.g. from the DICOM with dcm2niix)",
        )


def _corrupt(path: Path, exc: Exception) -> InputError:
    return InputError(
        f"cannot read the NIfTI file, it is truncated or corrupt ({type(exc).__name__}: {exc})",
        path=path,
        fix="download or export the file again (a complete .nii.gz passes `gzip -t`)",
    )


def _header_form(header, which: str, path: Path) -> np.ndarray:
    """The header's sform or qform as float64; an undecodable one is an InputError."""
    try:
        form = header.get_sform() if which == "sform" else header.get_qform()
        return np.asarray(form, dtype=np.float64)
    except (ValueError, ArithmeticError) as exc:  # e.g. quaternion b, c, d with norm > 1
        raise InputError(
            f"the header's {which} cannot be decoded ({exc})",
            path=path,
            fix="write the file with a valid orientation (e.g. re-export it with dcm2niix)",
        ) from None


def best_affine(img, path: Path) -> np.ndarray:
    """The voxel->RAS+ mm affine of a nibabel NIfTI image.

    The sform is used when its code is set (it is what nibabel, ITK and the VerSe tools use),
    else the qform. A file with neither code has no known geometry and is rejected rather than
    given a guessed affine. Disagreeing qform/sform are logged.
    """
    header = img.header
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    if sform_code == 0 and qform_code == 0:
        raise InputError(
            "the NIfTI header has neither an sform nor a qform (no patient orientation)",
            path=path,
            fix="write the file with its orientation (e.g. re-export with dcm2niix, or set it "
            "with `fslorient -copyqform2sform` / nibabel `set_sform(affine, code=1)`)",
        )
    sform = _header_form(header, "sform", path) if sform_code else None
    qform = _header_form(header, "qform", path) if qform_code else None
    if sform is not None and qform is not None:
        corners = np.array([[0, 0, 0], np.asarray(img.shape[:3]) - 1], dtype=float)
        diff = np.abs(corners @ (sform - qform)[:3, :3].T + (sform - qform)[:3, 3]).max()
        if diff > _QFORM_SFORM_TOLERANCE_MM:
            log.warning("%s: qform and sform differ by %.3g mm; using the sform", path, diff)
    affine = sform if sform is not None else qform
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        which = "sform" if sform_code else "qform"
        raise InputError(
            f"the header's {which} is singular or not finite (a zero voxel size or collinear "
            "axes), so the voxels have no position",
            path=path,
            fix="write the file with a valid orientation and voxel size (e.g. re-export it "
            "with dcm2niix)",
        )
    return affine


#: largest voxel array a file may declare (bytes on disk; ``$SPINEFX_MAX_IMAGE_GB`` overrides)
DEFAULT_MAX_IMAGE_GB = 4.0
#: deflate cannot compress better than ~1032:1, so a .nii.gz holds at most this many bytes per byte
_MAX_GZIP_RATIO = 1100


_IMAGE_LIMIT_GB: ContextVar[float | None] = ContextVar("spinefx_max_image_gb", default=None)


def max_image_gb() -> float:
    """The voxel-array cap in force: :func:`image_size_limit`, else the environment, else 4 GB."""
    limit = _IMAGE_LIMIT_GB.get()
    if limit is not None:
        return limit
    return float(os.environ.get("SPINEFX_MAX_IMAGE_GB", DEFAULT_MAX_IMAGE_GB))


@contextmanager
def image_size_limit(gb: float) -> Iterator[None]:
    """Within the block (this thread or task only), refuse images declaring more than ``gb`` GB.

    The app uses it so that an upload cannot load more than its own, lower, cap while the CLI
    keeps the default.
    """
    if not float(gb) > 0:
        raise ValueError(f"image size limit must be positive, got {gb}")
    token = _IMAGE_LIMIT_GB.set(float(gb))
    try:
        yield
    finally:
        _IMAGE_LIMIT_GB.reset(token)


def check_declared_size(img, path: Path) -> None:
    """Refuse a header whose declared voxel array is too large or cannot fit in the file.

    Checked before any voxel is read, so a 100-byte file whose header claims 1200³ voxels costs
    nothing (nibabel would allocate the whole array first).

    Raises:
        InputError: larger than the cap, or more data than the file can hold.
    """
    shape = tuple(int(s) for s in img.shape)
    itemsize = int(np.dtype(img.header.get_data_dtype()).itemsize)
    declared = int(np.prod(shape, dtype=np.float64) * itemsize)
    cap_gb = max_image_gb()
    if declared > cap_gb * 1024**3:
        raise InputError(
            f"the header declares a {shape} volume ({declared / 1024**3:.1f} GB), more than the "
            f"{cap_gb:g} GB limit",
            path=path,
            fix="check the file (a corrupt or hostile header), or raise the limit "
            "(SPINEFX_MAX_IMAGE_GB; the app: --max-image-gb)",
        )
    data_file = Path(img.file_map["image"].filename or path)  # the .img of a NIfTI pair
    if not data_file.is_file():
        raise InputError(
            f"the header's voxel file {data_file.name} is missing",
            path=path,
            fix="keep the .img beside its .hdr (same name), or convert the pair to .nii.gz",
        )
    size = data_file.stat().st_size
    compressed = data_file.name.lower().endswith(".gz")
    if compressed and declared > size * _MAX_GZIP_RATIO:
        raise InputError(
            f"the header declares {declared / 1024**2:.0f} MB of voxels, more than a "
            f"{size}-byte .nii.gz can hold",
            path=path,
            fix="the file is truncated or its header is wrong: export it again",
        )
    offset = int(img.header["vox_offset"]) if "vox_offset" in img.header else 0
    if data_file.suffix.lower() == ".img":
        offset = 0  # a pair's voxels start at the beginning of the .img
    if not compressed and data_file.suffix.lower() in (".nii", ".img") and size < offset + declared:
        raise InputError(
            f"the file is {size} bytes but its header declares {offset + declared}",
            path=path,
            fix="the file is truncated: export or download it again",
        )


def _volume_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """The 3-D shape of a header's ``shape`` (trailing 1s dropped), or a clear error."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise InputError(
            f"image is {len(shape)}-D with shape {shape}; a 3-D CT volume is expected",
            path=path,
            fix="pass a single 3-D volume (split a 4-D series, e.g. `fslsplit`, and pick one)",
        )
    if len(shape) < 3 or min(shape) < 2:
        raise InputError(
            f"image is 2-D (shape {shape}); a 3-D CT volume is expected",
            path=path,
            fix="pass the whole series as one 3-D volume (all slices), not a single slice",
        )
    return shape


def read_nifti(path: str | Path) -> Image:
    """Read a NIfTI file as an :class:`Image` without interpreting its intensities.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        Image with ``data`` of shape ``(X, Y, Z)`` in the file's voxel order (scl_slope /
        scl_inter applied by nibabel; float data as float32) and the file's best affine
        (voxel -> RAS+ mm). ``meta["source"]`` holds the path.

    Raises:
        InputError: missing, truncated or corrupt file; not 3-D; no orientation.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the path")
    img = _open(path)
    shape = _volume_shape(img.shape, path)  # before geometry: a 2-D file is named as 2-D
    check_declared_size(img, path)
    affine = best_affine(img, path)
    try:
        data = np.asanyarray(img.dataobj)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoding untrusted bytes: OSError, zlib.error,
        # OverflowError (a huge vox_offset), ValueError, EOFError ...
        raise _corrupt(path, exc) from None
    if data.dtype.kind == "f" and data.dtype != np.float32:
        data = data.astype(np.float32)
    return Image(np.asarray(data).reshape(shape), affine, {"source": str(path)})


def read_nifti_geometry(path: str | Path) -> Image:
    """The grid of a NIfTI file (shape + affine) without reading its voxels.

    ``data`` is a read-only broadcast array of zeros (no memory); use it only for geometry
    (``affine``, ``shape``, ``world_to_voxel``), e.g. as the reference of a centroid file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the path")
    img = _open(path)
    shape = _volume_shape(img.shape, path)
    data = np.broadcast_to(np.zeros((), dtype=np.uint8), shape)
    return Image(data, best_affine(img, path), {"source": str(path), "geometry_only": True})


def _storage_dtype(data: np.ndarray) -> np.dtype:
    if data.dtype == bool:
        return np.dtype(np.uint8)
    if data.dtype.kind in "iu":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        for candidate in (np.uint8, np.int16, np.int32):
            info = np.iinfo(candidate)
            if info.min <= lo and hi <= info.max:
                return np.dtype(candidate)
        return np.dtype(np.int64)
    if data.dtype == np.float64:
        return np.dtype(np.float32)
    return data.dtype


def save_image(image: Image, path: str | Path, *, dtype: np.dtype | type | None = None) -> Path:
    """Write ``image`` to a NIfTI file atomically (no half-written file on failure).

    Integer label maps are stored with the smallest integer dtype that holds them (uint8,
    int16 or int32), booleans as uint8, float64 as float32. Both qform and sform are set to
    the image affine (code 1, scanner), so every reader sees the same geometry.

    Args:
        image: any orientation; written in its own voxel order.
        path: ``.nii`` or ``.nii.gz`` destination.
        dtype: store with exactly this dtype instead of the smallest one that fits (the
            caller guarantees the values fit, e.g. int16 HU patches).

    Returns:
        The path written.
    """
    path = _nifti_destination(path)
    data = np.asarray(image.data)
    data = data.astype(_storage_dtype(data) if dtype is None else dtype, copy=False)
    return _write(data, image.affine, path)


#: Probability maps are stored as uint8 times this slope (NIfTI ``scl_slope``).
PROBABILITY_STEP = 1.0 / 255.0


def save_probability_map(image: Image, path: str | Path) -> Path:
    """Write a probability map (values in [0, 1]) as uint8 with ``scl_slope`` 1/255.

    Every NIfTI reader (nibabel, ITK, 3D Slicer) applies the slope, so the file reads back
    as probabilities to within half a step (0.002). The same fixed step in every map keeps
    the classes' maps summing to one (to 0.006); float32 would be 4x the bytes and, for a
    400x400x500 field of view, about 4 s per map to compress on 2 cores instead of 0.4 s.
    spinefx's own decisions use the unquantised values, never the file.
    """
    path = _nifti_destination(path)
    data = np.asarray(image.data, dtype=np.float32)
    levels = np.rint(np.clip(data, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return _write(levels, image.affine, path, slope=PROBABILITY_STEP)


def _nifti_destination(path: str | Path) -> Path:
    path = Path(path)
    if not is_nifti_path(path):
        raise InputError(
            "unsupported output file name", path=path, fix="use a .nii or .nii.gz file name"
        )
    return path


def _write(data: np.ndarray, affine: np.ndarray, path: Path, *, slope: float | None = None):
    """Write ``data`` atomically with qform = sform = ``affine`` (scanner) and mm units."""
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    if slope is not None:  # nibabel keeps a header's scaling for data already of its dtype
        img.header.set_slope_inter(slope, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
