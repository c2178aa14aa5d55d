"""Write synthetic cases as a VerSe-layout dataset, byte-identical for the same seed.

Layout (see docs/architecture.md)::

    <out>/rawdata/sub-synth0001/sub-synth0001_ct.nii.gz
    <out>/derivatives/sub-synth0001/sub-synth0001_seg-vert_msk.nii.gz
    <out>/derivatives/sub-synth0001/sub-synth0001_seg-subreg_msk.nii.gz
    <out>/derivatives/sub-synth0001/sub-synth0001_seg-subreg_ctd.json
    <out>/derivatives/sub-synth0001/sub-synth0001_seg-fxzone_msk.nii.gz
    <out>/fracture_grades.csv          long VerSe form, grade "x" for screws, "" when cut
    <out>/synthesis_truth.csv          intended height loss and hard negatives per vertebra
    <out>/synthesis_config.yaml        the config and seed that made the dataset

Case ``i`` is drawn from ``SeedSequence(seed, spawn_key=(i,))``, so it does not depend on how
many cases are generated. NIfTI files are gzipped with ``mtime=0`` so the bytes are
reproducible (nibabel's own writer stamps the current time into the gzip header).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from spinefx.atomic import write_bytes_atomic, write_text_atomic
from spinefx.config import to_dict
from spinefx.conventions import level_name
from spinefx.image import Image
from spinefx.io.grades import LONG_COLUMNS
from spinefx.synthesis.config import SynthesisConfig
from spinefx.synthesis.config import preset as get_preset
from spinefx.synthesis.generator import SyntheticCase, generate_case

log = logging.getLogger(__name__)

#: The official long VerSe grade table form, as the io stage reads it.
GRADE_COLUMNS = LONG_COLUMNS
TRUTH_COLUMNS = (
    "case_id",
    "label",
    "level",
    "genant_grade",
    "shape",
    "height_loss",
    "foreign_material",
    "fully_in_view",
    "schmorl_node",
    "osteophytes",
)


def case_id(index: int) -> str:
    """Subject id of case ``index`` (0-based): ``sub-synth0001`` for index 0."""
    return f"sub-synth{index + 1:04d}"


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of case ``index`` of a dataset made with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def nifti_bytes(image: Image, dtype: type) -> bytes:
    """A gzipped NIfTI-1 file of ``image`` with a fixed gzip timestamp (reproducible bytes)."""
    nii = nib.Nifti1Image(np.asarray(image.data, dtype=dtype), image.affine)
    nii.header.set_xyzt_units("mm")
    nii.set_qform(image.affine, code=1)
    nii.set_sform(image.affine, code=1)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(nii.to_bytes())
    return buffer.getvalue()


def centroid_json(case: SyntheticCase) -> str:
    """VerSe centroid JSON: axis codes, then voxel indices of each body centroid in the CT grid."""
    entries: list[dict] = [{"direction": list(nib.aff2axcodes(case.ct.affine))}]
    for v in case.vertebrae:
        ijk = case.ct.world_to_voxel(v.centroid_mm)
        entries.append(
            {
                "label": v.vertebra_label,
                "X": round(float(ijk[0]), 2),
                "Y": round(float(ijk[1]), 2),
                "Z": round(float(ijk[2]), 2),
            }
        )
    return json.dumps(entries)


def write_case(case: SyntheticCase, root: Path, subject: str) -> None:
    """Write one case's CT, masks and centroids under ``root`` (atomic files)."""
    raw = root / "rawdata" / subject
    der = root / "derivatives" / subject
    write_bytes_atomic(raw / f"{subject}_ct.nii.gz", nifti_bytes(case.ct, np.int16))
    write_bytes_atomic(
        der / f"{subject}_seg-vert_msk.nii.gz", nifti_bytes(case.vertebra_mask, np.uint8)
    )
    write_bytes_atomic(
        der / f"{subject}_seg-subreg_msk.nii.gz", nifti_bytes(case.subregion_mask, np.uint8)
    )
    write_bytes_atomic(
        der / f"{subject}_seg-fxzone_msk.nii.gz", nifti_bytes(case.fxzone_mask, np.uint8)
    )
    write_text_atomic(der / f"{subject}_seg-subreg_ctd.json", centroid_json(case))


