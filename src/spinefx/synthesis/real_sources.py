"""The real scans and masks that the training-data engine builds on, with grades and licences.

A *real subject* is one patient of the real sample folder (``../shared/data/real``, see its
README): one or more scans, each a VerSe-id vertebra mask with or without its CT, with the
official per-vertebra Genant grades of that scan where they exist. The licence of each
collection decides whether weights trained on it may be shipped (``shippable``); the subject
id decides the folds: nothing made from a subject may train a model scored on that subject.

Collections read (folder names as in the README):

* ``verse/``: VerSe19 subjects with CT and expert masks (grades from ``verse_labels/``);
* ``verse004/``: a VerSe19 expert mask, no CT;
* ``verse_predicted_masks/``: predicted masks of VerSe19 series, no CT (non-commercial);
* ``ctfu/``: clinical CTs of one patient (BIDS-like, ``labels.tsv``; internal testing only);
* ``tptbox/``, ``totalseg/``: unlabeled real CTs with masks (Apache-2.0; no grades).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spinefx.conventions import VERTEBRA_LEVELS
from spinefx.errors import InputError
from spinefx.image import Image

log = logging.getLogger(__name__)

GRADE_TABLE = Path("verse_labels") / "verse19_loeffler_per_vertebra_long.csv"

#: collection -> (licence, weights trained on it may be shipped)
LICENCES: dict[str, tuple[str, bool]] = {
    "verse": ("CC BY-SA 4.0 (VerSe)", True),
    "verse004": ("CC BY-SA 4.0 (VerSe)", True),
    "verse_predicted_masks": ("CC BY-NC-SA 4.0 (Meng et al. 2022 masks; non-commercial)", False),
    "ctfu": ("no data licence (FX-Grader repository samples; internal testing only)", False),
    "tptbox": ("Apache-2.0 (TPTBox test data)", True),
    "totalseg": ("Apache-2.0 (TotalSegmentator test data)", True),
}

#: Columns of ``sources.csv``, written by every training-data source next to its dataset: the
#: real subject behind each generated case (empty for procedural cases) and its licence.
SOURCES_COLUMNS: tuple[str, ...] = ("case_id", "source", "source_subject", "licence", "shippable")

#: (genant_grade, shape) of a graded vertebra
Grade = tuple[int, str | None]


@dataclass(frozen=True)
class RealScan:
    """One real vertebra mask (VerSe ids), its CT if there is one, and its official grades.

    Attributes:
        scan_id: identifier (``sub-verse007``, ``verse018``, ...).
        ct_path: CT on the mask's grid, or None for mask-only scans.
        mask_path: vertebra label mask in VerSe numbering.
        grades: vertebra label -> (genant_grade, shape) for graded vertebrae; labels present
            in the mask but absent here are ungraded (not in view, no table, or metal).
        foreign_material: labels that carry metal (VerSe ``x``).
    """

    scan_id: str
    ct_path: Path | None
    mask_path: Path
    grades: Mapping[int, Grade] = field(default_factory=dict)
    foreign_material: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RealSubject:
    """One real patient: its scans, the licence of its collection, the fold it belongs to.

    Attributes:
        subject_id: ``verse007``, ``verse404``, ``ctfu00001``, ``tptbox``, ``totalseg``.
        collection: folder of the real sample set it came from.
        scans: the subject's scans (CT + mask, or mask only).
        licence: licence text of the collection.
        shippable: the licence allows shipping weights trained on this subject.
    """

    subject_id: str
    collection: str
    scans: tuple[RealScan, ...]
    licence: str
    shippable: bool

    @property
    def ct_scans(self) -> tuple[RealScan, ...]:
        """The scans that have a CT (canvases for fracture simulation, scored by networks)."""
        return tuple(s for s in self.scans if s.ct_path is not None)


def _subject(collection: str, subject_id: str, scans: list[RealScan]) -> RealSubject:
    licence, shippable = LICENCES[collection]
    return RealSubject(subject_id, collection, tuple(scans), licence, shippable)


def _grades_from_cases(case) -> tuple[dict[int, Grade], frozenset[int]]:
    grades = {
        v.vertebra_label: (int(v.genant_grade), v.shape)
        for v in case.vertebrae
        if v.genant_grade is not None and not v.foreign_material
    }
    metal = frozenset(v.vertebra_label for v in case.vertebrae if v.foreign_material)
    return grades, metal


def _layout_subjects(root: Path, collection: str, *, grades: Path | None) -> list[RealSubject]:
    """Subjects of a VerSe / BIDS-like folder, read with the io stage's own loader."""
    from spinefx.io import scan_dataset

    by_subject: dict[str, list[RealScan]] = {}
    for case in scan_dataset(root, grades=grades).cases:
        if case.mask_path is None:
            continue
        table, metal = _grades_from_cases(case)
        scan = RealScan(case.case_id, case.scan_path, Path(case.mask_path), table, metal)
        subject = re.sub(r"^sub-", "", str(case.patient_id or case.case_id)).split("_")[0]
        by_subject.setdefault(subject, []).append(scan)
    return [_subject(collection, s, scans) for s, scans in sorted(by_subject.items())]


