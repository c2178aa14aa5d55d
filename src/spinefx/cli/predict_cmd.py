"""``spinefx predict RUN_DIR SCAN --centroids JSON``: per-vertebra fracture probabilities."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict vertebral fractures of one CT scan with a trained run",
        description="Extract spine-aligned patches at the run's size and spacing around "
        "each vertebral centroid and print (or write) level, probability, prediction and "
        "out-of-view fraction per vertebra.",
    )
    parser.add_argument("run_dir", help="run directory made by spinefx train")
    parser.add_argument("scan", help="CT scan: NIfTI file or DICOM folder")
    parser.add_argument(
        "--centroids",
        help="VerSe centroid JSON of the scan (required: vertebrae must be located first, "
        "e.g. with `spinefx detect` or from a VerSe _seg-subreg_ctd.json)",
    )
    parser.add_argument("--out", help="write the table to FILE.csv or FILE.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.errors import InputError

    if not args.centroids:
        raise InputError(
            "the patch classifier needs vertebral centroids",
            path=args.scan,
            fix="pass --centroids FILE.json (VerSe centroid JSON); `spinefx detect` can "
            "locate vertebrae when no centroids exist",
        )
    import pandas as pd

    from spinefx.inference.patch_classifier import predict_scan, write_predictions
    from spinefx.io import load_centroids, load_scan

    scan = load_scan(args.scan)
    centroids = load_centroids(args.centroids, scan, outside="keep")
    rows = predict_scan(args.run_dir, scan, centroids)
    if args.out:
        write_predictions(rows, args.out, scan=str(args.scan), run_dir=str(args.run_dir))
    print(pd.DataFrame(rows).to_string(index=False))
    return 0
