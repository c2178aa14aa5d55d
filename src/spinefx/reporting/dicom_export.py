"""Results a radiologist can open in PACS: DICOM SEG + Structured Report, or NIfTI + JSON.

:func:`export_results` is what ``spinefx detect --dicom-out`` and ``spinefx report --dicom-out``
call. It writes, for a scan read from a DICOM series folder:

* ``vertebrae_seg.dcm``: a DICOM Segmentation (BINARY), one segment per vertebra of the
  vertebra mask (label = level name, type = the SNOMED CT code of that vertebra), on the
  source series' own frames: same Frame of Reference, one frame per source slice that the
  vertebra touches, referencing that slice's SOP instance;
* ``findings_sr.dcm``: a Comprehensive 3D SR holding a TID 1500 Measurement Report with one
  measurement group per vertebra (finding site, fracture probability of each model,
  morphometric heights, height loss, Genant grade and shape, not-assessable reason),
  referencing the source series (and the SEG segment when there is one);
* ``fractures_seg.dcm``: a second DICOM SEG (its own series, "spinefx fractured vertebrae"),
  on the same frames by the same code: one segment per vertebra flagged as fractured by a
  model (its region in the vertebra mask; type SNOMED CT Fracture, anatomic region the
  vertebra, red) and, when a voxel-classifier fracture probability map is given, one segment
  of the voxels at or above the run's probability threshold (orange). Written only when there
  is a fracture to show;
* ``findings.json``: the same findings as JSON.

Why a second SEG rather than more segments in the first: a PACS viewer (OHIF, Slicer, most
vendor viewers) lists each SEG series as its own overlay, so a reader switches the fractures on
over the CT without the twenty vertebra colours; the fracture segments overlap the vertebra
segments they lie in, which one labelled vertebra SEG cannot hold; and the anatomy (from the
mask) and the finding (from the models, redone at another operating point) are made, checked
and replaced separately.

For a NIfTI scan it writes ``vertebrae_seg.nii.gz`` (VerSe ids on the scan's grid and affine),
``fractures_seg.nii.gz`` (VerSe ids of the flagged vertebrae), ``fracture_voxels_seg.nii.gz``
(1 where p(fracture) reaches the threshold) and ``findings.json``, and says that DICOM SEG/SR
need a DICOM source series. Without a vertebra mask no vertebra segmentation is written
(centroids are points, not a segmentation); the voxel map still gives a fracture SEG.

Geometry: the mask is put on the scan's grid (exactly when it already is on it, else nearest
neighbour in world space). Each source slice is then placed by its own ImagePositionPatient
through the scan's affine: ``k = affine^-1 @ RAS(IPP)`` must be ``(0, 0, integer)``; the SEG
frame of that slice is ``label_map[:, :, k].T`` (rows x columns, as
:func:`spinefx.io.dicom.load_dicom_series` maps DICOM rows/columns to array axes 1/0), and
highdicom copies the frame position from that same source slice. Both SEGs go through
:func:`segmentation_on_source_frames`, the one place that does this.

highdicom (and pydicom) are imported lazily: only this export needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinefx.atomic import atomic_path, write_text_atomic
from spinefx.conventions import spine_rank
from spinefx.errors import InputError, SpinefxError
from spinefx.image import Image
from spinefx.records import VertebraResult
from spinefx.reporting.vertebra_findings import VertebraFinding, findings_json, vertebra_findings

log = logging.getLogger(__name__)

SEG_FILE = "vertebrae_seg.dcm"
SR_FILE = "findings_sr.dcm"
NIFTI_SEG_FILE = "vertebrae_seg.nii.gz"
FRACTURE_SEG_FILE = "fractures_seg.dcm"
NIFTI_FRACTURE_SEG_FILE = "fractures_seg.nii.gz"
NIFTI_FRACTURE_VOXELS_FILE = "fracture_voxels_seg.nii.gz"
JSON_FILE = "findings.json"
MANUFACTURER = "spinefx"
#: largest distance (voxels) of a source slice from an integer slice of the scan's grid
MAX_SLICE_OFFSET_VOX = 0.25
NO_MASK_NOTE = (
    "no vertebra segmentation written: none without a vertebra mask (pass --mask; "
    "centroids locate vertebrae, they do not segment them)"
)
NO_FRACTURE_NOTE = (
    "no fracture segmentation written: no vertebra flagged as fractured and no voxel at the "
    "fracture threshold"
)
NO_OPERATING_POINT_NOTE = (
    "no fracture voxels segmented: the voxel run has no operating point (spinefx crossval "
    "--model voxel ... --apply-to RUN)"
)
NOT_DICOM_NOTE = (
    "DICOM SEG and SR need a DICOM source series (the scan is not a DICOM folder); wrote "
    "a NIfTI vertebra map and JSON findings instead"
)


@dataclass(frozen=True)
class ResultsExport:
    """What :func:`export_results` wrote.

    Attributes:
        paths: name (``seg``, ``fracture_seg``, ``sr``, ``json``, ``nifti_seg``,
            ``nifti_fracture_seg``, ``nifti_fracture_voxels``) -> file written.
        findings: the per-vertebra findings exported.
        notes: what was not written and why (for the CLI to print).
    """

    paths: dict[str, Path]
    findings: list[VertebraFinding]
    notes: tuple[str, ...] = field(default=())


def export_results(
    scan: Image,
    results: Iterable[VertebraResult],
    out_dir: str | Path,
    *,
    source: str | Path | None = None,
    mask_path: str | Path | None = None,
    mask_numbering: str = "auto",
    models: Mapping[str, dict] | None = None,
    fracture_map: Image | None = None,
    fracture_threshold: float | None = None,
    fracture_min_mm3: float = 0.0,
) -> ResultsExport:
    """Write the findings of one scan as DICOM SEGs + SR (DICOM input) or NIfTI + JSON.

    Args:
        scan: the CT as loaded (:func:`spinefx.io.load_scan`).
        results: per-vertebra results of every model that ran.
        out_dir: output folder (created; files written atomically).
        source: the scan's file or DICOM folder (default: ``scan.meta["source"]``).
        mask_path / mask_numbering: vertebra mask (VerSe or TotalSegmentator; see
            :func:`spinefx.io.vertebra_masks.load_vertebra_mask`) for the segmentation and
            the morphometry; None: findings only.
        models: method -> :func:`spinefx.runs.shipped.model_identity` of the model that ran.
        fracture_map: p(fracture) of the voxel classifier (``DetectionResult.probability_maps
            ["fractured"]``, any grid in the scan's world space), for the fracture SEG.
        fracture_threshold: the probability threshold ``t_p`` of the run's operating point
            (``DetectionResult.fracture_threshold``); None: no voxel segment (not flagged).
        fracture_min_mm3: fracture components smaller than this (the patient decision's
            noise threshold, ``DetectionResult.fracture_min_mm3``) are left out of the voxel
            segment, as are voxels near metal (the patient decision ignores both).

    Returns:
        :class:`ResultsExport`.

    Raises:
        InputError: unknown source, a mask that does not cover the scan, or a DICOM series
            without the UIDs a SEG/SR must reference.
    """
    source = source if source is not None else scan.meta.get("source")
    if not source:
        raise InputError(
            "the scan's source file is unknown",
            fix="pass source= (the NIfTI file or DICOM folder the scan was read from)",
        )
    source, out, models = Path(source), Path(out_dir), dict(models or {})
    notes: list[str] = []
    label_map, morphometry, numbering = None, [], ""
    if mask_path is None:
        notes.append(NO_MASK_NOTE)
    else:
        label_map, morphometry, numbering = _mask_on_scan(mask_path, mask_numbering, scan, notes)
    findings = vertebra_findings(results, morphometry)
    fractures = fracture_regions(
        findings,
        label_map,
        scan,
        fracture_map=fracture_map,
        threshold=fracture_threshold,
        min_mm3=fracture_min_mm3,
    )
    notes.extend(fractures.notes)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if source.is_dir():
        series = source_series(source, scan)
        seg = None
        if label_map is not None:
            seg = build_segmentation(label_map, series, mask_numbering=numbering)
            paths["seg"] = _save_dataset(seg, out / SEG_FILE)
        if fractures.segments:
            fracture_seg = build_fracture_segmentation(fractures, series)
            paths["fracture_seg"] = _save_dataset(fracture_seg, out / FRACTURE_SEG_FILE)
        sr = build_structured_report(findings, series, models=models, segmentation=seg)
        paths["sr"] = _save_dataset(sr, out / SR_FILE)
    else:
        notes.append(NOT_DICOM_NOTE)
        paths.update(_save_nifti_maps(scan, label_map, fractures, out))
    described = "vertebra mask" if label_map is not None else "none (no vertebra mask)"
    paths["json"] = out / JSON_FILE
    write_text_atomic(
        paths["json"],
        findings_json(
            findings,
            models=models,
            segmentation=described,
            fracture_segmentation=fractures.description,
        ),
    )
    for note in notes:
        log.warning("%s", note)
    return ResultsExport(paths, findings, tuple(notes))


def _mask_on_scan(mask_path, numbering: str, scan: Image, notes: list[str]):
    """(label map on the scan grid, morphometry, numbering) of the vertebra mask."""
    from spinefx.io.vertebra_masks import load_vertebra_mask
    from spinefx.morphometry import measure_vertebrae

    mask = load_vertebra_mask(mask_path, numbering=numbering)
    label_map = label_map_on_grid(mask.image, scan)
    lost = sorted(set(np.unique(mask.image.data).tolist()) - set(np.unique(label_map).tolist()))
    if not label_map.any():
        raise InputError(
            "the vertebra mask does not overlap the scan (its world box lies elsewhere)",
            path=mask_path,
            fix="pass the mask made from this scan (same patient position / frame of reference)",
        )
    if lost:
        notes.append(f"mask labels {lost} lie outside the scan's grid and are not segmented")
    try:
        morphometry = measure_vertebrae(mask.image)
    except (SpinefxError, ValueError, IndexError) as exc:
        notes.append(f"no morphometry from the mask: {exc}")
        morphometry = []
    return label_map, morphometry, mask.numbering


def label_map_on_grid(mask: Image, reference: Image) -> np.ndarray:
    """The labels of ``mask`` on the voxel grid of ``reference`` (shape ``reference.shape``).

    Exact (no resampling) when the mask is on the reference grid; otherwise nearest
    neighbour in world RAS+ mm, 0 outside the mask.
    """
    if mask.shape == reference.shape and np.allclose(mask.affine, reference.affine, atol=1e-4):
        return np.asarray(mask.data).astype(np.uint8)
    from spinefx.preprocessing.resample import resample_like

    log.info("vertebra mask resampled (nearest neighbour) onto the scan grid")
    resampled = resample_like(mask, reference, interpolation="nearest", fill_value=0)
    return np.asarray(resampled.data).astype(np.uint8)


@dataclass(frozen=True)
class SourceSeries:
    """The source DICOM slices of a scan, each with its slice index in the scan's array.

    Attributes:
        datasets: slice headers (no pixel data), sorted by slice index.
        slice_index: ``k`` of each dataset: voxel ``(i, j, k)`` of the scan is column ``i``,
            row ``j`` of ``datasets[n]`` where ``slice_index[n] == k``.
        folder: the series folder.
    """

    datasets: list
    slice_index: list[int]
    folder: Path

    def restricted(self, slices: Sequence[int]) -> SourceSeries:
        """The same series limited to the slices ``slices`` (scan slice indices)."""
        keep = set(int(k) for k in slices)
        pairs = [(d, k) for d, k in zip(self.datasets, self.slice_index, strict=True) if k in keep]
        return SourceSeries([d for d, _ in pairs], [k for _, k in pairs], self.folder)


#: patient / study attributes of type 2 that derived objects copy from the source headers
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
_REQUIRED_UIDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")


def source_series(folder: str | Path, scan: Image) -> SourceSeries:
    """The headers of the slices ``scan`` was read from, placed on its grid by position.

    Raises:
        InputError: slices that are not on the scan's grid, or blank UIDs (an anonymiser
            that removed them) that a SEG/SR must reference.
    """
    import pydicom

    folder = Path(folder)
    series_uid = str(scan.meta.get("dicom_series", ""))
    inverse = np.linalg.inv(scan.affine)
    placed: dict[int, object] = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=True)
        except Exception:  # not DICOM (the reader ignored it too)
            continue
        if "ImagePositionPatient" not in ds or str(ds.get("SeriesInstanceUID", "")) != series_uid:
            continue
        ras = np.asarray(ds.ImagePositionPatient, float) * (-1.0, -1.0, 1.0)
        ijk = inverse[:3, :3] @ ras + inverse[:3, 3]
        k = int(round(ijk[2]))
        offset = np.abs(ijk - (0.0, 0.0, k)).max()
        same_plane = (int(ds.Columns), int(ds.Rows)) == scan.shape[:2]
        if offset <= MAX_SLICE_OFFSET_VOX and 0 <= k < scan.shape[2] and same_plane:
            placed[k] = ds
    if sorted(placed) != list(range(scan.shape[2])):
        raise InputError(
            f"{len(placed)} of the folder's slices lie on the scan's {scan.shape[2]} slices",
            path=folder,
            fix="export to the series folder the scan was read from, unchanged",
        )
    datasets = [placed[k] for k in range(scan.shape[2])]
    blank = [uid for uid in _REQUIRED_UIDS if not all(str(d.get(uid, "")) for d in datasets)]
    if blank:
        raise InputError(
            f"the DICOM series has blank {', '.join(blank)} (anonymised with its UIDs "
            "removed); a DICOM SEG/SR must reference the source instances",
            path=folder,
            fix="export the series from PACS with its UIDs (or anonymise replacing UIDs "
            "consistently), or pass the scan as NIfTI for a NIfTI map and JSON findings",
        )
    for ds in datasets:  # type 2 (may be empty, must be present) in what the SEG/SR copy
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
        if "SliceThickness" not in ds:  # the SEG's pixel measures need one: the slice gap
            ds.SliceThickness = round(float(scan.spacing_mm[2]), 6)
    return SourceSeries(datasets, list(range(scan.shape[2])), folder)


def build_segmentation(label_map: np.ndarray, series: SourceSeries, *, mask_numbering: str = ""):
    """The DICOM SEG (BINARY) of a VerSe-id label map on the grid of ``series``' scan.

    Args:
        label_map: ``(columns, rows, slices)`` VerSe ids, the scan's voxel order.
        series: the source slices (:func:`source_series`).
        mask_numbering: how the mask's file was read, recorded as the algorithm version.

    Returns:
        ``highdicom.seg.Segmentation``: segment ``n`` = the n-th vertebra cranial to caudal.
    """
    from spinefx.reporting.dicom_codes import segment_description

    labels = sorted((int(v) for v in np.unique(label_map) if v), key=_rank)
    lut = np.zeros(256, np.uint8)
    for number, label in enumerate(labels, start=1):
        lut[label] = number
    algorithm = f"supplied vertebra mask ({mask_numbering or 'VerSe'} numbering)"
    return segmentation_on_source_frames(
        lambda k: lut[label_map[:, :, k]],
        series,
        [segment_description(n, label, algorithm=algorithm) for n, label in enumerate(labels, 1)],
        series_number=9001,
        series_description="spinefx vertebrae",
        content_label="VERTEBRAE",
        content_description="Labelled vertebrae (from the supplied vertebra mask)",
    )


@dataclass(frozen=True)
class FractureRegions:
    """What the fracture SEG shows, on the scan's grid.

    Attributes:
        label_map: ``(X, Y, Z)`` VerSe ids of the flagged vertebrae (0 elsewhere), or None.
        voxels: ``(X, Y, Z)`` bool, p(fracture) at or above ``threshold``, or None.
        segments: one ``(vertebra label or None for the voxels, segment label, algorithm)``
            per segment, in segment order.
        threshold: the probability threshold of the voxel segment.
        notes: what could not be segmented and why.
    """

    label_map: np.ndarray | None
    voxels: np.ndarray | None
    segments: tuple[tuple[int | None, str, str], ...]
    threshold: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """One line for ``findings.json``: what the fracture segmentation holds."""
        if not self.segments:
            return "none"
        return "; ".join(name for _, name, _ in self.segments)


def fracture_regions(
    findings: Sequence[VertebraFinding],
    label_map: np.ndarray | None,
    scan: Image,
    *,
    fracture_map: Image | None = None,
    threshold: float | None = None,
    min_mm3: float = 0.0,
) -> FractureRegions:
    """The flagged vertebrae's mask regions and the thresholded voxel map, on the scan's grid.

    A vertebra is shown when any model flagged it at its operating point and the vertebra
    mask holds it; the voxel segment when a fracture map and its threshold are given and a
    voxel reaches it, without the voxels near metal and the components smaller than
    ``min_mm3`` (what the patient decision ignores).
    """
    notes: list[str] = []
    flagged = {f.vertebra_label: f for f in findings if any(v for v in f.flagged.values())}
    present = set() if label_map is None else set(np.unique(label_map).tolist())
    unsegmented = [f.level for label, f in flagged.items() if label not in present]
    if unsegmented:
        notes.append(
            f"flagged vertebrae {', '.join(unsegmented)} have no region in the fracture SEG: "
            + ("not in the vertebra mask" if label_map is not None else "no vertebra mask")
        )
    segments: list[tuple[int | None, str, str]] = []
    fractured = None
    shown = sorted((label for label in flagged if label in present), key=_rank)
    if shown:
        lut = np.zeros(256, np.uint8)
        lut[shown] = shown
        fractured = lut[label_map]
        for label in shown:
            methods = ", ".join(m for m, v in flagged[label].flagged.items() if v)
            algorithm = f"spinefx {methods} classifier at its operating point; vertebra mask"
            segments.append((label, f"{flagged[label].level} fracture", algorithm))
    voxels = None
    if fracture_map is not None and threshold is None:
        notes.append(NO_OPERATING_POINT_NOTE)
    elif fracture_map is not None:
        above = fracture_map.with_data(
            (np.asarray(fracture_map.data) >= threshold).astype(np.uint8)
        )
        voxels = _as_decided(label_map_on_grid(above, scan).astype(bool), scan, min_mm3)
        if voxels.any():
            name = f"fracture voxels (p >= {threshold:.2f})"
            segments.append((None, name, f"spinefx voxel classifier, p(fracture) >= {threshold}"))
        else:
            voxels = None
    if not segments and not unsegmented:
        notes.append(NO_FRACTURE_NOTE)
    return FractureRegions(fractured, voxels, tuple(segments), threshold, tuple(notes))


def _as_decided(voxels: np.ndarray, scan: Image, min_mm3: float) -> np.ndarray:
    """``voxels`` without those near metal and without components under ``min_mm3``."""
    from scipy import ndimage

    from spinefx.preprocessing.metal import metal_mask

    if not voxels.any():
        return voxels
    voxels = voxels & ~metal_mask(scan)
    if min_mm3 > 0 and voxels.any():
        labels, n = ndimage.label(voxels, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(labels.ravel()) * float(np.prod(scan.spacing_mm))
        keep = sizes >= min_mm3
        keep[0] = False
        voxels = keep[labels]
    return voxels


def build_fracture_segmentation(regions: FractureRegions, series: SourceSeries):
    """The fracture DICOM SEG (BINARY): one segment per flagged vertebra, then the voxels.

    Segments may overlap (the fracture voxels lie in the vertebrae), so each frame holds one
    boolean plane per segment; only the slices that some segment touches become frames.
    """
    from spinefx.reporting.dicom_codes import fracture_segment_description

    labels = [label for label, _, _ in regions.segments if label is not None]

    def frame(k: int) -> np.ndarray:
        planes = [regions.label_map[:, :, k] == label for label in labels]
        if regions.voxels is not None:
            planes.append(regions.voxels[:, :, k])
        return np.stack(planes, axis=-1)

    maps = [m for m in (regions.label_map, regions.voxels) if m is not None]
    touched = np.logical_or.reduce([m.any(axis=(0, 1)) for m in maps])  # per scan slice
    descriptions = [
        fracture_segment_description(n, label, algorithm=algorithm, segment_label=name)
        for n, (label, name, algorithm) in enumerate(regions.segments, start=1)
    ]
    return segmentation_on_source_frames(
        frame,
        series.restricted(np.flatnonzero(touched).tolist()),
        descriptions,
        series_number=9003,
        series_description="spinefx fractured vertebrae (DRAFT)",
        content_label="FRACTURES",
        content_description="Vertebrae flagged as fractured by spinefx (DRAFT, to be checked)",
    )


def segmentation_on_source_frames(
    frame_of,
    series: SourceSeries,
    segment_descriptions,
    *,
    series_number: int,
    series_description: str,
    content_label: str,
    content_description: str,
):
    """A BINARY DICOM SEG whose frame ``n`` is slice ``series.slice_index[n]`` of the scan.

    The one place where scan voxels become DICOM frames: ``frame_of(k)`` is slice ``k`` in the
    scan's voxel order, ``(columns, rows)`` segment numbers or ``(columns, rows, segments)``
    booleans; it is swapped to the frame's ``(rows, columns)`` and highdicom takes the frame's
    position and orientation from the source slice ``series.datasets[n]``.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    frames = np.stack([np.swapaxes(frame_of(k), 0, 1) for k in series.slice_index])
    return hd.seg.Segmentation(
        source_images=series.datasets,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="spinefx segmentation export",
        software_versions=_version(),
        device_serial_number="0",
        series_description=series_description,
        content_label=content_label,
        content_description=content_description,
    )


