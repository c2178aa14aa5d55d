"""``spinefx demo``: the whole pipeline end to end on generated synthetic spine CT."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on synthetic spine CT (what `make demo` runs)",
        description="Synthesise scans, screen a test scan and write its draft report with the "
        "shipped models; then (unless --skip-training) prepare patches, train + evaluate the "
        "patch classifier, dissect it, train the voxel classifier and screen the same scan "
        "with the models just trained.",
    )
    p.add_argument("--out", default="demo_output", help="output folder (re-running resumes)")
    p.add_argument("--n-scans", type=int, default=48, help="synthetic scans to generate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patch-epochs", type=int, default=None, help="patch epochs (default 6)")
    p.add_argument("--voxel-epochs", type=int, default=None, help="voxel epochs (default 3)")
    p.add_argument(
        "--skip-training", action="store_true", help="use the shipped models only (no training)"
    )
    p.add_argument("--no-voxel", action="store_true", help="skip the voxel classifier")
    p.add_argument("--workers", type=int, default=2, help="processes for patch preparation")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from spinefx.demo import run_demo

    result = run_demo(
        args.out,
        n_scans=args.n_scans,
        seed=args.seed,
        patch_epochs=args.patch_epochs,
        voxel_epochs=args.voxel_epochs,
        with_voxel=not args.no_voxel,
        workers=args.workers,
        train=not args.skip_training,
    )
    print("\nspinefx demo finished")
    for stage, seconds in result.seconds.items():
        print(f"  {stage:<24} {seconds:>7.1f} s")
    print("\nresults:")
    print(json.dumps(result.summary, indent=2, default=str))
    print("\noutputs:")
    for name, path in result.paths.items():
        print(f"  {name:<20} {path}")
    print("\nbrowse a scan with the shipped models: spinefx app   (http://127.0.0.1:8501)")
    return 0