def grade_rows(case: SyntheticCase, index: int) -> list[dict]:
    """Rows of the long VerSe grade table for one case."""
    rows = []
    for v in case.vertebrae:
        if v.foreign_material:
            grade, shape = "x", ""
        elif not v.fully_in_view:
            grade, shape = "", ""
        else:
            grade, shape = str(v.genant_grade), str(0 if v.shape is None else _shape_code(v.shape))
        rows.append(
            {
                "verse_ID": index + 1,
                "subject_ID": index + 1,
                "split": case.split,
                "level": level_name(v.vertebra_label),
                "label": v.vertebra_label,
                "grade": grade,
                "shape": shape,
            }
        )
    return rows


def _shape_code(shape: str) -> int:
    from spinefx.conventions import SHAPE_CODES

    return SHAPE_CODES[shape]


def truth_rows(case: SyntheticCase, subject: str) -> list[dict]:
    """Rows of ``synthesis_truth.csv`` for one case."""
    return [
        {
            "case_id": subject,
            "label": v.vertebra_label,
            "level": v.level,
            "genant_grade": v.genant_grade,
            "shape": v.shape or "",
            "height_loss": f"{v.height_loss:.4f}",
            "foreign_material": int(v.foreign_material),
            "fully_in_view": int(v.fully_in_view),
            "schmorl_node": int(v.schmorl_node),
            "osteophytes": int(v.osteophytes),
        }
        for v in case.vertebrae
    ]


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _make_case(job) -> tuple[list[dict], list[dict]]:
    """Generate and write one case (a process-pool task); its grade and truth rows."""
    config, root, seed, index = job
    subject = case_id(index)
    case = generate_case(config, case_rng(seed, index))
    write_case(case, root, subject)
    log.debug("wrote %s (%d vertebrae)", subject, len(case.vertebrae))
    return grade_rows(case, index), truth_rows(case, subject)


def generate_dataset(
    out_dir: str | Path,
    *,
    n_scans: int,
    seed: int = 0,
    preset: str = "default",
    config: SynthesisConfig | None = None,
    workers: int = 1,
) -> Path:
    """Generate ``n_scans`` synthetic CTs in the VerSe layout under ``out_dir``.

    Args:
        out_dir: dataset root (created).
        n_scans: number of scans.
        seed: dataset seed; the same seed and config give byte-identical files.
        preset: preset name (ignored when ``config`` is given).
        config: an explicit generator config.
        workers: processes generating cases in parallel; every case has its own seeded
            generator, so the files are the same for any number of workers.

    Returns:
        The dataset root.
    """
    from spinefx.synthesis.resume import finish_cases, run_cases

    root = Path(out_dir)
    config = config or get_preset(preset)
    grades: list[dict] = []
    truth: list[dict] = []
    jobs = [(config, root, seed, index) for index in range(int(n_scans))]
    rows = run_cases(  # an interrupted run's finished cases are kept (case i: its own seed)
        _make_case,
        jobs,
        root=root,
        names=[case_id(index) for index in range(int(n_scans))],
        settings={"generator": "procedural", "seed": int(seed), "config": to_dict(config)},
        workers=int(workers),
        desc="synth",
    )
    for case_grades, case_truth in rows:
        grades += case_grades
        truth += case_truth
    write_text_atomic(root / "fracture_grades.csv", _csv_text(grades, GRADE_COLUMNS))
    write_text_atomic(root / "synthesis_truth.csv", _csv_text(truth, TRUTH_COLUMNS))
    provenance = {
        "seed": int(seed),
        "n_scans": int(n_scans),
        "preset": preset,
        "config": to_dict(config),
    }
    write_text_atomic(root / "synthesis_config.yaml", yaml.safe_dump(provenance, sort_keys=False))
    finish_cases(root)
    log.info("wrote %d synthetic scans to %s", n_scans, root)
    return root
