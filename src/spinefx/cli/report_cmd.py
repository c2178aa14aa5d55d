"""``spinefx report``: the draft per-scan report as a self-contained HTML file (and text)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spinefx.cli.export_args import add_dicom_out_argument
from spinefx.cli.mask_args import add_mask_arguments, check_one_source


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="draft findings report (HTML with key images) for one scan",
        description="Predict every vertebra of a scan, explain the flagged ones with the run's "
        "concept atlas and write a DRAFT report for a radiologist to edit.",
    )
    p.add_argument("scan", type=Path, metavar="SCAN", help="NIfTI file or DICOM folder")
    p.add_argument(
        "--model", type=Path, help="patch classifier run directory (default: the shipped weights)"
    )
    p.add_argument("--centroids", type=Path, help="VerSe centroid JSON of the scan")
    add_mask_arguments(p)
    # localisation no longer needs a voxel model (it runs on the CT's anatomy): the old flag
    # is accepted and ignored with a note
    p.add_argument("--voxel-model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--atlas", type=Path, help="concept atlas file (default: the run's own)")
    p.add_argument("--out", type=Path, required=True, help="output .html (a .txt is written too)")
    add_dicom_out_argument(p)
    p.add_argument(
        "--include-identifiers",
        action="store_true",
        help="show patient/study identifiers from DICOM headers (off by default)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.reporting import write_scan_report
    from spinefx.runs.shipped import resolve_run

    check_one_source(args)
    if args.voxel_model:
        print("note: --voxel-model is not needed any more (localisation runs on the CT)")
    html_path, text_path = write_scan_report(
        args.scan,
        model_run_dir=resolve_run(args.model, "patch"),
        out_path=args.out,
        centroids_path=args.centroids,
        mask_path=args.mask,
        mask_numbering=args.mask_numbering,
        atlas_path=args.atlas,
        include_identifiers=args.include_identifiers,
        dicom_out=args.dicom_out,
    )
    print(f"wrote {html_path} and {text_path}")
    if args.dicom_out:
        print(f"results for PACS in {args.dicom_out}")
    return 0
