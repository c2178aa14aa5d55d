"""Whole-scan CPU inference of the voxel classifier: our DeepMedic-style tiler vs MONAI.

A synthetic 1 mm thoracolumbar scan (T1-L5, ``thoracolumbar`` synthesis preset) is classified
by the same 3d model (~234 K parameters, seeded random weights: timing does not depend on
training) with

* ``ours``: :func:`spinefx.inference.voxel_tiling.predict_volume`, 27^3 output tiles, the
  inference ROI (tiles of air skipped) on and off;
* ``monai``: ``monai.inferers.sliding_window_inference`` with 27^3 windows, overlap 0, the
  model wrapped so that it returns a same-size window: the window is padded with the border
  intensity to the 70^3 / 36^3 (low-res) input the valid convolutions need. Context beyond
  the window is thus lost (MONAI has no notion of input margins), which we report as the
  maximal probability difference to ours.

Each method runs in its own subprocess with 2 torch threads so its peak RSS (ru_maxrss) is
its own. Writes ``benchmarks/results/voxel_inference.json``.
Run: ``nice -n 10 .venv/bin/python benchmarks/bench_voxel_inference.py``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "voxel_inference.json"
TILE = 27  # spinefx.inference.voxel_tiling.DEFAULT_OUTPUT_TILE_VOX
CROP_Z = 108


def _scan(workdir: Path):
    from spinefx.io import load_scan
    from spinefx.synthesis import generate_dataset

    root = workdir / "data"
    if not (root / "rawdata").exists():
        generate_dataset(root, n_scans=1, seed=3, preset="thoracolumbar")
    path = next((root / "rawdata").rglob("*_ct.nii.gz"))
    return load_scan(path)


def _model():
    import torch

    from spinefx.models.voxel_classifier import VoxelClassifierConfig, build_voxel_classifier

    torch.manual_seed(0)
    return build_voxel_classifier(VoxelClassifierConfig()).eval()


def _monai(model, volume: np.ndarray) -> np.ndarray:
    import torch
    from monai.inferers import sliding_window_inference

    from spinefx.datasets.voxel_sampling import border_intensity, segment_pair
    from spinefx.models.voxel_classifier import segment_geometry

    geometry = segment_geometry(model.config, output_vox=TILE)
    pad = border_intensity(volume)

    layout = torch.channels_last_3d  # the same memory layout as predict_volume uses
    model = model.to(memory_format=layout)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        outs = []
        for w in window[:, 0].numpy():
            hi, lo = segment_pair(w, (0, 0, 0), geometry, pad_value=pad)
            hi_t = torch.from_numpy(hi[None, None]).contiguous(memory_format=layout)
            lo_t = torch.from_numpy(lo[None, None]).contiguous(memory_format=layout)
            logits = model(hi_t, lo_t)
            outs.append(torch.softmax(logits, 1))
        return torch.cat(outs)

    with torch.inference_mode():
        x = torch.from_numpy(volume[None, None])
        out = sliding_window_inference(
            x,
            (TILE,) * 3,
            sw_batch_size=1,
            predictor=predictor,
            overlap=0.0,
            padding_mode="replicate",
        )
    return out[0].numpy()


def child(method: str, workdir: Path, crop_z: int) -> None:
    import torch

    torch.set_num_threads(2)
    from spinefx.datasets.voxel_sampling import prepare_voxel_input
    from spinefx.inference.voxel_tiling import predict_volume

    view = prepare_voxel_input(_scan(workdir))
    model = _model()
    volume = np.asarray(view.image.data, np.float32)
    if crop_z:  # a lumbar slab of the same scan (keeps the shared-CPU run short)
        volume = np.ascontiguousarray(volume[:, :, :crop_z])
    roi = float(view.to_network(-500.0))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu0 = time.perf_counter(), time.process_time()
    if method.startswith("ours_roi"):
        probs = predict_volume(
            model, volume, output_tile_vox=TILE, roi_min_value=roi, show_progress=False
        )
    elif method == "ours_all_tiles":
        probs = predict_volume(model, volume, output_tile_vox=TILE, show_progress=False)
    else:
        probs = _monai(model, volume)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu0
    np.save(workdir / f"{method}.npy", probs[2].astype(np.float16))
    print(
        json.dumps(
            {
                "method": method,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "estimated_uncontended_2core_seconds": cpu_seconds / 2,
                "shape_1mm": list(volume.shape),
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                "rss_before_gb": rss0 / 1e6,
            }
        )
    )


def main() -> None:
    workdir = Path(os.environ.get("BENCH_WORKDIR", tempfile.mkdtemp(prefix="bench_voxel_")))
    _scan(workdir)
    load_before = os.getloadavg()
    rows = {}
    runs = [(m, CROP_Z) for m in ("ours_all_tiles", "ours_roi", "monai")]
    if os.environ.get("BENCH_FULL_SCAN", "1") == "1":
        runs.append(("ours_roi_full_scan", 0))
    for method, crop in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", method, str(workdir), str(crop)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
        print(rows[method], flush=True)
    ref = np.load(workdir / "ours_all_tiles.npy").astype(np.float32)
    for method in ("ours_roi", "monai"):
        other = np.load(workdir / f"{method}.npy").astype(np.float32)
        rows[method]["max_abs_diff_fracture_prob_vs_ours_all_tiles"] = float(
            np.abs(other - ref).max()
        )
    result = {
        "scan": "synthetic thoracolumbar T1-L5, 1 mm isotropic (synthesis preset thoracolumbar, seed 3)",
        "model": "3d dual pathway, 233,827 parameters, random weights",
        "tile_output_vox": TILE,
        "comparison_volume": f"first {CROP_Z} axial 1 mm slices (lumbar slab) of the scan; "
        "ours_roi_full_scan: the whole scan",
        "torch_threads": 2,
        "methods": rows,
        "cpu_time_ratio_monai_over_ours_all_tiles": rows["monai"]["cpu_seconds"]
        / rows["ours_all_tiles"]["cpu_seconds"],
        "cpu_time_ratio_monai_over_ours_roi": rows["monai"]["cpu_seconds"]
        / rows["ours_roi"]["cpu_seconds"],
        "peak_memory_ratio_monai_over_ours": rows["monai"]["peak_rss_gb"]
        / rows["ours_all_tiles"]["peak_rss_gb"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "note": "2-core machine; when the load averages exceed 2, other jobs shared the cores "
        "and wall seconds are inflated: cpu_seconds (both torch threads) / 2 then estimates "
        "the uncontended 2-core wall time",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
