"""Value types for annotated data: one record per vertebra, one per scan (case).

These are what every dataset loader returns (VerSe layout, BIDS-like + TSV, manifest CSV,
synthetic data) and what ``prepare``, training and evaluation consume. Centroids are in
world RAS+ mm (never voxel indices).
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
