"""``spinefx engine``: build a mixed training set from the three training-data sources."""

from __future__ import annotations

import argparse


def _share(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SOURCE=SHARE, got {text!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "engine",
        help="build fracture-labelled training CT: procedural, mask rendering, real-CT fractures",
        description="Mix the three training-data sources (procedural generator, real masks "
        "rendered into CT, fractures simulated on real CTs) into one dataset (manifest.csv) "
        "that `spinefx prepare` and both trainers read.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-scans", type=int, default=48, help="scans in all")
    parser.add_argument(
        "--mix",
        nargs="+",
        type=_share,
        default=[("procedural", 1.0), ("mask_render", 1.0), ("real_fracture", 2.0)],
        metavar="SOURCE=SHARE",
        help="shares of procedural, mask_render, real_fracture (default 1 1 2)",
    )
    parser.add_argument(
        "--procedural-preset", default="default", help="synthesis preset of the procedural source"
    )
    parser.add_argument("--real", help="real sample folder (../shared/data/real)")
    parser.add_argument("--exclude-subject", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--shippable-only",
        action="store_true",
        help="only real data whose licence allows shipping trained weights",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.synthesis.engine import EngineConfig, build_training_data

    try:
        config = EngineConfig(
            n_scans=args.n_scans,
            mix=dict(args.mix),
            procedural_preset=args.procedural_preset,
            exclude_subjects=tuple(args.exclude_subject),
            shippable_only=args.shippable_only,
            seed=args.seed,
        )
    except ValueError as exc:
        from spinefx.errors import InputError

        raise InputError(str(exc), fix="see spinefx engine --help") from None
    manifest = build_training_data(config, args.out, real_root=args.real, workers=args.workers)
    print(f"training set: {manifest} ({config.counts()})")
    return 0
