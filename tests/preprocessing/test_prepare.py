"""prepare_dataset: manifest contract, bad cases skipped, resume, settings guard, CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.preprocessing import MANIFEST_COLUMNS, prepare_dataset
from spinefx.records import Case, VertebraRecord

io = pytest.importorskip("spinefx.io")
SIZE = 12


def _scan(path: Path, centroids_mm: dict[int, np.ndarray]) -> Path:
    """A small PIR CT (air with a bright cube at each centroid), written as NIfTI."""
    affine = np.array([[0, 0, 1.0, -20], [-1.0, 0, 0, 20], [0, -1.0, 0, 60], [0, 0, 0, 1]])
    image = Image(np.full((40, 90, 40), -1000, np.int16), affine)
    data = image.data.copy()
    for c in centroids_mm.values():
        i, j, k = np.round(image.world_to_voxel(c)).astype(int)
        data[i - 3 : i + 4, j - 3 : j + 4, k - 3 : k + 4] = 700
    return io.save_image(image.with_data(data), path)


def _case(root: Path, case_id: str, labels=(19, 20, 21), grades=(0, 2, None)) -> Case:
    centroids = {lab: np.array([0.0, 0.0, 40.0 - 25.0 * i]) for i, lab in enumerate(labels)}
    scan = _scan(root / f"{case_id}_ct.nii.gz", centroids)
    records = tuple(
        VertebraRecord(
            case_id,
            lab,
            tuple(centroids[lab]),
            genant_grade=g,
            split="train",
            shape="wedge" if g else None,
        )
        for lab, g in zip(labels, grades, strict=True)
    )
    return Case(case_id, scan, vertebrae=records, patient_id=f"p-{case_id}")


def _bad_case(root: Path) -> Case:
    broken = root / "broken_ct.nii.gz"
    broken.write_bytes(b"\x1f\x8b this is not a NIfTI file")
    return Case("broken", broken, vertebrae=(VertebraRecord("broken", 20, (0.0, 0.0, 0.0)),))


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def cases(tmp_path) -> list[Case]:
    data = tmp_path / "data"
    data.mkdir()
    return [_case(data, "a"), _bad_case(data), _case(data, "b", labels=(6, 7, 8), grades=(0, 0, 1))]


def test_prepare_writes_patches_manifest_and_errors(tmp_path, cases):
    out = tmp_path / "out"
    result = prepare_dataset(cases, out, size_vox=SIZE, spacing_mm=1.5)
    rows = _read_csv(out / "manifest.csv")
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    # case a: T12, L1, L2; case b: T1 only (C6, C7 excluded by default); broken: skipped
    assert [(r["case_id"], r["level"]) for r in rows] == [
        ("a", "T12"),
        ("a", "L1"),
        ("a", "L2"),
        ("b", "T1"),
    ]
    a_l1 = rows[1]
    assert (a_l1["genant_grade"], a_l1["fractured"], a_l1["shape"]) == ("2", "1", "wedge")
    assert (rows[2]["genant_grade"], rows[2]["fractured"]) == ("", "")  # ungraded kept
    assert a_l1["patient_id"] == "p-a" and a_l1["split"] == "train"
    assert a_l1["path"] == "patches/a/L1.nii"
    errors = _read_csv(out / "errors.csv")
    assert [e["case_id"] for e in errors] == ["broken"] and "broken_ct" in errors[0]["error"]
    assert result.n_cases_ok == 2 and len(result.manifest) == 4

    import nibabel as nib

    patch = nib.load(out / a_l1["path"])
    assert patch.get_data_dtype() == np.int16 and patch.shape == (SIZE,) * 3
    # patch->world affine: the patch centre is the vertebra's centroid, voxels are 1.5 mm
    centre = patch.affine @ np.array([(SIZE - 1) / 2] * 3 + [1])
    np.testing.assert_allclose(centre[:3], cases[0].vertebrae[1].centroid_mm, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(patch.affine[:3, :3], axis=0), 1.5)
    data = np.asarray(patch.dataobj)
    assert data[SIZE // 2, SIZE // 2, SIZE // 2] == 700 and data.min() == -1000
    assert float(a_l1["out_of_view_fraction"]) == pytest.approx(0.0)
    assert not list(out.rglob("*.part*"))  # no temporary files left


def test_resume_skips_done_cases_and_redoes_damaged_ones(tmp_path, cases):
    out = tmp_path / "out"
    prepare_dataset(cases, out, size_vox=SIZE)
    first = (out / "manifest.csv").read_text()
    again = prepare_dataset(cases, out, size_vox=SIZE)
    assert again.n_resumed == 2  # a and b; broken is retried
    assert (out / "manifest.csv").read_text() == first
    # a truncated patch (interrupted copy) and a missing one make their case recompute
    damaged = out / "patches/a/L1.nii"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    (out / "patches/b/T1.nii").unlink()
    again = prepare_dataset(cases, out, size_vox=SIZE)
    assert again.n_resumed == 0
    assert (out / "manifest.csv").read_text() == first
    assert damaged.stat().st_size > 1000


def test_other_settings_refused_unless_overwrite(tmp_path, cases):
    out = tmp_path / "out"
    prepare_dataset(cases[:1], out, size_vox=SIZE)
    with pytest.raises(InputError, match="prepare.yaml.*size_vox"):
        prepare_dataset(cases[:1], out, size_vox=SIZE + 2)
    result = prepare_dataset(cases[:1], out, size_vox=SIZE + 2, overwrite=True)
    assert result.n_resumed == 0
    assert (out / "prepare.yaml").read_text().startswith(f"size_vox: {SIZE + 2}")


def test_vertebra_without_centroid_is_skipped_with_warning(tmp_path, cases):
    case = cases[0]
    lost = VertebraRecord(case.case_id, 22, None, genant_grade=0)
    case = Case(case.case_id, case.scan_path, vertebrae=(*case.vertebrae, lost))
    result = prepare_dataset([case], tmp_path / "out", size_vox=SIZE)
    assert [r["level"] for r in result.manifest] == ["T12", "L1", "L2"]
    assert any("L3" in w and "no centroid" in w for w in result.warnings)


def test_include_cervical_and_parallel_workers_give_the_same_patches(tmp_path, cases):
    serial = prepare_dataset(cases, tmp_path / "s", size_vox=SIZE, include_cervical=True)
    parallel = prepare_dataset(
        cases, tmp_path / "p", size_vox=SIZE, include_cervical=True, workers=2
    )
    assert [r["level"] for r in serial.manifest if r["case_id"] == "b"] == ["C6", "C7", "T1"]
    assert [r["path"] for r in serial.manifest] == [r["path"] for r in parallel.manifest]
    for row in serial.manifest:
        a = (tmp_path / "s" / row["path"]).read_bytes()
        assert a == (tmp_path / "p" / row["path"]).read_bytes()


def test_cli_prepare_on_a_manifest_csv(tmp_path, capsys):
    from spinefx.cli import main

    data = tmp_path / "data"
    data.mkdir()
    case = _case(data, "c1")
    centroids = {r.vertebra_label: np.array(r.centroid_mm) for r in case.vertebrae}
    io.save_centroids(centroids, data / "c1_ctd.json", io.load_scan(case.scan_path))
    (data / "dataset.csv").write_text(
        "case_id,scan,centroids,split,T12,L1,L2\nc1,c1_ct.nii.gz,c1_ctd.json,test,0,3,\n"
    )
    out = tmp_path / "out"
    code = main(
        [
            "--no-progress",
            "prepare",
            str(data / "dataset.csv"),
            "--out",
            str(out),
            "--size-vox",
            str(SIZE),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "cases: 1 ok" in printed and "3 patches, 1 fractured" in printed
    rows = _read_csv(out / "manifest.csv")
    assert [(r["level"], r["genant_grade"], r["split"]) for r in rows] == [
        ("T12", "0", "test"),
        ("L1", "3", "test"),
        ("L2", "", "test"),
    ]


def test_bad_case_ids_are_refused(tmp_path, cases):
    with pytest.raises(InputError, match="more than once"):
        prepare_dataset([cases[0], cases[0]], tmp_path / "out", size_vox=SIZE)
    escaping = Case("../evil", cases[0].scan_path, vertebrae=cases[0].vertebrae)
    with pytest.raises(InputError, match="cannot name a folder"):
        prepare_dataset([escaping], tmp_path / "out", size_vox=SIZE)
