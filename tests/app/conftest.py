"""Fixtures for the app tests: a tiny spine phantom on disk and a tiny dissected run.

The run is an untrained patch classifier from the model factory (fixed seed) with a concept
atlas computed on it by the dissection stage: the tests are about the app working end to end,
not about accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spinefx.image import Image

LABELS = (19, 20, 21, 22, 23)  # T12-L4
SPACING_MM = 2.0


def make_phantom(*, seed: int = 0, fractured: tuple[int, ...] = (20,)) -> tuple[Image, dict]:
    """A small CT-like spine: vertebral bodies (cortex + cancellous bone), discs, soft tissue.

    Returns:
        the scan (HU, 2 mm voxels, RAS+) and its centroids ``{label: world mm}``.
    """
    rng = np.random.default_rng(seed)
    shape = (48, 48, 96)
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    affine[:3, 3] = [-47.0, -47.0, -95.0]
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = (ijk * SPACING_MM + affine[:3, 3]).reshape(*shape, 3)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[(x / 44) ** 2 + (y / 40) ** 2 <= 1] = 40.0  # soft tissue
    centroids = {}
    for n, label in enumerate(LABELS):
        zc = 60.0 - 30.0 * n
        height = 13.0 if label in fractured else 22.0
        r = np.hypot(x, y - 6.0)
        body = (r <= 16) & (np.abs(z - zc) <= height / 2)
        hu[body] = 250.0
        hu[body & ((r > 13.5) | (np.abs(z - zc) > height / 2 - 2))] = 900.0
        hu[(np.abs(z - zc - 15) <= 3.5) & (r <= 15)] = 90.0  # disc above
        hu[(np.hypot(x, y + 22) <= 6) & (np.abs(z - zc) <= 9)] = 700.0  # posterior element
        centroids[label] = np.array([0.0, 6.0, zc])
    hu += rng.normal(0, 15, shape).astype(np.float32)
    return Image(hu, affine, {}), centroids


def write_phantom(folder: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write the phantom as NIfTI + VerSe centroid JSON; return both paths."""
    from spinefx.io import save_centroids, save_image

    scan, centroids = make_phantom(seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    scan_path = folder / f"phantom{seed}_ct.nii.gz"
    ctd_path = folder / f"phantom{seed}_ctd.json"
    save_image(scan, scan_path)
    save_centroids(centroids, ctd_path, scan)
    return scan_path, ctd_path


def phantom_body_mask(scan: Image, centroids: dict) -> Image:
    """VerSe-labelled vertebral bodies of the phantom (r <= 16 mm, +-10 mm about each centroid)."""
    ijk = np.indices(scan.shape).reshape(3, -1).T
    xyz = scan.voxel_to_world(ijk).reshape(*scan.shape, 3)
    data = np.zeros(scan.shape, dtype=np.uint8)
    for label, c in centroids.items():
        radial = np.hypot(xyz[..., 0] - c[0], xyz[..., 1] - c[1])
        data[(radial <= 16) & (np.abs(xyz[..., 2] - c[2]) <= 10)] = label
    return scan.with_data(data)


def build_tiny_run(run_dir: Path) -> Path:
    """An untrained tiny patch classifier with a dissection atlas (5 labelled units, collages)."""
    import torch

    from spinefx.interpretation.atlas import build_atlas, save_atlas, set_unit_concept
    from spinefx.interpretation.dissection import dissect, rank_units
    from spinefx.interpretation.exports import export_collage
    from spinefx.models import DISSECTED_LAYER, PatchClassifierConfig, build_model
    from spinefx.preprocessing import extract_vertebra_patches, hu_to_unit
    from spinefx.runs import save_checkpoint

    torch.manual_seed(0)
    config = PatchClassifierConfig(
        widths=(4, 8, 8, 16),
        patch_size_vox=48,
        spacing_mm=2.0,
        head_conv_widths=(8, 4),
        head_mlp_widths=(16,),
        dropout=0.0,
    )
    model = build_model(config).eval()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        run_dir / "checkpoint.pt", model, config, epoch=0, seed=0, threshold=0.5, val_metrics={}
    )
    samples = []
    for seed in (1, 2):
        scan, centroids = make_phantom(seed=seed, fractured=(20 + seed,))
        patches = extract_vertebra_patches(scan, centroids, size_vox=48, spacing_mm=2.0)
        for label, patch in patches.items():
            x = torch.from_numpy(hu_to_unit(patch.data))[None]
            meta = {"case_id": f"phantom{seed}", "level": str(label), "affine": patch.affine}
            samples.append((x, int(label == 20 + seed), meta))

    class Dataset(list):
        pass

    dataset = Dataset(samples)
    loader = [
        (
            torch.stack([s[0] for s in samples[i : i + 4]]),
            torch.tensor([s[1] for s in samples[i : i + 4]]),
            [s[2] for s in samples[i : i + 4]],
        )
        for i in range(0, len(samples), 4)
    ]
    dissection = dissect(model, DISSECTED_LAYER, loader, quantile=0.05, top_k=4)
    correlations = dissection.correlations()
    ranks = {k: rank_units(v) for k, v in correlations.items()}
    folder = run_dir / "dissection"
    exports = {}
    for unit in range(dissection.n_units):
        path = export_collage(dissection, dataset, unit, folder / f"collage_{unit}.png", n=2)
        if path is not None:
            exports[unit] = {"collage": path.name}
    scores = {k: {"vertebral_body": 0.1 + 0.02 * k, "superior_endplate": 0.05} for k in range(16)}
    atlas = build_atlas(
        dissection, correlations=correlations, ranks=ranks, concept_scores=scores, exports=exports
    )
    atlas_path = save_atlas(atlas, folder / "atlas.yaml")
    for unit in range(0, 16, 3):
        set_unit_concept(atlas_path, unit, f"concept {unit}", f"explanation of unit {unit}")
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return build_tiny_run(tmp_path_factory.mktemp("tiny-run") / "run")


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_phantom(tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="session")
def phantom_mask_files(tmp_path_factory) -> tuple[Path, Path]:
    """A phantom scan (seed 3) and its vertebral-body mask in VerSe ids, as NIfTI files."""
    from spinefx.io import save_image

    scan, centroids = make_phantom(seed=3)
    folder = tmp_path_factory.mktemp("phantom-mask")
    save_image(scan, folder / "phantom3_ct.nii.gz")
    save_image(phantom_body_mask(scan, centroids), folder / "phantom3_msk.nii.gz")
    return folder / "phantom3_ct.nii.gz", folder / "phantom3_msk.nii.gz"


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory) -> tuple[Path, Path]:
    """One scan of the synthetic generator (preset small, seed 2022) and its centroid JSON."""
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(
        tmp_path_factory.mktemp("synthetic") / "ds", n_scans=1, seed=2022, preset="small"
    )
    sub = "sub-synth0001"
    return (
        root / "rawdata" / sub / f"{sub}_ct.nii.gz",
        root / "derivatives" / sub / f"{sub}_seg-subreg_ctd.json",
    )


@pytest.fixture()
def client(tiny_run, tmp_path):
    """A TestClient over the app with the tiny run and a 2 MB upload limit."""
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    app = create_app(load_model_run(tiny_run), max_upload_mb=2.0, cache_dir=tmp_path / "cache")
    with TestClient(app, headers=token_headers(app)) as c:
        yield c


def json_bytes(obj) -> bytes:
    return json.dumps(obj).encode()
