"""``spinefx predict SCAN --centroids JSON [--model RUN]``: per-vertebra fracture probabilities.

Without ``--model`` the shipped default patch classifier answers (``spinefx weights show``);
the older form ``spinefx predict RUN_DIR SCAN`` still works.
"""

from __future__ import annotations

import argparse

from spinefx.cli.mask_args import add_mask_arguments, centroids_from_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict vertebral fractures of one CT scan with a trained run",
        description="Extract spine-aligned patches at the run's size and spacing around "
        "each vertebral centroid and print (or write) level, probability, prediction and "
        "out-of-view fraction per vertebra.",
    )
    parser.add_argument("scan", help="CT scan: NIfTI file or DICOM folder")
    parser.add_argument("second", nargs="?", metavar="SCAN", help=argparse.SUPPRESS)
    parser.add_argument(
        "--model",
        help="patch-classifier run directory made by spinefx train (default: the shipped "
        "weights; see `spinefx weights show`)",
    )
    parser.add_argument(
        "--centroids",
        help="VerSe centroid JSON of the scan (required: vertebrae must be located first, "
        "e.g. with `spinefx detect` or from a VerSe _seg-subreg_ctd.json)",
    )
    add_mask_arguments(parser)
    parser.add_argument("--out", help="write the table to FILE.csv or FILE.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.errors import InputError
    from spinefx.runs.shipped import resolve_run

    if args.second:  # the older form: predict RUN_DIR SCAN
        if args.model:
            raise InputError("two models given", fix="pass the run either first or as --model")
        args.model, args.scan = args.scan, args.second
    run_dir = resolve_run(args.model, "patch")
    if args.out:
        from spinefx.inference.patch_classifier import check_prediction_output

        check_prediction_output(args.out)

    if not args.centroids and not args.mask:
        raise InputError(
            "the patch classifier needs vertebral centroids",
            path=args.scan,
            fix="pass --centroids FILE.json (VerSe centroid JSON) or --mask MASK (VerSe or "
            "TotalSegmentator vertebra mask); `spinefx detect` can locate vertebrae when "
            "neither exists",
        )
    import pandas as pd

    from spinefx.inference.patch_classifier import predict_scan, write_predictions
    from spinefx.io import load_scan
    from spinefx.runs import load_trained
    from spinefx.runs.shipped import model_identity

    scan = load_scan(args.scan)
    centroids = centroids_from_arguments(args, scan)
    rows = predict_scan(run_dir, scan, centroids)
    if args.mask:  # the mask's morphometry beside every probability
        from spinefx.io.vertebra_masks import load_vertebra_mask
        from spinefx.morphometry import morphometry_columns, with_morphometry

        mask = load_vertebra_mask(args.mask, numbering=args.mask_numbering).image
        rows = with_morphometry(rows, morphometry_columns(mask))
    model = model_identity(load_trained(run_dir))
    if args.out:
        write_predictions(rows, args.out, scan=str(args.scan), run_dir=str(run_dir), model=model)
    print(pd.DataFrame(rows).to_string(index=False))
    note = model["training_note"]
    if note:
        print(f"note: {note}")
    return 0