def _long_table(root: Path) -> pd.DataFrame | None:
    path = root / GRADE_TABLE
    if not path.is_file():
        return None
    from spinefx.io.grades import load_grade_table

    return load_grade_table(path)


def _series_grades(table: pd.DataFrame | None, series: str) -> tuple[dict[int, Grade], set[int]]:
    if table is None:
        return {}, set()
    rows = table[table["series_id"] == series]
    grades = {
        int(r.vertebra_label): (int(r.genant_grade), r.shape if isinstance(r.shape, str) else None)
        for r in rows.itertuples()
        if not pd.isna(r.genant_grade) and not r.foreign_material
    }
    return grades, {int(r.vertebra_label) for r in rows.itertuples() if r.foreign_material}


def _predicted_mask_subjects(folder: Path, table: pd.DataFrame | None) -> list[RealSubject]:
    by_subject: dict[str, list[RealScan]] = {}
    for path in sorted(folder.glob("verse*_seg.nii.gz")):
        ids = re.findall(r"verse(\d+)", path.name)
        series, subject = ids[-1].lstrip("0"), ids[0].lstrip("0")
        if table is not None:
            known = table.loc[table["series_id"] == series, "subject_id"]
            subject = str(known.iloc[0]) if len(known) else subject
        grades, metal = _series_grades(table, series)
        scan = RealScan(f"verse{int(series):03d}", None, path, grades, frozenset(metal))
        by_subject.setdefault(f"verse{int(subject):03d}", []).append(scan)
    return [_subject("verse_predicted_masks", s, scans) for s, scans in sorted(by_subject.items())]


def _unlabeled_subjects(root: Path) -> list[RealSubject]:
    out = []
    tpt = root / "tptbox"
    if (tpt / "sub-ct_label-22_ct.nii.gz").is_file():
        scan = RealScan(
            "tptbox", tpt / "sub-ct_label-22_ct.nii.gz", tpt / "sub-ct_seg-vert_label-22_msk.nii.gz"
        )
        out.append(_subject("tptbox", "tptbox", [scan]))
    ts = root / "totalseg"
    mask = ts / "spine_report" / "totalseg_vertebrae_pp_refined.nii.gz"
    if (ts / "example_ct.nii.gz").is_file() and mask.is_file():
        # this file's ids 19-24 are T12-L5, which equal the VerSe ids (spine_report.json)
        out.append(
            _subject("totalseg", "totalseg", [RealScan("totalseg", ts / "example_ct.nii.gz", mask)])
        )
    return out


def find_real_subjects(root: str | Path) -> list[RealSubject]:
    """Every real subject of the sample folder ``root`` (``../shared/data/real``).

    Raises:
        InputError: when ``root`` is not the real sample folder.
    """
    root = Path(root)
    if not (root / "README.md").is_file():
        raise InputError(
            "not the real sample folder (no README.md)",
            path=root,
            fix="pass ../shared/data/real or set SPINEFX_REAL_DATA",
        )
    table = _long_table(root)
    grades = root / GRADE_TABLE if table is not None else None
    subjects: list[RealSubject] = []
    for name in ("verse", "verse004"):
        if (root / name).is_dir():
            subjects += _layout_subjects(root / name, name, grades=grades)
    if (root / "verse_predicted_masks").is_dir():
        subjects += _predicted_mask_subjects(root / "verse_predicted_masks", table)
    if (root / "ctfu").is_dir():
        subjects += _layout_subjects(root / "ctfu", "ctfu", grades=None)
    subjects += _unlabeled_subjects(root)
    return subjects


def load_real_mask(scan: RealScan) -> Image:
    """The scan's vertebra mask as an integer VerSe-id label map (float files are rounded)."""
    from spinefx.io.nifti import read_nifti

    image = read_nifti(scan.mask_path)
    data = np.rint(np.asarray(image.data)).astype(np.int16)
    unknown = sorted(set(np.unique(data).tolist()) - {0, 26, 27, *VERTEBRA_LEVELS})
    if unknown:
        raise InputError(
            f"mask holds labels {unknown[:5]} that are not VerSe vertebra ids",
            path=scan.mask_path,
            fix="pass a VerSe-numbered vertebra mask",
        )
    return image.with_data(data)


def load_real_pair(scan: RealScan) -> tuple[Image | None, Image]:
    """(CT or None, VerSe-id mask) of one real scan, on one grid.

    Raises:
        InputError: when the CT and the mask do not share a grid.
    """
    from spinefx.io import load_scan

    mask = load_real_mask(scan)
    if scan.ct_path is None:
        return None, mask
    ct = load_scan(scan.ct_path)
    if ct.shape != mask.shape or not np.allclose(ct.affine, mask.affine, atol=1e-3):
        raise InputError(
            "the CT and its vertebra mask are on different grids",
            path=scan.mask_path,
            fix=f"pass the mask made on {scan.ct_path}",
        )
    return ct, mask
