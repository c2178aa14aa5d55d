"""``spinefx evaluate RUN_DIR``: vertebra-level metrics, breakdowns and ROC/PR plots."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained patch-classifier run on a data split",
        description="Score every trial of a run (F1, accuracy, AUC, AP, sensitivity, "
        "specificity; by Genant grade and level; mean +- std over trials) and write "
        "evaluation_<split>.json, predictions_<split>.csv, roc_<split>.png, pr_<split>.png.",
    )
    parser.add_argument("run_dir", help="run directory made by spinefx train")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    parser.add_argument("--data", help="prepared folder to test on (default: training data)")
    parser.add_argument("--name", default="", help="suffix of the output files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.evaluation.patch_evaluation import evaluate_run, format_summary

    result = evaluate_run(args.run_dir, split=args.split, data_dir=args.data, name=args.name)
    print(format_summary(result))
    return 0
