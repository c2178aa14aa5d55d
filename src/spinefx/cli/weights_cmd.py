"""``spinefx weights show|verify|build``: the default weights that ship with spinefx.

spinefx weights show                 recipe, code version, training data, figures
spinefx weights verify               every file against MANIFEST.json, outputs on the reference scan
spinefx weights build --data REAL    retrain them from seeds (what `make weights` runs)
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="show, verify or rebuild the default weights used when no --model is given",
        description="The default patch- and voxel-classifier weights inside spinefx "
        "(docs/model-card.md): show their manifest, verify checksums and recorded outputs, or "
        "rebuild them from seeds with the default training recipe.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("show", help="print the manifest (recipe, data, licences, figures)")
    sub.add_parser("verify", help="check checksums and the outputs on the reference scan")
    build = sub.add_parser("build", help="train and package the default weights (minutes)")
    build.add_argument("--data", required=True, help="real sample folder (../shared/data/real)")
    build.add_argument("--work", default="build/default-weights", help="training folder")
    build.add_argument("--recipe", default="default-cpu", help="a shippable training recipe")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", help="weights folder (default: the package's own)")
    build.add_argument(
        "--benchmark",
        default="benchmarks/results/real_ct.json",
        help="real-CT benchmark results whose figures go into the manifest",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from spinefx.runs.shipped import (
        read_manifest,
        shipped_heatmap_weights,
        verify_shipped,
        weights_dir,
    )

    if args.action == "show":
        manifest = read_manifest()
        if not manifest:
            print(f"no default weights in {weights_dir()}: run `make weights`")
            return 1
        shown = {k: v for k, v in manifest.items() if k != "files"}
        heatmap = shipped_heatmap_weights()
        if heatmap.is_file():  # the optional localiser: what made it, not every case
            from spinefx.models.body_heatmap import read_heatmap_record

            record = read_heatmap_record(heatmap)
            cases = record["cases"]
            shown["body_heatmap"] = {
                "recipe": record.get("recipe"),
                "cases_per_source": {
                    src: sum(c["source"] == src for c in cases)
                    for src in sorted({c["source"] for c in cases})
                },
                "subjects": sorted({c["subject"] for c in cases if c["subject"]}),
                "licences": sorted({c["licence"] for c in cases}),
                "sha256": record.get("sha256"),
                "code_version": record.get("code_version"),
            }
        print(json.dumps(shown, indent=2))
        return 0
    if args.action == "verify":
        return _verify(verify_shipped())
    from spinefx.release.weights import build_shipped_weights

    benchmark = Path(args.benchmark) if Path(args.benchmark).is_file() else None
    manifest = build_shipped_weights(
        args.data,
        args.work,
        recipe=args.recipe,
        seed=args.seed,
        target=args.out,
        benchmark=benchmark,
    )
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))
    return 0


def _verify(problems: list[str]) -> int:
    import json

    import numpy as np

    from spinefx.release.weights import reference_outputs
    from spinefx.runs.shipped import KIND_FOLDERS, REFERENCE, weights_dir

    if problems:
        print("the default weights do not match their manifest:")
        print("\n".join(f"  {p}" for p in problems))
        return 1
    root = weights_dir()
    recorded = json.loads((root / REFERENCE).read_text(encoding="utf-8"))
    now = reference_outputs(root / KIND_FOLDERS["patch"], root / KIND_FOLDERS["voxel"])
    worst = max(
        abs(recorded[kind][level] - now[kind].get(level, np.nan))
        for kind in KIND_FOLDERS
        for level in recorded[kind]
    )
    ok = bool(np.isfinite(worst) and worst <= 1e-4)
    print(
        f"checksums: ok; reference scan: largest difference {worst:.2e} ({'ok' if ok else 'FAILED'})"
    )
    return 0 if ok else 1