def _save_nifti_maps(scan: Image, label_map, fractures: FractureRegions, out: Path) -> dict:
    """The NIfTI stand-ins of the SEGs (scan grid and affine), each when it has content."""
    from spinefx.io import save_image

    maps = {
        ("nifti_seg", NIFTI_SEG_FILE): label_map,
        ("nifti_fracture_seg", NIFTI_FRACTURE_SEG_FILE): fractures.label_map,
        ("nifti_fracture_voxels", NIFTI_FRACTURE_VOXELS_FILE): (
            None if fractures.voxels is None else fractures.voxels.astype(np.uint8)
        ),
    }
    return {
        key: save_image(scan.with_data(data), out / name)
        for (key, name), data in maps.items()
        if data is not None
    }


def build_structured_report(
    findings: Sequence[VertebraFinding],
    series: SourceSeries,
    *,
    models: Mapping[str, dict],
    segmentation=None,
):
    """The Comprehensive 3D SR (TID 1500) of the findings, one group per vertebra."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    from spinefx.reporting.dicom_codes import measurement_report

    report = measurement_report(findings, series, models=models, segmentation=segmentation)
    evidence = [*series.datasets, *([segmentation] if segmentation is not None else [])]
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=generate_uid(),
        series_number=9002,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="spinefx vertebral fracture findings (DRAFT)",
    )


def _rank(label: int) -> tuple[int, int]:
    try:
        return (0, spine_rank(label))
    except ValueError:  # sacrum / coccyx after every vertebra
        return (1, label)


def _version() -> str:
    from spinefx import __version__

    return str(__version__)


def _save_dataset(ds, path: Path) -> Path:
    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return path
