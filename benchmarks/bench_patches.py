"""Benchmark: spine-aligned patch extraction on the real CTs, against a straightforward reference.

spinefx: spine curve + frames, one SimpleITK conversion per scan, one SimpleITK resample per
patch straight from the native grid (any orientation/spacing), out-of-view fraction.
reference: the textbook pipeline: reorient + resample the whole volume to 1 mm isotropic RAS
(scipy.ndimage.affine_transform), then scipy.ndimage.map_coordinates per patch.

Throughput = vertebrae per second of 96^3 patches at 1 mm, including the spine-frame
computation; scan loading is timed separately. Peak memory = maxrss of a fresh subprocess per
implementation (after loading the scans, and after extracting). Both implementations must give
the same patch (max abs difference reported, in HU).

Usage: ``python benchmarks/bench_patches.py [--repeats 10]``; writes
``benchmarks/results/patches.json``. Skips (exit 0, message) when the real CTs are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SPINEFX_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
RESULT = ROOT / "benchmarks" / "results" / "patches.json"
SIZE_VOX, SPACING_MM = 96, 1.0
CTFU = "ctfu/{raw}/sub-ctfu00001/{ses}/sub-ctfu00001_{ses}{split}_ce-no_{suffix}"


def _ctfu(raw: str, ses: str, split: str, suffix: str) -> Path:
    return REAL / CTFU.format(raw=raw, ses=ses, split=split, suffix=suffix)


def load_cases() -> list[tuple[str, object, dict]]:
    """(name, scan Image, centroids world mm) of every real CT with annotations."""
    import spinefx.io as sio

    cases = []
    for ses, split in (("ses-20080508", ""), ("ses-20140908", "_split-1")):
        scan = sio.load_scan(_ctfu("rawdata", ses, split, "ct.nii.gz"))
        ctd = sio.load_centroids(_ctfu("derivatives", ses, split, "seg-subreg_ctd.json"), scan)
        cases.append((f"ctfu {ses}{split}", scan, ctd))
    tpt = REAL / "tptbox"
    scan = sio.load_scan(tpt / "sub-ct_label-22_ct.nii.gz")
    mask = sio.load_mask(tpt / "sub-ct_seg-vert_label-22_msk.nii.gz")
    subreg = sio.load_mask(tpt / "sub-ct_seg-subreg_label-22_msk.nii.gz", known_labels=None)
    cases.append(("tptbox L3 (1.5 mm)", scan, sio.centroids_from_mask(mask, subregion_mask=subreg)))
    return cases


# --- the two implementations ---------------------------------------------------------------
def spinefx_patches(scan, centroids) -> dict[int, np.ndarray]:
    from spinefx.preprocessing import extract_vertebra_patches

    patches = extract_vertebra_patches(
        scan, centroids, size_vox=SIZE_VOX, spacing_mm=SPACING_MM, include_cervical=True
    )
    return {k: p.data for k, p in patches.items()}


def reference_patches(scan, centroids) -> dict[int, np.ndarray]:
    """Whole volume -> 1 mm isotropic RAS, then map_coordinates on each patch grid."""
    from scipy import ndimage

    from spinefx.preprocessing import patch_affine, reorient, spine_frames

    ras = reorient(scan, "RAS")
    spacing = ras.spacing_mm
    shape_iso = np.maximum(1, np.round(np.array(ras.shape) * spacing / SPACING_MM)).astype(int)
    iso_affine = np.eye(4)
    iso_affine[:3, :3] = ras.affine[:3, :3] / spacing * SPACING_MM
    centre = ras.voxel_to_world((np.array(ras.shape) - 1) / 2)
    iso_affine[:3, 3] = centre - iso_affine[:3, :3] @ ((shape_iso - 1) / 2)
    to_ras = np.linalg.inv(ras.affine) @ iso_affine
    iso = ndimage.affine_transform(
        np.asarray(ras.data, np.float32),
        to_ras[:3, :3],
        to_ras[:3, 3],
        output_shape=tuple(shape_iso),
        order=1,
        mode="nearest",
    )
    _, frames = spine_frames(centroids)
    grid = np.indices((SIZE_VOX,) * 3, dtype=np.float32).reshape(3, -1)
    out = {}
    for label, frame in frames.items():
        m = np.linalg.inv(iso_affine) @ patch_affine(
            frame, size_vox=SIZE_VOX, spacing_mm=SPACING_MM
        )
        coords = m[:3, :3].astype(np.float32) @ grid + m[:3, 3:4].astype(np.float32)
        values = ndimage.map_coordinates(iso, coords, order=1, mode="nearest")
        inside = np.all((coords >= -0.5) & (coords <= shape_iso[:, None] - 0.5), axis=0)
        out[label] = np.where(inside, values, -1000.0).reshape((SIZE_VOX,) * 3)
    return out


IMPLEMENTATIONS = {"spinefx": spinefx_patches, "reference": reference_patches}


# --- measurement -----------------------------------------------------------------------------
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(impl: str, repeats: int) -> dict:
    """Run in a fresh subprocess: time loading, then ``repeats`` passes over all vertebrae."""
    import scipy.ndimage  # noqa: F401  (libraries count in the baseline, not as working memory)
    import SimpleITK  # noqa: F401

    t0 = time.perf_counter()
    cases = load_cases()
    load_s = time.perf_counter() - t0
    rss_loaded = _maxrss_mb()
    fn = IMPLEMENTATIONS[impl]
    fn(cases[0][1], cases[0][2])  # warm-up (imports, SimpleITK thread pool)
    n, passes, cpu0 = 0, [], time.process_time()
    for _ in range(repeats):
        t0, n_pass = time.perf_counter(), 0
        for _, scan, centroids in cases:
            n_pass += len(fn(scan, centroids))
        passes.append(time.perf_counter() - t0)
        n += n_pass
    seconds = sum(passes)
    cpu_seconds = time.process_time() - cpu0  # all threads of this process
    return {
        "scans": len(cases),
        "load_seconds_all_scans": round(load_s, 3),
        "vertebrae_extracted": n,
        "seconds": round(seconds, 3),
        "vertebrae_per_second": round(n / seconds, 2),
        "ms_per_vertebra": round(1000 * seconds / n, 2),
        "vertebrae_per_second_best_pass": round(n_pass / min(passes), 2),
        "cpu_ms_per_vertebra": round(1000 * cpu_seconds / n, 2),
        "vertebrae_per_cpu_second": round(n / cpu_seconds, 2),
        "vertebrae_per_second_median_pass": round(n_pass / float(np.median(passes)), 2),
        "peak_rss_mb_after_loading": round(rss_loaded, 1),
        "peak_rss_mb_after_extraction": round(_maxrss_mb(), 1),
        "peak_extra_mb_for_extraction": round(_maxrss_mb() - rss_loaded, 1),
    }


def compare() -> list[dict]:
    """How far spinefx's patches are from map_coordinates references, per scan (HU).

    ``interior``: patch voxels whose centre lies within the hull of the scan's voxel centres
    (no boundary rule involved). There spinefx must equal trilinear interpolation on the native
    grid (``direct``: scipy.ndimage.map_coordinates, float64 coordinates) up to float rounding.
    In the half-voxel band at the scan's faces ITK extrapolates linearly while scipy clamps, so
    those few voxels are reported separately. ``outside`` voxels must be air in both.
    """
    from scipy import ndimage

    from spinefx.preprocessing import patch_affine, spine_frames

    rows = []
    for name, scan, centroids in load_cases():
        ours, iso_ref = spinefx_patches(scan, centroids), reference_patches(scan, centroids)
        _, frames = spine_frames(centroids)
        grid = np.indices((SIZE_VOX,) * 3, dtype=np.float64).reshape(3, -1)
        upper = np.array(scan.shape)[:, None] - 1.0
        data = np.asarray(scan.data, np.float32)
        d_direct, d_iso, outside_ok, n_band, n_total = [], [], True, 0, 0
        for label, patch in ours.items():
            m = np.linalg.inv(scan.affine) @ patch_affine(
                frames[label], size_vox=SIZE_VOX, spacing_mm=SPACING_MM
            )
            coords = m[:3, :3] @ grid + m[:3, 3:4]
            direct = ndimage.map_coordinates(data, coords, order=1, mode="nearest")
            interior = np.all((coords >= 0) & (coords <= upper), axis=0)
            outside = np.any((coords < -0.5 - 1e-6) | (coords > upper + 0.5 + 1e-6), axis=0)
            flat, iso_flat = patch.ravel(), iso_ref[label].ravel()
            d_direct.append(np.abs(flat[interior] - direct[interior]))
            d_iso.append(np.abs(flat[interior] - iso_flat[interior]))
            outside_ok &= bool(np.all(flat[outside] == -1000.0))
            n_band += int((~interior & ~outside).sum())
            n_total += flat.size
        d_direct, d_iso = np.concatenate(d_direct), np.concatenate(d_iso)
        rows.append(
            {
                "scan": name,
                "shape": list(scan.shape),
                "spacing_mm": [round(float(s), 3) for s in scan.spacing_mm],
                "orientation": scan.orientation,
                "vertebrae": len(ours),
                "interior_fraction": round(d_direct.size / n_total, 4),
                "border_band_fraction": round(n_band / n_total, 5),
                "max_abs_diff_hu_vs_direct_trilinear": float(f"{d_direct.max():.3g}"),
                "max_abs_diff_hu_vs_isotropic_reference": float(f"{d_iso.max():.3g}"),
                "p99_abs_diff_hu_vs_isotropic_reference": round(float(np.percentile(d_iso, 99)), 4),
                "outside_is_air": outside_ok,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--worker", choices=sorted(IMPLEMENTATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (REAL / "README.md").is_file():
        print(f"skipped: real CT samples not found at {REAL} (set SPINEFX_REAL_DATA)")
        return 0
    if args.worker:
        print(json.dumps(measure(args.worker, args.repeats)))
        return 0
    load_before = os.getloadavg()
    results = {}
    for impl in IMPLEMENTATIONS:
        repeats = args.repeats if impl == "spinefx" else max(1, args.repeats // 5)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", impl, "--repeats", str(repeats)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{impl:>9}: {results[impl]}")
    agreement = compare()
    for row in agreement:
        print(f"agreement: {row}")
    import SimpleITK as sitk

    load_after = os.getloadavg()
    report = {
        "benchmark": "spine-aligned patch extraction, 96^3 voxels at 1 mm, real CTs",
        "patch_size_vox": SIZE_VOX,
        "spacing_mm": SPACING_MM,
        "implementations": results,
        "speedup_vs_reference": round(
            results["spinefx"]["vertebrae_per_second"]
            / results["reference"]["vertebrae_per_second"],
            2,
        ),
        "target_vertebrae_per_second": 20,
        "meets_target_wall_clock_as_measured": results["spinefx"]["vertebrae_per_second"] >= 20,
        "estimated_vertebrae_per_second_on_2_idle_cores": round(
            2 * results["spinefx"]["vertebrae_per_cpu_second"], 1
        ),
        "estimate_note": "Wall-clock throughput depends on what else runs on the shared 2 "
        "cores (see machine.loadavg). CPU time per vertebra does not; prepare_dataset runs one "
        "process per core (workers=2), so 2 idle cores give about 2 x vertebrae_per_cpu_second.",
        "agreement_with_reference": agreement,
        "agreement_note": "Compared on interior voxels (centre inside the hull of the scan's "
        "voxel centres). vs_direct_trilinear = map_coordinates on the native grid: must be "
        "equal up to float rounding. vs_isotropic_reference = the timed reference: identical "
        "on 1 mm scans (its whole-volume step is a pure reorientation); on the 1.5 mm scan it "
        "interpolates twice (to 1 mm, then onto the patch), so it differs by its extra blur. "
        "In the half-voxel border band ITK extrapolates linearly where scipy clamps.",
        "machine": {
            "cpu_count": os.cpu_count(),
            "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "python": platform.python_version(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
            "shared_cpu": bool(max(load_before[0], load_after[0]) > 1.0),
            "note": "2-core machine shared with other engineers' jobs; a load average above 1 "
            "means other processes competed for the CPU during the run.",
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
