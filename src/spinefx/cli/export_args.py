"""``--dicom-out DIR``: results for PACS (DICOM SEG + SR, or NIfTI + JSON), on detect and report."""

from __future__ import annotations


def add_dicom_out_argument(parser) -> None:
    parser.add_argument(
        "--dicom-out",
        help="also write results a radiologist can open in PACS to this folder: a DICOM SEG "
        "of the --mask vertebrae, a second DICOM SEG of the vertebrae flagged as fractured "
        "(and, from detect, the voxels at the fracture threshold) and a DICOM SR of the "
        "per-vertebra findings for a DICOM series; NIfTI maps and JSON findings for a NIfTI "
        "scan",
    )


def print_export(exported, out_dir) -> None:
    """What the export wrote (its notes are logged by the library)."""
    names = ", ".join(p.name for p in exported.paths.values())
    print(f"results for PACS in {out_dir}: {names}")
