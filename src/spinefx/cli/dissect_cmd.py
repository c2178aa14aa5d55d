"""``spinefx dissect``: network dissection of a trained run (atlas, exports, HTML index)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dissect",
        help="network dissection: unit thresholds, fracture correlations, concept atlas",
        description="Dissect a layer of a trained patch classifier over prepared patches; "
        "writes OUT/atlas.yaml (previous kept as atlas.prev.yaml), per-unit collages, slice "
        "strips and NIfTI files, and OUT/index.html.",
    )
    p.add_argument("run_dir", help="run directory with checkpoint.pt")
    p.add_argument("--data", required=True, help="prepared folder (spinefx prepare output)")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/dissection)")
    p.add_argument(
        "--layer", default=None, help="module name (default: the model's last encoder level)"
    )
    p.add_argument("--quantile", type=float, default=0.005, help="upper tail q, P(a > T) = q")
    p.add_argument("--split", default="test", help="manifest split, or 'all' (default test)")
    p.add_argument(
        "--positive-set",
        choices=("tp", "gt", "pred"),
        default="tp",
        help="samples c_k ranks by: true positives (default), GT or predicted positives",
    )
    p.add_argument(
        "--score",
        choices=("max", "mean"),
        default="max",
        help="per-sample unit score for top samples",
    )
    p.add_argument("--export-units", type=int, default=16, help="best-ranked units to export")
    p.add_argument(
        "--decision-threshold",
        type=float,
        default=None,
        help="probability for a predicted fracture (default: the checkpoint's)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.interpretation import dissect_run

    result = dissect_run(
        args.run_dir,
        args.data,
        args.out,
        layer=args.layer,
        quantile=args.quantile,
        split=args.split,
        positive_set=args.positive_set,
        score=args.score,
        export_units=args.export_units,
        batch_size=args.batch_size,
        decision_threshold=args.decision_threshold,
    )
    groups = result.atlas["groups"]
    print(
        f"dissected {result.atlas['layer']} over {result.atlas['n_samples']} samples "
        f"(TP {groups['tp']}, FP {groups['fp']}, TN {groups['tn']}, FN {groups['fn']})"
    )
    print(f"atlas: {result.atlas_path}")
    print(f"index: {result.index_path}")
    return 0
