"""Value types: annotated data (one record per vertebra, one per scan) and per-vertebra results.

:class:`VertebraRecord` and :class:`Case` are what every dataset loader returns (VerSe layout,
BIDS-like + TSV, manifest CSV, synthetic data) and what ``prepare``, training and evaluation
consume. :class:`VertebraResult` is what both methods (patch and voxel classifier) return for
one vertebra of a scan, and what the report, the app and every output table show. Centroids
are in world RAS+ mm (never voxel indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spinefx.conventions import level_name


@dataclass(frozen=True)
class VertebraRecord:
    """One annotated vertebra.

    Attributes:
        case_id: identifier of the scan it belongs to.
        vertebra_label: VerSe label id (20 = L1).
        centroid_mm: vertebral-body centroid in world RAS+ mm, or None if unknown.
        genant_grade: 0-3, or None when not graded (e.g. not fully in view).
        shape: "wedge" / "biconcave" / "crush" for fractures, None otherwise/unknown.
        foreign_material: True when the vertebra carries metal (VerSe ``x``): excluded from
            fracture training and scoring by default.
        split: "train" / "val" / "test" or a dataset-specific split name; "" when unassigned.
    """

    case_id: str
    vertebra_label: int
    centroid_mm: tuple[float, float, float] | None = None
    genant_grade: int | None = None
    shape: str | None = None
    foreign_material: bool = False
    split: str = ""

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)

    @property
    def fractured(self) -> bool | None:
        """Genant grade >= 1; None when ungraded."""
        return None if self.genant_grade is None else self.genant_grade >= 1


@dataclass(frozen=True)
class Case:
    """One scan with its annotations.

    Attributes:
        case_id: unique identifier (e.g. ``sub-verse004`` or ``sub-ctfu00001_ses-20080508``).
        scan_path: CT image (NIfTI file or DICOM folder), or None when only masks exist.
        mask_path: vertebra label mask (VerSe numbering), if any.
        subregion_mask_path: VerSe sub-region mask, if any.
        centroids_path: centroid JSON, if any.
        vertebrae: the annotated vertebrae of this scan.
        patient_id: patient identifier for patient-level splits (defaults to case_id).
        split: dataset split of the whole case.
    """

    case_id: str
    scan_path: Path | None
    mask_path: Path | None = None
    subregion_mask_path: Path | None = None
    centroids_path: Path | None = None
    vertebrae: tuple[VertebraRecord, ...] = field(default_factory=tuple)
    patient_id: str = ""
    split: str = ""

    @property
    def patient(self) -> str:
        return self.patient_id or self.case_id


#: VertebraResult.row() columns, in output-table order
RESULT_COLUMNS = (
    "vertebra_label",
    "level",
    "method",
    "probability",
    "flagged",
    "assessable",
    "note",
    "x_mm",
    "y_mm",
    "z_mm",
    "centroid_source",
    "out_of_view_fraction",
)


@dataclass(frozen=True)
class VertebraResult:
    """One vertebra's fracture result by either method, for tables, the report and the app.

    Attributes:
        vertebra_label: VerSe label id.
        probability: fracture probability in [0, 1] (the run's ensemble over trials); NaN
            when the vertebra could not be scored.
        flagged: ``probability >= `` the run's threshold; None when the vertebra is not
            assessable or the run has no operating point (``note`` says which).
        centroid_mm: the centroid used, world RAS+ mm.
        method: ``patch`` or ``voxel``.
        assessable: False where the model's answer must not be read as "no fracture"
            (metal, patch mostly outside the scan, ...); ``note`` says why.
        note: why the vertebra is not assessable or not flagged, "" otherwise.
        centroid_source: ``given`` (file or mask) or ``automatic`` (localised).
        out_of_view_fraction: share of the model's input outside the scan (patch classifier).
    """

    vertebra_label: int
    probability: float
    flagged: bool | None
    centroid_mm: tuple[float, float, float] | None = None
    method: str = ""
    assessable: bool = True
    note: str = ""
    centroid_source: str = "given"
    out_of_view_fraction: float = 0.0

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)

    def row(self) -> dict:
        """The result as one output-table row (:data:`RESULT_COLUMNS`)."""
        c = self.centroid_mm if self.centroid_mm is not None else (None, None, None)
        return {
            "vertebra_label": int(self.vertebra_label),
            "level": self.level,
            "method": self.method,
            "probability": round(float(self.probability), 6),
            "flagged": self.flagged,
            "assessable": self.assessable,
            "note": self.note,
            "x_mm": c[0],
            "y_mm": c[1],
            "z_mm": c[2],
            "centroid_source": self.centroid_source,
            "out_of_view_fraction": round(float(self.out_of_view_fraction), 4),
        }
