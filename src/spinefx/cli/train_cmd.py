"""``spinefx train --model patch|voxel``: train either network into a run directory.

spinefx train --model patch --data PREPARED --out RUN [--preset cpu|paper] [--trials 5]
spinefx train --model voxel --data DATASET --out RUN [--preset cpu|paper] [--variant 3d]
spinefx train --recipe mixed-cpu --data REAL_SAMPLES --out DIR   (both, on the data engine)
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the patch classifier (Engstler 2022) or the voxel classifier (Nicolaes 2019)",
        description="Train a network into a run directory (config.yaml, splits.json, "
        "checkpoint.pt, history.csv, metrics.json, and last.ckpt, the training state saved "
        "after every epoch: --resume continues a stopped or killed run with the next epoch). "
        "--model patch (default) trains the vertebra patch classifier on the output of "
        "`spinefx prepare` (best validation F1 kept); --model voxel trains the whole-scan voxel "
        "classifier on a dataset (VerSe layout, BIDS-like or manifest CSV; lowest validation "
        "loss kept).",
    )
    parser.add_argument(
        "--model", choices=("patch", "voxel"), default="patch", help="which network to train"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="training config YAML (see spinefx/configs/)")
    source.add_argument("--preset", choices=("cpu", "paper"), help="packaged config preset")
    source.add_argument(
        "--recipe",
        help="train BOTH networks on a training-data engine recipe (e.g. mixed-cpu; see "
        "spinefx.training.recipes.RECIPES); --data is then the real sample folder",
    )
    parser.add_argument(
        "--exclude-subject",
        action="append",
        default=[],
        help="with --recipe: a real subject id that must not contribute (repeatable)",
    )
    parser.add_argument(
        "--data",
        help="patch: prepared folder (manifest.csv); voxel: dataset; --recipe: real samples",
    )
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--trials", type=int, default=1, help="seeded trials (paper: 5)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (trial i: seed+i)")
    parser.add_argument("--max-epochs", type=int, help="override the config's max_epochs")
    parser.add_argument("--patience", type=int, help="override early-stopping patience")
    parser.add_argument("--threads", type=int, help="torch CPU threads (config cpu_threads)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue --out's run from its last.ckpt, with the epoch after the last completed one",
    )
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto (Lightning)")
    parser.add_argument("--devices", default="1", help="devices per node (DDP when > 1)")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (DDP when > 1)")
    parser.add_argument("--variant", choices=("3d", "1slice", "5slices"), help="voxel variant")
    parser.add_argument("--device", help="voxel: torch device, e.g. cuda (default: CUDA if any)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    if args.recipe:
        from spinefx.training.recipes import get_recipe, train_recipe

        record = train_recipe(
            get_recipe(args.recipe),
            args.out,
            real_root=args.data,
            exclude_subjects=tuple(args.exclude_subject),
            seed=args.seed,
        )
        print(json.dumps(record, indent=2))
        return 0
    if not args.data:
        from spinefx.errors import InputError

        raise InputError("no training data", fix="pass --data (or --recipe)")
    if args.model == "voxel":
        return _train_voxel(args)
    from spinefx.runs.configs import load_training_config
    from spinefx.training.patch_training import LaunchOptions, train_patch_classifier

    config = load_training_config(args.config or args.preset or "cpu")
    if args.max_epochs is not None:
        config = config.replace(max_epochs=args.max_epochs)
    if args.patience is not None:
        config = config.replace(patience_epochs=args.patience)
    if args.threads is not None:
        config = config.replace(cpu_threads=args.threads)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    launch = LaunchOptions(accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes)
    metrics = train_patch_classifier(
        config,
        args.data,
        args.out,
        seed=args.seed,
        trials=args.trials,
        resume=args.resume,
        launch=launch,
    )
    best = metrics["best_val_metrics"]
    print(f"run directory: {args.out}")
    print("best validation metrics:", json.dumps(best))
    return 0


def voxel_config(args: argparse.Namespace):
    """The voxel training config of ``--preset``/``--config`` with ``--data/--variant/--seed``."""
    from spinefx.runs.configs import load_preset

    overrides: dict = {"data": args.data}
    if args.variant:
        overrides["model"] = {"variant": args.variant}
    if args.seed is not None:
        overrides["seed"] = args.seed
    return load_preset("voxel", args.config or args.preset or "cpu", **overrides)


def _train_voxel(args: argparse.Namespace) -> int:
    import json

    from spinefx.training.voxel import train_voxel_run

    metrics = train_voxel_run(voxel_config(args), args.out, device=args.device, resume=args.resume)
    print(f"run directory: {args.out}")
    print(json.dumps(metrics, indent=2))
    return 0
