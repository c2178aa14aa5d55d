"""Benchmark: the voxel classifier's patient answer, the paper's rule against spinefx's.

The paper (Nicolaes et al. 2019) calls a patient fractured when the largest fracture component
reaches the noise threshold ``t_n``. ``detect_fractures`` keeps that rule
(``component_positive``) but answers "inconclusive" where it disagrees with the vertebra flags
(a fracture region and no flagged vertebra, or a flagged vertebra and no region), because a
screening answer must point at a vertebra a reader can check. This benchmark counts, for the
shipped voxel model, how often each rule answers, is right and is **confidently wrong**:

* on every real CT with official grades in ``../shared/data/real`` (truth: a patient is
  fractured when any graded vertebra has Genant grade >= 1), with the masks' body centroids;
* on the real CTs without grades (TotalSegmentator, TPTBox: the answer only, no truth);
* on held-out synthetic scans (procedural generator, the held-out seed of
  ``bench_real_ct.py``), with their centroids.

Writes ``benchmarks/results/patient_answer.json``. Usage::

    nice python benchmarks/bench_patient_answer.py [--n-synthetic 12]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL = Path(os.environ.get("SPINEFX_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
SYNTH_SEED = 777_777  # bench_real_ct's held-out seed: no recipe trains on it


def _answer(run, ct, centroids) -> dict:
    from spinefx.inference.screening import detect_fractures

    result = detect_fractures(run, ct, centroids, show_progress=False)
    return {
        "paper_rule": bool(result.component_positive),
        "spinefx": result.patient_fractured,
        "state": result.patient_state,
        "note": result.patient_note,
        "flagged": [v.level for v in result.vertebrae if v.flagged],
        "regions": result.fracture_regions,
    }


def real_cases():
    """(name, CT, body centroids, truth or None) of every real CT with a mask."""
    from spinefx.morphometry.centroids import body_centroids
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    for subject in find_real_subjects(REAL):
        for scan in subject.ct_scans:
            ct, mask = load_real_pair(scan)
            truth = None
            if scan.grades:
                truth = any(grade >= 1 for grade, _ in scan.grades.values())
            yield scan.scan_id, ct, body_centroids(mask), truth


def synthetic_cases(folder: Path, n: int):
    from spinefx.io import load_centroids, load_dataset, load_scan
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(folder / "synth", n_scans=n, seed=SYNTH_SEED, preset="default")
    for case in load_dataset(root):
        image = load_scan(case.scan_path)
        centroids = load_centroids(case.centroids_path, image, outside="keep")
        graded = [v for v in case.vertebrae if v.genant_grade is not None]
        truth = any(v.genant_grade >= 1 for v in graded) if graded else None
        yield f"synthetic/{case.case_id}", image, centroids, truth


def tally(rows: list[dict], rule: str) -> dict:
    """Answers of one rule on the rows with a truth: right, confidently wrong, inconclusive."""
    known = [r for r in rows if r["truth"] is not None]
    answered = [r for r in known if r[rule] is not None]
    wrong = [r for r in answered if r[rule] != r["truth"]]
    return {
        "patients": len(known),
        "fractured": sum(bool(r["truth"]) for r in known),
        "answered": len(answered),
        "right": len(answered) - len(wrong),
        "confidently_wrong": len(wrong),
        "confidently_wrong_scans": [r["scan"] for r in wrong],
        "inconclusive": len(known) - len(answered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-synthetic", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from spinefx.runs import load_trained
    from spinefx.runs.shipped import shipped_run_dir

    torch.set_num_threads(args.threads)
    run = load_trained(shipped_run_dir("voxel"), expect="voxel")
    groups: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"synthetic_held_out": synthetic_cases(Path(tmp), args.n_synthetic)}
        if (REAL / "README.md").is_file():
            sources = {"real_ct": real_cases(), **sources}
        for group, cases in sources.items():
            rows = groups.setdefault(group, [])
            for name, ct, centroids, truth in cases:
                row = {"scan": name, "truth": truth, **_answer(run, ct, centroids)}
                rows.append(row)
                print(
                    f"{group:18s} {name[:40]:40s} truth {truth!s:5s} paper "
                    f"{row['paper_rule']!s:5s} spinefx {row['state']:12s} flagged "
                    f"{','.join(row['flagged']) or '-'}",
                    flush=True,
                )
    result = {
        "model": "shipped voxel classifier (src/spinefx/weights/voxel_classifier)",
        "truth": "patient fractured = any graded vertebra with Genant grade >= 1",
        "rules": {
            "paper_rule": "largest fracture component >= t_n (Nicolaes et al. 2019)",
            "spinefx": "the paper's rule where the vertebra flags agree, else inconclusive",
        },
    }
    for group, rows in groups.items():
        result[group] = {
            "paper_rule": tally(rows, "paper_rule"),
            "spinefx": tally(rows, "spinefx"),
            "scans": rows,
        }
        for rule in ("paper_rule", "spinefx"):
            t = result[group][rule]
            print(
                f"{group}: {rule:10s} answered {t['answered']}/{t['patients']}, right "
                f"{t['right']}, confidently wrong {t['confidently_wrong']}, inconclusive "
                f"{t['inconclusive']}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "patient_answer.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
