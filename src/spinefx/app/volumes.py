"""The volumes the app's scan viewer loads: the scan, its vertebra labels and probabilities.

All three are served as gzipped NIfTI on the scan's own grid and affine, so the browser's
viewer (NiiVue) overlays them voxel for voxel:

* ``ct``: the scan in HU as int16 (rounded, clipped to the int16 range);
* ``labels``: VerSe vertebra ids (uint8) from the uploaded vertebra mask, or, with centroids
  only, a sphere around each classified vertebra's centroid;
* ``probability``: each labelled vertebra's region painted with its fracture probability
  (the analysis scores vertebrae, not voxels), uint8 with ``scl_slope`` = 1/250 so that a
  NIfTI reader sees probabilities in [0, 1]; 0 outside the vertebrae and for vertebrae that
  could not be assessed, at least one step (0.004) inside an assessed one.

Each volume is encoded once per analysis and its bytes kept (:class:`ScanVolumes`); the
encoder writes slab by slab, so no second full-size copy of the scan is made.
"""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Iterable, Mapping

import nibabel as nib
import numpy as np

from spinefx.conventions import NON_VERTEBRA_LABELS, level_name
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.preprocessing import resample_like
from spinefx.records import VertebraResult
from spinefx.reporting import ScanAnalysis

VOLUME_NAMES = ("ct", "labels", "probability")
PROBABILITY_STEPS = 250  # uint8 code per unit probability (scl_slope = 1 / 250)
SPHERE_RADIUS_MM = (3.0, 15.0)  # bounds of a centroid sphere's radius
SPHERE_SPACING_FRACTION = 0.4  # radius = this x distance to the nearest other centroid
SLAB_BYTES = 16_000_000  # encoder chunk: at most this much converted data at a time
GZIP_LEVEL = 1  # fast: the volumes cross a local connection once


def nifti_gz(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: np.dtype | type,
    slope: float = 1.0,
    intent: str | None = None,
    compresslevel: int = GZIP_LEVEL,
) -> bytes:
    """A gzipped single-file NIfTI-1 of ``data`` (``(X, Y, Z)``) with ``affine`` as s/qform.

    Values are rounded (for integer ``dtype``) and clipped to the range of ``dtype`` slab by
    slab along the last axis, so at most :data:`SLAB_BYTES` of converted data exist at once.

    Args:
        data: array in voxel order.
        affine: ``(4, 4)`` voxel -> RAS+ mm (NIfTI's world space), written as sform and qform
            (code 1, scanner).
        dtype: on-disk data type.
        slope: ``scl_slope`` (stored value x slope = the value a reader sees).
        intent: NIfTI intent (``"label"`` for a label map: viewers draw it as regions).
        compresslevel: gzip level.
    """
    dtype = np.dtype(dtype)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(dtype)
    header.set_sform(affine, code=1)
    header.set_qform(affine, code=1)
    header.set_xyzt_units("mm")
    header.set_slope_inter(slope, 0.0)
    if intent is not None:
        header.set_intent(intent)
    header.set_data_offset(352)  # 348-byte header + 4-byte (empty) extension flag
    buffer = io.BytesIO()
    per_slice = max(1, int(np.prod(data.shape[:2])) * dtype.itemsize)
    step = max(1, SLAB_BYTES // per_slice)
    limits = np.iinfo(dtype) if dtype.kind in "iu" else None
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=compresslevel, mtime=0) as gz:
        gz.write(header.binaryblock)
        gz.write(b"\x00" * 4)
        for start in range(0, data.shape[2], step):
            slab = np.asarray(data[:, :, start : start + step])
            if limits is not None and slab.dtype != dtype:
                slab = np.clip(np.rint(slab), limits.min, limits.max)
            gz.write(slab.astype(dtype, copy=False).tobytes(order="F"))
    return buffer.getvalue()


def centroid_spheres(
    shape: tuple[int, int, int], affine: np.ndarray, centroids: Mapping[int, np.ndarray]
) -> tuple[np.ndarray, float]:
    """A uint8 label map with a sphere of each vertebra's label around its centroid.

    The radius is :data:`SPHERE_SPACING_FRACTION` of the smallest distance between two
    centroids (so spheres never touch), within :data:`SPHERE_RADIUS_MM`.

    Args:
        shape: the scan's grid.
        affine: voxel -> RAS+ mm of that grid.
        centroids: VerSe label -> centroid, world RAS+ mm.

    Returns:
        ``(labels, radius_mm)``; ``labels`` has ``shape``.
    """
    labels = np.zeros(shape, dtype=np.uint8)
    points = {int(k): np.asarray(v, dtype=float) for k, v in centroids.items()}
    radius = _sphere_radius_mm(list(points.values()))
    inverse = np.linalg.inv(affine)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    reach = np.ceil(radius / spacing).astype(int) + 1  # voxels per axis, any orientation
    for label, centre in points.items():
        centre_vox = np.rint(inverse[:3, :3] @ centre + inverse[:3, 3]).astype(int)
        lo = np.maximum(centre_vox - reach, 0)
        hi = np.minimum(centre_vox + reach + 1, shape)
        if np.any(hi <= lo):
            continue  # centroid outside the grid
        ijk = np.moveaxis(np.indices(tuple(hi - lo)), 0, -1) + lo
        xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
        inside = np.linalg.norm(xyz - centre, axis=-1) <= radius
        box = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        box[inside] = label
    return labels, radius


