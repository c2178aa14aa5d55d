"""Turning uploaded bytes into a scan and centroids, safely.

Uploads are parsed as images only: a NIfTI file (``.nii``/``.nii.gz``) or a zip of one DICOM
series. Nothing is unpickled (``.npy``/``.pt``/``.pkl`` are refused). Zip members are checked
before extraction: no absolute paths or ``..`` components, no links, a bounded member count and
a bounded total uncompressed size counted while decompressing (so a zip bomb stops early).
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from spinefx.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_ZIP_MEMBERS = 5000
_CHUNK = 1 << 20


class UploadTooLarge(InputError):
    """An upload, or the zip inside it, is over the app's limit (answered 413)."""


@dataclass(frozen=True)
class SavedUpload:
    """An upload written to the server's scratch folder.

    Attributes:
        path: the NIfTI file, or the folder holding the extracted DICOM series.
        name: the user's file name (display only).
    """

    path: Path
    name: str


def safe_name(filename: str) -> str:
    """The last path component of an uploaded file name, restricted to safe characters."""
    base = PurePosixPath(str(filename).replace("\\", "/")).name
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base).lstrip(".")
    return cleaned or "upload"


def save_scan_upload(
    data: bytes | BinaryIO, filename: str, workdir: Path, *, max_bytes: int
) -> SavedUpload:
    """Write an uploaded scan where :func:`spinefx.io.load_scan` can read it.

    Args:
        data: the uploaded bytes, or a binary file object read in chunks (so an upload is
            never held in memory whole).
        filename: the name the browser sent (only its suffix and last component are used).
        workdir: an empty scratch folder owned by this request.
        max_bytes: limit on the upload and on the uncompressed size of a zip.

    Raises:
        InputError: unsupported type, unsafe or oversized upload or zip.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    name = safe_name(filename)
    lower = name.lower()
    if lower.endswith(NIFTI_SUFFIXES):
        path = workdir / name
        head = _copy_limited(stream, path, max_bytes, name)
        if lower.endswith(".gz") and not head.startswith(b"\x1f\x8b"):
            path.unlink()
            raise InputError("file ends in .gz but is not gzip-compressed", path=name)
        return SavedUpload(path, name)
    if lower.endswith(".zip"):
        zpath = workdir / "upload.zip"
        _copy_limited(stream, zpath, max_bytes, name)
        folder = workdir / "dicom"
        extract_zip_safely(zpath, folder, max_bytes=max_bytes)
        zpath.unlink()
        return SavedUpload(folder, name)
    raise InputError(
        f"unsupported upload type {Path(lower).suffix or '(no suffix)'}",
        path=name,
        fix="upload a NIfTI file (.nii or .nii.gz) or a .zip of one DICOM series "
        "(.npy and other pickle-based formats are not accepted)",
    )


def _copy_limited(stream: BinaryIO, target: Path, max_bytes: int, name: str) -> bytes:
    """Copy ``stream`` to ``target`` in chunks, refusing it past ``max_bytes``; return its head."""
    total = 0
    head = b""
    with open(target, "wb") as dst:
        while chunk := stream.read(_CHUNK):
            head = head or chunk[:16]
            total += len(chunk)
            if total > max_bytes:
                dst.close()
                target.unlink(missing_ok=True)
                raise UploadTooLarge(
                    f"upload too large: the limit is {max_bytes / 1e6:.0f} MB",
                    path=name,
                    fix="start the app with a larger --max-upload-mb",
                )
            dst.write(chunk)
    return head


def extract_zip_safely(zip_path: Path, out_dir: Path, *, max_bytes: int) -> int:
    """Extract regular files of a zip below ``out_dir``, refusing anything unsafe.

    Returns:
        the number of files extracted.

    Raises:
        InputError: not a zip, a member escapes ``out_dir`` or is a link, too many members,
            or more than ``max_bytes`` uncompressed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(
            "not a valid zip file", path=zip_path.name, fix="re-create the zip"
        ) from None
    total = 0
    count = 0
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise InputError(f"zip has {len(members)} members (limit {MAX_ZIP_MEMBERS})")
        for info in members:
            if info.is_dir():
                continue
            target = _member_target(info, root)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        dst.close()
                        shutil.rmtree(out_dir, ignore_errors=True)
                        raise UploadTooLarge(
                            f"zip expands to more than {max_bytes / 1e6:.0f} MB",
                            fix="upload a smaller series or raise --max-upload-mb",
                        )
                    dst.write(chunk)
            count += 1
    if count == 0:
        raise InputError("the zip holds no files", fix="zip the folder of DICOM slices")
    return count


def _member_target(info: zipfile.ZipInfo, root: Path) -> Path:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InputError(f"zip member {info.filename!r} is a link", fix="zip plain files only")
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    if not parts or info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise InputError(
            f"zip member {info.filename!r} points outside the archive folder",
            fix="zip the DICOM folder with relative paths",
        )
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"zip member {info.filename!r} points outside the archive folder")
    return target
