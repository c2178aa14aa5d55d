"""``spinefx detect``: whole-scan fracture screening with the voxel classifier (Nicolaes 2019).

Three modes, one thin shell each:
  spinefx detect SCAN --model RUN_DIR --out DIR [--centroids JSON]   screen one scan
  spinefx detect --train DATASET --out RUN_DIR [--preset cpu]         train a voxel classifier
  spinefx detect --crossval DATASET --out DIR [--preset cpu]          5-fold cross-validation
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="screen a CT for vertebral fractures with the whole-scan voxel classifier",
        description="Classify every voxel (background / normal / fractured vertebra), then "
        "report a patient score, per-vertebra probabilities (at given centroids or at "
        "vertebrae localised automatically, levels from the spacing profile), probability maps "
        "in the scan's geometry and a mid-sagittal overlay. Also trains (--train) or "
        "cross-validates (--crossval) the voxel classifier.",
    )
    parser.add_argument("scan", nargs="?", help="CT scan: NIfTI file or DICOM folder")
    parser.add_argument("--model", help="run directory of a trained voxel classifier")
    parser.add_argument("--centroids", help="VerSe centroid JSON (default: localise automatically)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--cube-size", type=int, default=10, help="vertebra cube edge, voxels")
    parser.add_argument("--train", metavar="DATASET", help="train on a dataset instead")
    parser.add_argument("--crossval", metavar="DATASET", help="cross-validate on a dataset")
    parser.add_argument("--preset", default="cpu", help="training preset: cpu or paper")
    parser.add_argument("--config", help="training config YAML (overrides --preset)")
    parser.add_argument("--variant", choices=("3d", "1slice", "5slices"), help="model variant")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument(
        "--fold",
        type=int,
        action="append",
        help="run only this fold (repeatable; folds already done are kept, and the summary "
        "is written once all are done)",
    )
    parser.add_argument("--device", help="torch device, e.g. cuda or cpu (default: CUDA if any)")
    parser.add_argument("--seed", type=int, help="seed (default: the config's)")
    parser.set_defaults(func=run)


def _training_config(args: argparse.Namespace, data: str):
    from spinefx.config import from_dict, load_config, to_dict
    from spinefx.training.voxel import VoxelTrainingConfig, voxel_preset

    config = (
        load_config(args.config, VoxelTrainingConfig) if args.config else voxel_preset(args.preset)
    )
    values = to_dict(config)
    values["data"] = data
    if args.variant:
        values["model"]["variant"] = args.variant
    if args.seed is not None:
        values["seed"] = args.seed
    return from_dict(VoxelTrainingConfig, values, where="detect options")


def run(args: argparse.Namespace) -> int:
    from spinefx.errors import InputError

    if args.train or args.crossval:
        return _run_training(args)
    if not args.scan or not args.model:
        raise InputError(
            "detect needs a SCAN and --model RUN_DIR",
            fix="spinefx detect SCAN --model RUN_DIR --out DIR (or --train / --crossval DATASET)",
        )
    from spinefx.evaluation.voxel_detect import detect_fractures, write_detection
    from spinefx.io import load_centroids, load_scan, save_centroids

    scan = load_scan(args.scan)
    centroids = load_centroids(args.centroids, scan, outside="keep") if args.centroids else None
    result = detect_fractures(scan, args.model, centroids, cube_size_vox=args.cube_size)
    paths = write_detection(result, args.out)
    if result.vertebrae:
        located = {v.vertebra_label: v.centroid_mm for v in result.vertebrae}
        save_centroids(located, f"{args.out}/centroids.json", reference=scan)
    state = "FRACTURE" if result.patient_fractured else "no fracture"
    print(f"patient: {state} (largest fracture component {result.patient_score:.0f} mm^3)")
    for v in result.vertebrae:
        flag = {True: "  FLAGGED", False: "", None: ""}[v.flagged] or (
            f"  {v.note}" if v.note else ""
        )
        print(f"  {v.level:>4}  p(fracture) = {v.probability:.3f}  ({v.centroid_source}){flag}")
    print(f"outputs in {args.out}: {', '.join(p.name for p in paths.values())}")
    return 0


def _run_training(args: argparse.Namespace) -> int:
    import json

    from spinefx.io import load_dataset
    from spinefx.training.voxel import train_voxel_run

    data = args.train or args.crossval
    config = _training_config(args, data)
    if args.train:
        metrics = train_voxel_run(config, args.out, device=args.device)
        print(json.dumps(metrics, indent=2))
        return 0
    from spinefx.evaluation.crossval import crossvalidate_voxel
    from spinefx.training.voxel_data import load_voxel_cases

    cases, problems = load_voxel_cases(
        load_dataset(data),
        include_cervical=config.include_cervical,
        ellipsoid=config.ellipsoid,
        spacing_mm=config.model.input_spacing_mm,
        normalisation=config.model.intensity_normalisation,
    )
    for case_id, problem in problems:
        print(f"skipped {case_id}: {problem}")
    summary = crossvalidate_voxel(
        cases, config, args.out, n_folds=args.folds, folds=args.fold, device=args.device
    )
    print(json.dumps(summary, indent=2))
    return 0
