"""``spinefx inspect SCAN``: geometry, HU range and annotated vertebrae of one scan."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print shape, spacing, orientation, HU range and vertebrae of a scan",
        description="Describe a CT scan (NIfTI file or DICOM folder) and, given a VerSe "
        "centroid JSON or a vertebra mask, the vertebrae on it (world RAS+ mm and voxel).",
    )
    parser.add_argument("scan", help="NIfTI file (.nii/.nii.gz) or folder of DICOM slices")
    parser.add_argument("--centroids", help="VerSe centroid JSON (_seg-subreg_ctd.json)")
    parser.add_argument("--mask", help="vertebra mask (_seg-vert_msk.nii.gz)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.io.describe import describe_scan, format_description

    description = describe_scan(args.scan, centroids_path=args.centroids, mask_path=args.mask)
    print(format_description(description))
    return 0
