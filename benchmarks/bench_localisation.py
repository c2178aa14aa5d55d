"""Benchmark: vertebra localisation on real CT (issue 14), against the vertebra masks.

Side by side, on every real CT in ``../shared/data/real`` that has a vertebra mask, and on
held-out synthetic scans:

* ``anatomy``: :func:`spinefx.inference.ct_localisation.localise_spine` (bone, the bodies'
  shells and what they enclose, the discs; levels from the sacrum / twelfth ribs);
* ``heatmap``: the same with the bodies from the body-centre heatmap network
  (:mod:`spinefx.models.body_heatmap`; the shipped weights or ``--heatmap-weights``, repeated
  for models trained on folds of the real CTs), completed by the bone analysis on its spine;
  each scan is scored by the first model that saw neither its CT nor a rendering of its mask
  (``body_heatmap.json`` lists them), and not at all if every model saw it;
* ``network``: the earlier method, the shipped voxel classifier's vertebra map cut into
  components (:func:`spinefx.inference.localisation.localise_vertebrae`) with its
  plausibility check (a refusal counts as nothing found).

Figures per scan and pooled (:func:`spinefx.evaluation.localisation.score_localisation`): the
share of the vertebrae in view found within 10 mm of the mask's body centroid, the median
error, detections outside the spine, and levels right / reported uncertain / confidently wrong.

Rendered from real masks: one CT rendered from each real vertebra mask whose subject has no CT
in the folder (:func:`rendered_cases`; real spine geometry, randomised tissue).

Full field of view: the real abdominal CT (TotalSegmentator example) resampled to 1 mm and
padded with air to 400 x 400 x 500 voxels; ``spinefx detect`` without centroids timed in a
fresh process each, alternated, the faster of two runs each (peak memory from the OS): with the
anatomy localiser and spine-region screening (the new default) against the whole-volume tiler
with the network localisation.

Usage:
    python benchmarks/bench_localisation.py [--threads 2] [--skip-full-fov | --only-full-fov]
        [--heatmap-weights fold1/body_heatmap.pt --heatmap-weights fold2/body_heatmap.pt]

Writes ``benchmarks/results/localisation.json`` and ``localisation_vertebrae.csv``.

The committed ``localisation.json`` scores the shipped heatmap weights (``make
localiser-weights``: no real CT trained on). ``localisation_heatmap_realct_cv.json`` is the
ablation that trains on the real CTs as well, cross-validated over two folds of those that may
be trained on (ctfu, internal testing only, is never trained on and is scored by fold 1)::

    COMMON="--real-data ../shared/data/real --shippable-only --draws-per-mask 12 \\
        --procedural 24 --steps 600 --focal-steps 300 --seed 0"
    spinefx train-localiser --out fold1 $COMMON --ct-subject verse007 --ct-subject totalseg
    spinefx train-localiser --out fold2 $COMMON --ct-subject verse006 --ct-subject verse008 \\
        --ct-subject tptbox
    python benchmarks/bench_localisation.py --skip-full-fov \\
        --heatmap-weights fold1/body_heatmap.pt --heatmap-weights fold2/body_heatmap.pt
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
RESULT_FILE = RESULTS / "localisation.json"
REAL = Path(
    os.environ.get("SPINEFX_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/real")
)
FULL_FOV_VOX = (400, 400, 500)


def real_cases():
    """(name, CT Image, VerSe-id mask Image) of every real CT with a vertebra mask."""
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    for subject in find_real_subjects(REAL):
        for scan in subject.ct_scans:
            ct, mask = load_real_pair(scan)
            yield scan.scan_id, ct, mask


#: Seed of the CTs rendered from real masks (never used for training or any other figure).
RENDER_SEED = 991100


def rendered_cases():
    """(name, CT Image, mask Image): one CT rendered (:mod:`spinefx.synthesis.mask_render`,
    60 mm around the vertebrae, on the mask's own grid) from each real vertebra mask whose
    subject has no CT here, so no subject of the real section is among them. Real spine
    geometry (cervical to lumbar, long scans, narrow VerSe fields of view) with randomised
    tissue: a development set for the localiser larger than the real one. Some of these
    masks are CC BY-NC-SA: used here for evaluation only."""
    from spinefx.synthesis.dataset import case_rng
    from spinefx.synthesis.mask_render import crop_to_labels
    from spinefx.synthesis.mask_render_config import MaskRenderConfig
    from spinefx.synthesis.mask_scan import render_ct, sample_render_params
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_mask

    config, index = MaskRenderConfig(), 0
    for subject in find_real_subjects(REAL):
        if subject.ct_scans:
            continue
        for scan in subject.scans:
            crop = crop_to_labels(load_real_mask(scan), margin_mm=60.0)
            params = sample_render_params(case_rng(RENDER_SEED, index), config)
            index += 1
            ct, labels = render_ct(crop, params, grid=None)
            # whole HU, as a CT file stores them
            ct = ct.with_data(np.rint(np.asarray(ct.data)).astype(np.int16))
            yield (
                f"rendered/{scan.scan_id}",
                ct,
                labels.with_data(np.asarray(labels.data).astype(np.int16)),
            )


def synthetic_cases(folder: Path, n: int):
    """Held-out synthetic scans (seed 7001, never used for training) with their masks."""
    from spinefx.io import load_scan
    from spinefx.io.nifti import read_nifti
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(folder / "synth", n_scans=n, seed=7001, preset="default")
    for ct_path in sorted(root.glob("rawdata/*/*_ct.nii.gz")):
        sub = ct_path.name.removesuffix("_ct.nii.gz")
        mask = read_nifti(root / "derivatives" / sub / f"{sub}_seg-vert_msk.nii.gz")
        yield f"synthetic/{sub}", load_scan(ct_path), mask


def _anatomy(ct, body_net=None) -> tuple[list[dict], float, dict]:
    from spinefx.inference.ct_localisation import localise_spine

    start = time.perf_counter()
    loc = localise_spine(ct, body_net=body_net)
    seconds = time.perf_counter() - start
    dets = [
        {
            "label": v.label,
            "centroid_mm": v.centroid_mm.tolist(),
            "certain": v.level_confidence == "anchored",
        }
        for v in loc.vertebrae
    ]
    return dets, seconds, {"anchor": loc.anchor, "source": loc.source, "notes": loc.notes}


def _network(ct, run) -> tuple[list[dict], float, dict]:
    from spinefx.errors import SpinefxError
    from spinefx.inference.screening import detect_fractures

    start = time.perf_counter()
    try:
        result = detect_fractures(
            run, ct, None, spine_roi=False, localiser="network", show_progress=False
        )
    except SpinefxError as exc:
        return [], time.perf_counter() - start, {"refused": str(exc).splitlines()[0]}
    seconds = time.perf_counter() - start
    # the earlier localisation's levels come from the pitch profile: never anchored
    dets = [
        {"label": v.vertebra_label, "centroid_mm": list(v.centroid_mm), "certain": True}
        for v in result.vertebrae
    ]
    return dets, seconds, {}


def _truth(mask):
    from spinefx.morphometry.centroids import body_centroids

    return body_centroids(mask)


def pooled(rows: list[dict]) -> dict:
    n_truth = sum(r["n_truth"] for r in rows)
    n_found = sum(r["n_found"] for r in rows)
    errors = [v["error_mm"] for r in rows for v in r["per_vertebra"] if v["found"]]
    right = sum(r["levels_right"] for r in rows)
    unc = sum(r["levels_uncertain"] for r in rows)
    wrong = sum(r["levels_wrong"] for r in rows)
    n_lv = right + unc + wrong
    return {
        "scans": len(rows),
        "vertebrae_in_view": n_truth,
        "found_within_10mm": n_found,
        "found_rate": n_found / n_truth if n_truth else None,
        "median_error_mm": float(np.median(errors)) if errors else None,
        "detections": sum(r["n_detected"] for r in rows),
        "detections_outside_spine": sum(r["n_outside_spine"] for r in rows),
        "levels_right": right,
        "levels_uncertain": unc,
        "levels_confidently_wrong": wrong,
        "confidently_wrong_rate": wrong / n_lv if n_lv else None,
    }


def compare(cases, run, csv_rows: list[dict], group: str, heatmap=None) -> dict:
    """Every method on every case; ``heatmap``: the list of :func:`_heatmaps` (empty: not
    scored)."""
    from spinefx.evaluation.localisation import score_localisation

    out = {"anatomy": [], "network": []}
    if heatmap:
        out["heatmap"] = []
    for name, ct, mask in cases:
        truth = _truth(mask)
        for method in out:
            if method == "anatomy":
                dets, seconds, extra = _anatomy(ct)
            elif method == "heatmap":
                unseen = [i for i, h in enumerate(heatmap) if name.split("/")[-1] not in h[1]]
                if not unseen:
                    continue  # every model saw this scan (its mask rendered or its CT)
                dets, seconds, extra = _anatomy(ct, heatmap[unseen[0]][0])
                extra = {"heatmap_model": unseen[0], **extra}
            else:
                dets, seconds, extra = _network(ct, run)
            score = score_localisation(dets, truth, mask)
            row = {"scan": name, "seconds": round(seconds, 2), **extra, **score}
            out[method].append(row)
            for v in score["per_vertebra"]:
                csv_rows.append({"group": group, "method": method, "scan": name, **v})
            print(
                f"{group:9s} {method:8s} {name[:34]:34s} found {score['n_found']}/"
                f"{score['n_truth']} median {score['median_error_mm']:.1f} mm, outside "
                f"{score['n_outside_spine']}, levels right/uncertain/wrong "
                f"{score['levels_right']}/{score['levels_uncertain']}/{score['levels_wrong']}"
                f" ({seconds:.1f} s) {extra}",
                flush=True,
            )
    return {m: {"pooled": pooled(rows), "scans": rows} for m, rows in out.items()}


def _heatmaps(paths: list[str] | None) -> list[tuple]:
    """``[(network, ids of the scans it saw, what made it)]``: the weights given (default: the
    shipped ones, if any). A scan is scored by the first model that did not see it (its mask
    rendered or its CT trained on), so models trained on folds of the real CTs give
    cross-validated figures."""
    from spinefx.errors import InputError
    from spinefx.models.body_heatmap import load_heatmap_net, read_heatmap_record
    from spinefx.runs.shipped import sha256, shipped_heatmap_weights

    out = []
    for path in paths or [shipped_heatmap_weights()]:
        weights = Path(path)
        if not weights.is_file():
            print(f"no heatmap weights at {weights}: the heatmap localiser is not scored")
            continue
        try:  # without the record, the cases it saw are unknown
            meta = read_heatmap_record(weights)
        except InputError as exc:
            raise SystemExit(str(exc)) from None
        seen = {
            c["name"].removeprefix("render-").rsplit("-", 1)[0]
            for c in meta["cases"]
            if c["source"] == "mask_render"
        } | {c["name"].removeprefix("realct-") for c in meta["cases"] if c["source"] == "real_ct"}
        out.append((load_heatmap_net(weights), seen, {
            "file": str(weights),
            "sha256": sha256(weights),
            "recipe": meta["recipe"],
            "shippable": meta["shippable"],
            "minutes": meta["minutes"],
            "saw_scans": sorted(seen),
        }))  # fmt: skip
        print(f"heatmap weights {weights}: saw {sorted(seen)}")
    return out


def full_fov_scan(folder: Path) -> Path | None:
    """The real abdominal CT at 1 mm, padded with air to :data:`FULL_FOV_VOX` (centred)."""
    import nibabel as nib

    from spinefx.io import load_scan
    from spinefx.preprocessing.resample import resample_to_grid

    source = REAL / "totalseg/example_ct.nii.gz"
    if not source.is_file():
        return None
    ct = load_scan(source)
    shape = np.array(FULL_FOV_VOX)
    directions = ct.affine[:3, :3] / ct.spacing_mm
    centre = ct.voxel_to_world((np.array(ct.shape) - 1) / 2)
    affine = np.eye(4)
    affine[:3, :3] = directions
    affine[:3, 3] = centre - directions @ ((shape - 1) / 2)
    big = resample_to_grid(ct, shape=tuple(shape), affine=affine, fill_value=-1000.0)
    path = folder / "abdomen_400x400x500_1mm.nii.gz"
    nib.save(nib.Nifti1Image(big.data.astype(np.int16), affine), path)
    return path


def _timed_detect(scan: Path, out: Path, extra: list[str]) -> dict:
    """``spinefx detect SCAN`` in a fresh process: wall seconds and peak RSS (GB)."""
    command = [sys.executable, "-m", "spinefx", "detect", str(scan), "--out", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB -> GiB
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return {"seconds": round(seconds, 1), "peak_gb_so_far": round(peak, 2),
            "exit": proc.returncode, "tail": tail}  # fmt: skip


def full_fov_comparison(tmp: Path) -> dict | None:
    """The full-field-of-view timing (module docstring); None without the real CT."""
    scan = full_fov_scan(tmp)
    if scan is None:
        return None
    # one fresh process per run, alternated, faster of two each (the machines are noisy);
    # peak RSS of children is a running maximum over every run so far
    runs = {"new": [], "old": []}
    for _ in range(2):
        runs["new"].append(_timed_detect(scan, tmp / "new", []))
        runs["old"].append(
            _timed_detect(scan, tmp / "old", ["--whole-volume", "--localiser", "network"])
        )
    new = min(runs["new"], key=lambda r: r["seconds"])
    old = min(runs["old"], key=lambda r: r["seconds"])
    # the optional heatmap localiser, last (its peak memory then says only about itself)
    from spinefx.runs.shipped import shipped_heatmap_weights

    heatmap = None
    if shipped_heatmap_weights().is_file():
        runs["heatmap"] = [
            _timed_detect(scan, tmp / "heatmap", ["--localiser", "heatmap"]) for _ in range(2)
        ]
        heatmap = min(runs["heatmap"], key=lambda r: r["seconds"])
    fov = {
        "scan": f"TotalSegmentator example CT at 1 mm, padded to {FULL_FOV_VOX}",
        "anatomy_localiser_spine_region": new,
        "network_localiser_whole_volume": old,
        "heatmap_localiser_spine_region": heatmap,
        "all_seconds": {k: [r["seconds"] for r in v] for k, v in runs.items()},
        "speedup": round(old["seconds"] / max(new["seconds"], 1e-6), 2),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    print("full FOV:", json.dumps(fov, indent=1))
    return fov


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-synthetic", type=int, default=4)
    parser.add_argument("--skip-full-fov", action="store_true")
    parser.add_argument(
        "--heatmap-weights",
        action="append",
        help="body_heatmap.pt to score as 'heatmap' (default: the shipped weights, if any); "
        "repeat it for models trained on folds of the real CTs: each scan is scored by the "
        "first that did not see it",
    )
    parser.add_argument(
        "--only-full-fov",
        action="store_true",
        help="rerun only the full-FOV timing; the other sections of the JSON are kept",
    )
    args = parser.parse_args()
    import torch

    from spinefx.runs import load_trained
    from spinefx.runs.shipped import shipped_run_dir

    torch.set_num_threads(args.threads)
    previous = json.loads(RESULT_FILE.read_text()) if RESULT_FILE.is_file() else {}
    if args.only_full_fov:  # the other sections of the last run are kept
        result = previous
        with tempfile.TemporaryDirectory() as tmp:
            fov = full_fov_comparison(Path(tmp))
        if fov is None:
            print("the real abdominal CT is absent: nothing measured")
            return 1
        result["full_fov"] = fov
        RESULTS.mkdir(exist_ok=True)
        RESULT_FILE.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {RESULT_FILE} (full_fov only)")
        return 0
    run = load_trained(shipped_run_dir("voxel"), expect="voxel")
    heatmap = _heatmaps(args.heatmap_weights)
    csv_rows: list[dict] = []
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
        },  # fmt: skip
        "targets": "found >= 95 % within 10 mm, median <= 4 mm, no detection outside the spine; "
        "levels right >= 90 % where the sacrum or twelfth ribs are in view, confidently wrong "
        "<= 5 %; full FOV <= 20 s and <= 4 GB",
    }
    if heatmap:
        result["heatmap_weights"] = [h[2] for h in heatmap]
    if args.skip_full_fov and "full_fov" in previous:  # the last full-FOV timing is kept
        result["full_fov"] = previous["full_fov"]
    if (REAL / "README.md").is_file():
        result["real_ct"] = compare(real_cases(), run, csv_rows, "real", heatmap)
        result["rendered_from_real_masks"] = compare(
            rendered_cases(), run, csv_rows, "rendered", heatmap
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["synthetic_held_out"] = compare(
            synthetic_cases(tmp, args.n_synthetic), run, csv_rows, "synthetic", heatmap
        )
        if not args.skip_full_fov:
            fov = full_fov_comparison(tmp)
            if fov is not None:
                result["full_fov"] = fov
    for group in ("real_ct", "rendered_from_real_masks", "synthetic_held_out"):
        if group in result:
            for method in result[group]:
                print(group, method, json.dumps(result[group][method]["pooled"]))
    RESULTS.mkdir(exist_ok=True)
    RESULT_FILE.write_text(json.dumps(result, indent=2, default=float) + "\n")
    with (RESULTS / "localisation_vertebrae.csv").open("w", newline="") as handle:
        keys = sorted({k for r in csv_rows for k in r})
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(csv_rows)
    print(f"wrote {RESULT_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
