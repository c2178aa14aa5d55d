"""End to end: a (tiny) patch-classifier run over a prepared folder -> atlas, exports, index."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
import torch

from spinefx.interpretation.atlas import load_atlas, set_unit_concept

SCAN_AFFINE = np.array(
    [[0.0, 0.0, -1.0, 30.0], [-1.0, 0.0, 0.0, 20.0], [0.0, -1.0, 0.0, 40.0], [0, 0, 0, 1]]
)


def _write(data, affine, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _case(root, prepared, case_id, rng, fractured):
    """Scan 32x32x56 with L2 (z 10-19), L1 (z 24-33), T12 (z 38-47) bodies; patches of L1, L2."""
    vert = np.zeros((32, 32, 56), np.int16)
    sub = np.zeros_like(vert)
    zone = np.zeros_like(vert)
    for label, z0 in ((21, 10), (20, 24), (19, 38)):
        vert[10:22, 10:22, z0 : z0 + 10] = label
        sub[10:22, 10:22, z0 : z0 + 10] = 50
        sub[10:22, 22:26, z0 + 3 : z0 + 7] = 41
        vert[10:22, 22:26, z0 + 3 : z0 + 7] = label
    ct = np.where(vert > 0, 300, 0).astype(np.int16) + rng.integers(-20, 20, vert.shape).astype(
        np.int16
    )
    if fractured:
        ct[12:20, 12:20, 31:34] = 1200  # sclerotic superior endplate of L1
        zone[12:20, 12:20, 31:34] = 20
    # The scan's voxel axes are (z, x, y)-like; store them permuted so the affine is non-trivial.
    scan_path = root / "rawdata" / f"sub-{case_id}" / f"sub-{case_id}_ct.nii.gz"
    deriv = root / "derivatives" / f"sub-{case_id}"
    _write(ct, SCAN_AFFINE, scan_path)
    _write(vert, SCAN_AFFINE, deriv / f"sub-{case_id}_seg-vert_msk.nii.gz")
    _write(sub, SCAN_AFFINE, deriv / f"sub-{case_id}_seg-subreg_msk.nii.gz")
    _write(zone, SCAN_AFFINE, deriv / f"sub-{case_id}_seg-fxzone_msk.nii.gz")
    rows = []
    for level, label, zc in (("L1", 20, 29), ("L2", 21, 15)):
        start = np.array([6, 6, zc - 10])
        patch = ct[6:26, 6:26, zc - 10 : zc + 10]
        affine = SCAN_AFFINE.copy()
        affine[:3, 3] = SCAN_AFFINE[:3, :3] @ start + SCAN_AFFINE[:3, 3]
        rel = f"patches/sub-{case_id}/{level}.nii"
        _write(patch.astype(np.int16), affine, prepared / rel)
        grade = 2 if (fractured and level == "L1") else 0
        rows.append(
            dict(
                case_id=f"sub-{case_id}",
                patient_id=f"sub-{case_id}",
                vertebra_label=label,
                level=level,
                genant_grade=grade,
                fractured=int(grade > 0),
                shape="",
                foreign_material=False,
                split="test",
                path=rel,
                out_of_view_fraction=0.0,
                scan_path=str(scan_path),
            )
        )
    return rows


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    from spinefx.models import PatchClassifierConfig, build_model
    from spinefx.runs import save_checkpoint

    tmp = tmp_path_factory.mktemp("dissect")
    rng = np.random.default_rng(0)
    rows = []
    for i, case in enumerate("abcdef"):
        rows += _case(tmp / "data", tmp / "prepared", case, rng, fractured=i % 2 == 0)
    with open(tmp / "prepared" / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    torch.manual_seed(0)
    config = PatchClassifierConfig(
        widths=(2, 4, 4, 8),
        patch_size_vox=16,
        spacing_mm=1.0,
        head_conv_widths=(4,),
        head_mlp_widths=(4,),
    )
    model = build_model(config).eval()
    save_checkpoint(
        tmp / "run" / "checkpoint.pt", model, config, epoch=0, seed=0, threshold=0.5, val_metrics={}
    )
    return tmp / "run", tmp / "prepared"


def test_dissect_run_writes_atlas_exports_and_index(run_and_data):
    from spinefx.cli import main

    run_dir, prepared = run_and_data
    out = run_dir / "dissection"
    assert (
        main(
            [
                "--no-progress",
                "dissect",
                str(run_dir),
                "--data",
                str(prepared),
                "--export-units",
                "2",
                "--quantile",
                "0.01",
            ]
        )
        == 0
    )
    atlas = load_atlas(out / "atlas.yaml")
    assert atlas["layer"] == "encoder.level4" and atlas["n_samples"] == 12
    assert len(atlas["units"]) == 8 and atlas["quantile"] == 0.01
    assert sorted(u["rank"]["tp"] for u in atlas["units"]) == list(range(1, 9))
    scores = atlas["units"][0]["concept_scores"]
    assert {"vertebral_body", "superior_endplate", "fracture_zone"} <= set(scores)
    exported = [u for u in atlas["units"] if u["exports"]]
    assert len(exported) == 2 and all(u["rank"]["tp"] <= 2 for u in exported)
    unit = exported[0]
    assert (out / unit["exports"]["collage"]).is_file()
    assert (out / unit["exports"]["strip"]).is_file()
    assert "index.html" in [p.name for p in out.iterdir()]
    assert unit["exports"]["collage"] in (out / "index.html").read_text()

    # NIfTI exports sit on the model's input grid: the patch affine shifted by the 2-voxel crop
    ct_path, act_path, mask_path = (out / p for p in unit["exports"]["nifti"][0])
    top = unit["top_samples"][0]
    patch = nib.load(str(prepared / "patches" / top["case_id"] / f"{top['level']}.nii"))
    expected = patch.affine.copy()
    expected[:3, 3] = patch.affine[:3, :3] @ [2, 2, 2] + patch.affine[:3, 3]
    for path in (ct_path, act_path, mask_path):
        np.testing.assert_allclose(nib.load(str(path)).affine, expected, atol=1e-6)
    ct = np.asarray(nib.load(str(ct_path)).dataobj)
    np.testing.assert_array_equal(ct, np.asarray(patch.dataobj)[2:18, 2:18, 2:18])
    mask = np.asarray(nib.load(str(mask_path)).dataobj)
    act = np.asarray(nib.load(str(act_path)).dataobj)
    np.testing.assert_array_equal(mask, act > unit["threshold"])


def test_rerun_keeps_expert_labels_and_previous_atlas(run_and_data):
    from spinefx.interpretation import dissect_run

    run_dir, prepared = run_and_data
    out = run_dir / "dissection2"
    first = dissect_run(run_dir, prepared, out, export_units=0, split="all")
    set_unit_concept(first.atlas_path, 3, "endplate", "lights up on the superior endplate")
    second = dissect_run(run_dir, prepared, out, export_units=0, split="all")
    assert second.atlas["units"][3]["concept_label"] == "endplate"
    assert (out / "atlas.prev.yaml").is_file()
    np.testing.assert_allclose(first.dissection.thresholds, second.dissection.thresholds)


def test_without_true_positives_exports_are_ranked_by_ground_truth(run_and_data):
    from spinefx.interpretation import dissect_run

    run_dir, prepared = run_and_data
    result = dissect_run(
        run_dir,
        prepared,
        run_dir / "dissection3",
        export_units=0,
        split="all",
        decision_threshold=0.999999,
    )
    assert result.atlas["groups"]["tp"] == 0 and result.atlas["groups"]["fn"] == 3
    assert result.atlas["positive_set"] == "gt"
    assert all(u["correlation"]["tp"] is None for u in result.atlas["units"])
