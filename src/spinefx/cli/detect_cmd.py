"""``spinefx detect SCAN --model RUN --out DIR``: whole-scan screening (Nicolaes et al. 2019).

Inference only: train with ``spinefx train --model voxel`` and cross-validate (operating
point) with ``spinefx crossval --model voxel``.
"""

from __future__ import annotations

import argparse

from spinefx.cli.export_args import add_dicom_out_argument, print_export
from spinefx.cli.mask_args import add_mask_arguments, centroids_from_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="screen a CT for vertebral fractures with the whole-scan voxel classifier",
        description="Classify every voxel (background / normal / fractured vertebra), then "
        "report a patient score, per-vertebra probabilities (at given centroids or at "
        "vertebrae localised automatically, levels from the spacing profile), probability maps "
        "in the scan's geometry and a mid-sagittal overlay. Vertebrae are flagged at the "
        "run's operating point (spinefx crossval --model voxel ... --apply-to RUN).",
    )
    parser.add_argument("scan", nargs="?", help="CT scan: NIfTI file or DICOM folder")
    parser.add_argument(
        "--model",
        help="run directory of a trained voxel classifier (default: the shipped weights; "
        "see `spinefx weights show`)",
    )
    parser.add_argument("--centroids", help="VerSe centroid JSON (default: localise automatically)")
    add_mask_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder")
    add_dicom_out_argument(parser)
    parser.add_argument("--cube-size", type=int, default=10, help="vertebra cube edge, voxels")
    parser.add_argument(
        "--whole-volume",
        action="store_true",
        help="run the network on every tissue tile, not only in the spine region found first",
    )
    parser.add_argument(
        "--localiser",
        choices=("anatomy", "heatmap", "network"),
        default="anatomy",
        help="without --centroids/--mask: 'anatomy' (bodies and discs on the CT, levels from "
        "the sacrum or marked uncertain; default), 'heatmap' (bodies from the body-centre "
        "heatmap network, levels as 'anatomy') or 'network' (the voxel classifier's map)",
    )
    parser.add_argument(
        "--heatmap-weights",
        help="body_heatmap.pt of `spinefx train-localiser` for --localiser heatmap "
        "(default: the shipped weights)",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 when no vertebra is found (default: an error, exit 1)",
    )
    # the training modes moved to `spinefx train` / `spinefx crossval` (clear error if used)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--crossval", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.errors import InputError

    if args.train or args.crossval:
        mode = "train" if args.train else "crossval"
        raise InputError(
            f"`spinefx detect --{mode}` moved",
            fix=f"use spinefx {mode} --model voxel --data {args.train or args.crossval} "
            f"--out {args.out}",
        )
    if not args.scan:
        raise InputError(
            "detect needs a SCAN",
            fix="spinefx detect SCAN [--model RUN_DIR] --out DIR",
        )
    from spinefx.inference.screening import detect_fractures, write_detection
    from spinefx.io import load_scan, save_centroids
    from spinefx.runs.shipped import resolve_run

    model = resolve_run(args.model, "voxel")

    scan = load_scan(args.scan)
    centroids = centroids_from_arguments(args, scan)
    result = detect_fractures(
        model,
        scan,
        centroids,
        cube_size_vox=args.cube_size,
        spine_roi=not args.whole_volume,
        localiser=args.localiser,
        heatmap_weights=args.heatmap_weights,
    )
    if not result.vertebrae and not args.allow_empty:
        raise InputError(
            "no vertebra found in this scan: no patient result",
            path=args.scan,
            fix="pass --centroids FILE.json (VerSe centroid JSON) for the vertebrae in view, "
            "check that the scan shows the spine, or pass --allow-empty",
        )
    morphometry = None
    if args.mask:
        from spinefx.io.vertebra_masks import load_vertebra_mask
        from spinefx.morphometry import morphometry_columns

        morphometry = morphometry_columns(
            load_vertebra_mask(args.mask, numbering=args.mask_numbering).image
        )
    paths = write_detection(result, args.out, morphometry=morphometry)
    if result.vertebrae:
        located = {v.vertebra_label: v.centroid_mm for v in result.vertebrae}
        save_centroids(located, f"{args.out}/centroids.json", reference=scan)
    if args.dicom_out:
        from spinefx.reporting.dicom_export import export_results

        exported = export_results(
            scan,
            result.vertebrae,
            args.dicom_out,
            source=args.scan,
            mask_path=args.mask,
            mask_numbering=args.mask_numbering,
            models={"voxel": result.model},
            fracture_map=result.probability_maps["fractured"],
            fracture_threshold=result.fracture_threshold,
            fracture_min_mm3=result.fracture_min_mm3,
        )
    print(
        f"patient: {result.patient_state} "
        f"(largest fracture component {result.patient_score:.0f} mm^3)"
    )
    if result.patient_note:
        print(f"  {result.patient_note}")
    for v in result.vertebrae:
        flag = "  FLAGGED" if v.flagged else ("" if v.assessable else f"  {v.note}")
        print(f"  {v.level:>4}  p(fracture) = {v.probability:.3f}  ({v.centroid_source}){flag}")
    for note in (result.flag_note, result.model.get("training_note", "")):
        if note:
            print(f"note: {note}")
    print(f"outputs in {args.out}: {', '.join(p.name for p in paths.values())}")
    if args.dicom_out:
        print_export(exported, args.dicom_out)
    return 0
