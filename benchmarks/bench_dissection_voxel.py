"""Dissection of the voxel classifier, both pathways: do its fracture units look at fractures?

For a voxel-classifier run (default: the shipped one), dissect the last layer of the normal and
of the subsampled pathway on synthetic scans with ground-truth concepts (vertebral body,
endplates, fracture zone, posterior elements, disc, adjacent vertebra;
``spinefx.interpretation.voxel_dissection``), one sample per graded vertebra, and compare the
mean concept IoU of the 10 units most correlated with true positives against random 10-unit sets
(permutation p-value, bootstrap interval of the difference, ratio top / random), as
``bench_dissection_concepts.py`` does for the patch classifier.

    nice python benchmarks/bench_dissection_voxel.py [--run RUN] [--n-scans 24]

Writes ``benchmarks/results/dissection_voxel.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONCEPTS = ("superior_endplate", "inferior_endplate", "fracture_zone")
SINGLE = (
    *CONCEPTS,
    "vertebral_body",
    "posterior_elements",
    "intervertebral_disc",
    "adjacent_vertebra",
)


def main() -> None:
    from spinefx.interpretation.voxel_dissection import concept_comparison, dissect_voxel_run
    from spinefx.runs.shipped import read_manifest, shipped_run_dir, weights_checksum
    from spinefx.synthesis import generate_dataset

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="voxel-classifier run (default: shipped)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/spinefx-bench-dissection-voxel"))
    parser.add_argument("--n-scans", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--preset", default="default", help="synthesis preset")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--out", default="dissection_voxel.json")
    args = parser.parse_args()
    run = args.run or shipped_run_dir("voxel")
    data = args.work / f"synth-{args.preset}-{args.n_scans}-seed{args.seed}"
    start = time.time()
    if not (data / "fracture_grades.csv").is_file():
        generate_dataset(data, n_scans=args.n_scans, seed=args.seed, preset=args.preset, workers=2)
    synth_s = time.time() - start
    start = time.time()
    result = dissect_voxel_run(run, data, quantile=0.005)
    dissect_s = time.time() - start
    out = {
        "question": "mean concept IoU of the top-10 TP-correlated units of each voxel-classifier "
        "pathway vs random units",
        "setup": {
            "run": str(run),
            "weights_sha256": weights_checksum(run),
            "shipped_recipe": read_manifest().get("recipe") if args.run is None else None,
            "synthetic_scans": args.n_scans,
            "synth_preset": args.preset,
            "seed": args.seed,
            "quantile": 0.005,
            "n_vertebrae": result["n_vertebrae"],
            "sample": "segment pair whose 24^3 output block (network view) is centred on the "
            "vertebral-body centroid; prediction = mean p(fractured) of its central 5^3",
            "tp_set": "operating point of maximal Youden J over the dissected vertebrae",
            "iou": "over each unit's 10 top fractured samples, cell-footprint masks on the "
            "output block (normal: 1 cell per voxel; subsampled: 1 cell per 3^3 voxels)",
            "random_draws": args.draws,
        },
        "pathways": {},
        "timings_s": {"synth": round(synth_s, 1), "dissect": round(dissect_s, 1)},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }
    for pathway, dissection in result["dissections"].items():
        from sklearn.metrics import roc_auc_score

        labels, probs = dissection.labels, dissection.probabilities
        entry = {
            "layer": dissection.layer,
            "units": dissection.n_units,
            "activation_shape": list(dissection.activation_shape),
            "auc_dissected": float(roc_auc_score(labels, probs))
            if labels.min() < labels.max()
            else None,
            "n_fractured": int(labels.sum()),
            "results": {
                "endplates_and_fracture_zone": concept_comparison(
                    dissection, CONCEPTS, n_draws=args.draws, seed=args.seed
                ),
                **{
                    c: concept_comparison(dissection, (c,), n_draws=args.draws, seed=args.seed)
                    for c in SINGLE
                },
            },
        }
        out["pathways"][pathway] = entry
        for name, r in entry["results"].items():
            ratio = r["ratio_top_to_random"]
            print(
                f"{pathway:10s} {name:28s} top-10 {r['top_mean_iou']:.4f}  random "
                f"{r['random_mean_iou']:.4f}  ratio {ratio if ratio is None else round(ratio, 2)}  "
                f"p = {r['permutation_p_value']:.4f}"
            )
    path = RESULTS / args.out
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
