"""A readable summary of one scan and the vertebrae annotated on it (``spinefx inspect``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinefx.conventions import NON_VERTEBRA_LABELS, VERTEBRA_LEVELS
from spinefx.io.centroids import centroids_from_mask, load_centroids
from spinefx.io.scan import load_scan

HU_PERCENTILES: tuple[float, ...] = (1.0, 5.0, 50.0, 95.0, 99.0)


@dataclass(frozen=True)
class VertebraFound:
    """One annotated vertebra placed on the scan.

    Attributes:
        vertebra_label: VerSe id; level: its name; world_mm: centroid (3,) in RAS+ mm;
        voxel_index: nearest voxel (i, j, k) of the scan; inside: whether it lies in the scan.
    """

    vertebra_label: int
    level: str
    world_mm: tuple[float, float, float]
    voxel_index: tuple[int, int, int]
    inside: bool


@dataclass(frozen=True)
class ScanDescription:
    """Geometry and intensities of a scan, plus the vertebrae found from its annotations."""

    source: str
    format: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    affine: tuple[tuple[float, ...], ...]
    dtype: str
    hu_min: float
    hu_max: float
    hu_percentiles: dict[float, float]
    vertebrae: tuple[VertebraFound, ...]
    vertebrae_source: str
    notes: tuple[str, ...]


def describe_scan(
    scan_path: str | Path,
    *,
    centroids_path: str | Path | None = None,
    mask_path: str | Path | None = None,
) -> ScanDescription:
    """Load a scan (NIfTI or DICOM folder) and describe it.

    Args:
        scan_path: the CT.
        centroids_path: optional VerSe centroid JSON (indices on this scan's grid).
        mask_path: optional vertebra mask; used for the vertebrae when no JSON is given.

    Returns:
        The description; vertebrae outside the scan are listed with ``inside=False``.
    """
    scan = load_scan(scan_path)
    data = np.asarray(scan.data)
    percentiles = np.percentile(data, HU_PERCENTILES)
    centroids, source = {}, ""
    if centroids_path is not None:
        centroids, source = (
            load_centroids(centroids_path, scan, outside="keep"),
            str(centroids_path),
        )
    elif mask_path is not None:
        from spinefx.io.vertebra_masks import load_vertebra_mask

        read = load_vertebra_mask(mask_path)
        centroids, source = (
            centroids_from_mask(read.image),
            f"{mask_path} (centre of mass; {read.numbering} numbering)",
        )
    found = _place(scan, centroids)
    notes = tuple(
        f"{key}: {scan.meta[key]}"
        for key in ("gantry_tilt_deg", "slice_spacing_deviation_mm", "dicom_files_ignored")
        if scan.meta.get(key)
    )
    return ScanDescription(
        source=str(scan_path),
        format=scan.meta.get("format", ""),
        shape=scan.shape,
        spacing_mm=tuple(round(float(s), 4) for s in scan.spacing_mm),
        orientation=scan.orientation,
        affine=tuple(tuple(round(float(v), 4) for v in row) for row in scan.affine),
        dtype=str(data.dtype),
        hu_min=float(data.min()),
        hu_max=float(data.max()),
        hu_percentiles={p: float(v) for p, v in zip(HU_PERCENTILES, percentiles, strict=True)},
        vertebrae=found,
        vertebrae_source=source,
        notes=notes,
    )


def _place(scan, centroids: dict[int, np.ndarray]) -> tuple[VertebraFound, ...]:
    """Each centroid (RAS+ mm) with its level, nearest voxel of ``scan`` and whether inside."""
    found = []
    for label, world in sorted(centroids.items()):
        ijk = np.rint(scan.world_to_voxel(world)).astype(int)
        found.append(
            VertebraFound(
                vertebra_label=label,
                level=VERTEBRA_LEVELS.get(label) or NON_VERTEBRA_LABELS[label],
                world_mm=tuple(round(float(v), 2) for v in world),
                voxel_index=tuple(int(v) for v in ijk),
                inside=bool(scan.contains_world(world)),
            )
        )
    return tuple(found)


def format_description(description: ScanDescription) -> str:
    """The description as a readable text table (what ``spinefx inspect`` prints)."""
    d = description
    lines = [
        f"scan         {d.source} ({d.format})",
        f"shape        {' x '.join(map(str, d.shape))} voxels, {d.dtype}",
        f"spacing      {' x '.join(f'{s:g}' for s in d.spacing_mm)} mm",
        f"orientation  {d.orientation} (array axes; world RAS+ mm)",
        f"origin       {', '.join(f'{row[3]:.2f}' for row in d.affine[:3])} mm (voxel 0,0,0)",
        f"HU range     {d.hu_min:g} .. {d.hu_max:g}",
        "HU pct       " + "  ".join(f"p{p:g}={v:.0f}" for p, v in d.hu_percentiles.items()),
    ]
    lines += [f"note         {n}" for n in d.notes]
    if not d.vertebrae_source:
        lines.append("vertebrae    (no --centroids or --mask given)")
        return "\n".join(lines)
    lines.append(f"vertebrae    {len(d.vertebrae)} from {d.vertebrae_source}")
    lines.append(
        f"  {'label':>5}  {'level':<7}{'world x, y, z (mm)':>28}  {'voxel i, j, k':>16}  in scan"
    )
    for v in d.vertebrae:
        world = ", ".join(f"{c:8.1f}" for c in v.world_mm)
        voxel = ", ".join(f"{c:4d}" for c in v.voxel_index)
        lines.append(
            f"  {v.vertebra_label:>5}  {v.level:<7}{world:>28}  {voxel:>16}  "
            f"{'yes' if v.inside else 'NO (outside)'}"
        )
    return "\n".join(lines)
