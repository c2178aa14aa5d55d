"""``spinefx synth``: write a synthetic spine CT dataset in the VerSe layout."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate synthetic spine CTs with Genant-graded fractures",
        description="Write N synthetic CTs (VerSe layout, masks, centroids, fracture_grades.csv).",
    )
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--n-scans", type=int, default=10, help="number of scans (default 10)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (same seed -> same bytes)")
    p.add_argument(
        "--preset",
        default="default",
        help="default | small | thoracolumbar | clean (default: default)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="processes (the files do not depend on it)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.errors import InputError
    from spinefx.synthesis import generate_dataset, preset

    if args.n_scans < 1:
        raise InputError(f"--n-scans must be >= 1, got {args.n_scans}", fix="pass a positive count")
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}", fix="pass 1 or more")
    config = preset(args.preset)
    root = generate_dataset(
        args.out,
        n_scans=args.n_scans,
        seed=args.seed,
        preset=args.preset,
        config=config,
        workers=args.workers,
    )
    print(f"wrote {args.n_scans} synthetic scans to {root}")
    return 0
