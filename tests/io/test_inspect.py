"""``spinefx inspect``: a thin shell over describe_scan, for NIfTI files and DICOM folders."""

from __future__ import annotations

import numpy as np

from spinefx.cli import main
from spinefx.io import describe_scan


def test_describe_ctfu_with_centroids(real_data):
    base = "sub-ctfu00001/ses-20080508/sub-ctfu00001_ses-20080508_ce-no"
    description = describe_scan(
        real_data / f"ctfu/rawdata/{base}_ct.nii.gz",
        centroids_path=real_data / f"ctfu/derivatives/{base}_seg-subreg_ctd.json",
    )
    assert description.shape == (111, 176, 113) and description.orientation == "PIR"
    assert [v.level for v in description.vertebrae] == ["L2", "L3", "L4", "L5"]
    assert all(v.inside for v in description.vertebrae)
    l2 = description.vertebrae[0]  # JSON: X 33.4, Y 36.0, Z 61.6 (PIR = the file's own grid)
    assert l2.voxel_index == (33, 36, 62)
    assert description.hu_percentiles[1.0] < -500 < 0 < description.hu_percentiles[99.0]


def test_cli_inspect_prints_a_table_for_nifti_and_dicom(real_data, capsys):
    scan = real_data / "tptbox/sub-ct_label-22_ct.nii.gz"
    mask = real_data / "tptbox/sub-ct_seg-vert_label-22_msk.nii.gz"
    assert main(["inspect", str(scan), "--mask", str(mask)]) == 0
    out = capsys.readouterr().out
    assert "73 x 47 x 73" in out and "PIR" in out and "1.5 x 1.5 x 1.5 mm" in out
    assert all(level in out for level in ("L2", "L3", "L4"))
    assert main(["inspect", str(real_data / "totalseg/example_ct_dicom")]) == 0
    out = capsys.readouterr().out
    assert "512 x 512 x 20" in out and "(dicom)" in out and "HU range     -1024" in out


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    bad = tmp_path / "mri.nii.gz"
    import nibabel as nib

    nib.save(
        nib.Nifti1Image(
            np.random.default_rng(0).uniform(0, 500, (8, 8, 8)).astype(np.float32), np.eye(4)
        ),
        bad,
    )
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "does not look like CT" in err and str(bad) in err
