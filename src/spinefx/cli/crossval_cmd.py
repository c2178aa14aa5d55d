"""``spinefx crossval``: cross-validated figures of either method.

  spinefx crossval --model voxel --data DATASET --out DIR [--folds 5] [--apply-to RUN]
  spinefx crossval --model patch --data PREPARED --out RUN [--trials 5]

Voxel classifier: stratified patient-level k-fold cross-validation (Nicolaes et al. 2019):
bootstrapped patient and vertebra AUCs, ROC plots and the operating point, which
``--apply-to RUN`` gives to a trained voxel run so that ``detect`` flags vertebrae.
Patch classifier: seeded trials on the prepared split, each scored on the test split
(mean ± std, as Engstler et al. 2022).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "crossval",
        help="cross-validate the voxel classifier, or run seeded trials of the patch classifier",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", choices=("patch", "voxel"), required=True)
    parser.add_argument("--data", required=True, help="voxel: dataset; patch: prepared folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default="cpu", help="training preset: cpu or paper")
    parser.add_argument("--config", help="training config YAML (overrides --preset)")
    parser.add_argument("--seed", type=int, help="seed (default: the config's; patch: 0)")
    parser.add_argument("--variant", choices=("3d", "1slice", "5slices"), help="voxel variant")
    parser.add_argument("--folds", type=int, default=5, help="voxel: folds")
    parser.add_argument(
        "--fold",
        type=int,
        action="append",
        help="voxel: run only this fold (repeatable; folds already done are kept, and the "
        "summary is written once all are done)",
    )
    parser.add_argument("--apply-to", metavar="RUN", help="voxel: give RUN the operating point")
    parser.add_argument("--trials", type=int, default=5, help="patch: seeded trials")
    parser.add_argument("--device", help="voxel: torch device (default: CUDA if any)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    if args.model == "patch":
        from spinefx.evaluation.patch_demo import run_demo_training
        from spinefx.evaluation.patch_evaluation import format_summary

        result = run_demo_training(
            args.data,
            args.out,
            preset=args.config or args.preset,
            seed=args.seed or 0,
            trials=args.trials,
        )
        print(format_summary(result["evaluation"]))
        return 0
    from spinefx.cli.train_cmd import voxel_config
    from spinefx.evaluation.crossval import crossvalidate_voxel_dataset

    summary, problems = crossvalidate_voxel_dataset(
        voxel_config(args),
        args.out,
        n_folds=args.folds,
        folds=args.fold,
        device=args.device,
        apply_to=args.apply_to,
    )
    for case_id, problem in problems:
        print(f"skipped {case_id}: {problem}")
    print(json.dumps(summary, indent=2))
    if args.apply_to and "operating_point" in summary:
        print(f"operating point written to {args.apply_to}/operating_point.json")
    return 0
