"""``spinefx train-localiser``: train the body-centre heatmap network on the data engine."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-localiser",
        help="train the body-centre heatmap network (for --localiser heatmap)",
        description=(
            "Render CTs from real vertebra masks (a randomised tissue model per draw) and "
            "generate procedural scans, then train the small 3-D U-Net whose heatmap peaks "
            "are the vertebral-body centres. Writes OUT/body_heatmap.pt and "
            "OUT/body_heatmap.json (sources, licences, seeds, minutes); the rendered cases "
            "are cached in OUT/cases, so an interrupted run resumes."
        ),
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--real-data",
        help="folder of real masks (the layout of ../shared/data/real); default: none, "
        "procedural scans only",
    )
    p.add_argument(
        "--mask-subject",
        action="append",
        dest="mask_subjects",
        help="render this real subject's masks (repeatable; default: every subject without "
        "a CT in --real-data, so that the real CTs stay unseen for scoring)",
    )
    p.add_argument(
        "--ct-subject",
        action="append",
        dest="ct_subjects",
        help="train on this real subject's CT itself (repeatable; default none, so that every "
        "real CT stays unseen for scoring; bench_localisation skips the CTs a model saw)",
    )
    p.add_argument(
        "--shippable-only",
        action="store_true",
        help="only masks whose licence allows shipping the weights",
    )
    p.add_argument("--draws-per-mask", type=int, default=4, help="rendered CTs per mask")
    p.add_argument("--procedural", type=int, default=16, help="procedural scans")
    p.add_argument("--steps", type=int, default=600, help="optimisation steps")
    p.add_argument(
        "--loss",
        choices=("mse", "focal"),
        default="mse",
        help="loss of the first --steps (default mse: finds the bodies)",
    )
    p.add_argument(
        "--focal-steps",
        type=int,
        default=300,
        help="further steps with the focal loss, which sharpens the peaks (default 300; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--install",
        action="store_true",
        help="then copy the weights into spinefx's shipped weights folder (the default of "
        "--localiser heatmap); refused unless every training case may ship",
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from spinefx.errors import InputError
    from spinefx.training.body_heatmap import HeatmapRecipe, train_heatmap

    torch.set_num_threads(args.threads)
    real = Path(args.real_data) if args.real_data else None
    if real is not None and not real.is_dir():
        raise InputError("no such folder", path=real, fix="pass the folder of real masks")
    if args.steps < 1 or min(args.draws_per_mask, args.procedural, args.focal_steps) < 0:
        raise InputError(
            "--steps must be >= 1, --draws-per-mask, --procedural and --focal-steps >= 0"
        )
    recipe = HeatmapRecipe(
        mask_subjects=args.mask_subjects,
        ct_subjects=args.ct_subjects,
        shippable_only=args.shippable_only,
        draws_per_mask=args.draws_per_mask,
        n_procedural=args.procedural,
        seed=args.seed,
        steps=args.steps,
        loss=args.loss,
        focal_steps=args.focal_steps,
    )
    weights = train_heatmap(Path(args.out), recipe, real)
    print(f"wrote {weights}")
    if args.install:
        from spinefx.release.weights import install_heatmap

        print(f"installed {install_heatmap(weights)}")
    return 0