def _sphere_radius_mm(points: list[np.ndarray]) -> float:
    low, high = SPHERE_RADIUS_MM
    if len(points) < 2:
        return high
    p = np.stack(points)
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    d[np.diag_indices_from(d)] = np.inf
    return float(np.clip(SPHERE_SPACING_FRACTION * d.min(), low, high))


def probability_codes(predictions: Iterable[VertebraResult]) -> np.ndarray:
    """``(256,)`` uint8 lookup: VerSe label -> probability code (0 = not shown)."""
    lut = np.zeros(256, dtype=np.uint8)
    for p in predictions:
        if p.assessable and np.isfinite(p.probability) and 0 < p.vertebra_label < 256:
            code = int(round(float(p.probability) * PROBABILITY_STEPS))
            lut[p.vertebra_label] = min(max(code, 1), PROBABILITY_STEPS)
    return lut


def mask_labels_on_scan(mask: Image, scan: Image) -> np.ndarray:
    """A vertebra mask (VerSe ids) as uint8 on the scan's grid (nearest-neighbour if needed).

    Raises:
        InputError: a label id above 255 (not a VerSe vertebra id).
    """
    if mask.shape != scan.shape or not np.allclose(mask.affine, scan.affine, atol=1e-3):
        mask = resample_like(mask, scan, interpolation="nearest")
    data = np.asarray(mask.data)
    if data.size and (data.max() > 255 or data.min() < 0):
        raise InputError(
            f"the vertebra mask holds label ids outside 0-255 ({data.min()}-{data.max()})",
            fix="pass a VerSe or TotalSegmentator vertebra mask",
        )
    return data.astype(np.uint8, copy=False)


class ScanVolumes:
    """The viewer's volumes of one analysis, each encoded on first request and then kept.

    Args:
        analysis: the scan and its per-vertebra results.
        mask_labels: the uploaded vertebra mask on the scan grid (uint8 VerSe ids), or None
            for spheres at the centroids. It is dropped once both overlays are encoded.
    """

    def __init__(self, analysis: ScanAnalysis, *, mask_labels: np.ndarray | None = None):
        self._analysis = analysis
        self._labels = mask_labels
        self._encoded: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one encoder per scan: no duplicate work or copies
        self.radius_mm: float | None = None
        if mask_labels is None:
            self.label_source = "spheres at the centroids"
            present = [p.vertebra_label for p in analysis.predictions]
            self.radius_mm = _sphere_radius_mm(
                [np.asarray(p.centroid_mm, dtype=float) for p in analysis.predictions]
            )
        else:
            if mask_labels.shape != analysis.scan.shape:
                raise ValueError("the mask labels must lie on the scan grid")
            self.label_source = "vertebra mask"
            counts = np.bincount(mask_labels.reshape(-1), minlength=256)
            present = [int(k) for k in np.flatnonzero(counts) if k > 0]
        self.present_labels = tuple(sorted(present))

    def nifti_gz(self, name: str) -> bytes:
        """The gzipped NIfTI bytes of volume ``name`` (one of :data:`VOLUME_NAMES`).

        Raises:
            KeyError: an unknown name.
        """
        if name not in VOLUME_NAMES:
            raise KeyError(name)
        with self._lock:
            if name not in self._encoded:
                if name == "ct":
                    self._encoded["ct"] = self._encode_scan()
                else:
                    self._encode_overlays()
            return self._encoded[name]

    def _encode_scan(self) -> bytes:
        scan = self._analysis.scan
        return nifti_gz(scan.data, scan.affine, dtype=np.int16)

    def _encode_overlays(self) -> None:
        scan = self._analysis.scan
        labels = self._labels
        if labels is None:
            centroids = {
                p.vertebra_label: np.asarray(p.centroid_mm, dtype=float)
                for p in self._analysis.predictions
            }
            labels, self.radius_mm = centroid_spheres(scan.shape, scan.affine, centroids)
        self._encoded["labels"] = nifti_gz(labels, scan.affine, dtype=np.uint8, intent="label")
        codes = probability_codes(self._analysis.predictions)[labels]
        self._encoded["probability"] = nifti_gz(
            codes, scan.affine, dtype=np.uint8, slope=1.0 / PROBABILITY_STEPS
        )
        self._labels = None  # both overlays are kept encoded: the array is not needed again

    def describe(self, base_url: str) -> dict:
        """What the page needs to load and label the volumes (JSON-ready)."""
        return {
            "volumes": {name: f"{base_url}/{name}.nii.gz" for name in VOLUME_NAMES},
            "label_source": self.label_source,
            "sphere_radius_mm": None if self.radius_mm is None else round(self.radius_mm, 1),
            "levels": {str(k): _level(k) for k in self.present_labels},
            "world_to_voxel": np.round(np.linalg.inv(self._analysis.scan.affine), 8).tolist(),
        }


def _level(label: int) -> str:
    try:
        return level_name(label)
    except InputError:  # sacrum, coccyx, or an id outside the VerSe table
        return NON_VERTEBRA_LABELS.get(label, f"label {label}")


__all__ = [
    "VOLUME_NAMES",
    "ScanVolumes",
    "centroid_spheres",
    "mask_labels_on_scan",
    "nifti_gz",
    "probability_codes",
]
