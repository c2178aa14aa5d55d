"""Prepared-manifest reading, exclusions, patient-level splits, patch loading, augmentation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spinefx.datasets.patch_augmentation import PatchAugmentationConfig, PatchAugmenter
from spinefx.datasets.patch_dataset import PatchDataset, load_patch
from spinefx.datasets.patch_manifest import read_patch_manifest, usable_vertebrae
from spinefx.datasets.patch_toy import write_toy_prepared
from spinefx.datasets.splits import assign_splits
from spinefx.errors import InputError


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_prepared(tmp_path_factory.mktemp("toy"), n_cases=10, seed=1)


def test_foreign_material_and_ungraded_vertebrae_are_excluded(toy):
    table = read_patch_manifest(toy)
    kept, counts = usable_vertebrae(table)
    assert counts.total == 80 and counts.ungraded == 1 and counts.foreign_material == 1
    assert counts.kept == 78 == len(kept)
    assert kept["genant_grade"].notna().all() and not kept["foreign_material"].any()


def test_stratified_split_is_patient_level_seeded_and_has_fractures(toy):
    kept, _ = usable_vertebrae(read_patch_manifest(toy))
    split, record = assign_splits(kept, val_fraction=0.2, test_fraction=0.2, seed=5)
    again, _ = assign_splits(kept, val_fraction=0.2, test_fraction=0.2, seed=5)
    assert split.equals(again)
    assert record["method"] == "stratified_patient"
    per_patient = pd.DataFrame({"p": kept["patient_id"], "s": split}).groupby("p")["s"].nunique()
    assert (per_patient == 1).all()
    for name in ("train", "val", "test"):
        assert record[name]["fractured"] >= 1


def test_manifest_split_column_is_used_when_complete(tmp_path):
    root = write_toy_prepared(tmp_path, n_cases=5, with_split=True)
    kept, _ = usable_vertebrae(read_patch_manifest(root))
    split, record = assign_splits(kept, val_fraction=0.5, test_fraction=0.5, seed=0)
    assert record["method"] == "manifest"
    assert split.tolist() == kept["split"].tolist()


def test_load_patch_scales_hu_and_centre_crops(tmp_path):
    hu = np.full((20, 20, 20), -1000, np.int16)
    hu[8:12, 8:12, 8:12] = 1000
    path = tmp_path / "p.nii"
    nib.save(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    patch = load_patch(path, patch_size_vox=8, spacing_mm=2.0)
    assert patch.shape == (1, 8, 8, 8) and patch.dtype == np.float32
    assert patch[0, 2:6, 2:6, 2:6].min() == 1.0 and patch[0, 0, 0, 0] == 0.0
    with pytest.raises(InputError, match="spacing"):
        load_patch(path, patch_size_vox=8, spacing_mm=1.0)
    with pytest.raises(InputError, match="smaller"):
        load_patch(path, patch_size_vox=24, spacing_mm=2.0)


def test_augmentation_only_for_seeded_training_items_and_reproducible(toy):
    kept, _ = usable_vertebrae(read_patch_manifest(toy))
    augment = PatchAugmenter(
        PatchAugmentationConfig(noise_prob=1.0, affine_prob=1.0, elastic_prob=1.0), spacing_mm=6.0
    )
    ds = PatchDataset(
        kept["abs_path"][:3], [0, 1, 0], patch_size_vox=16, spacing_mm=6.0, augment=augment
    )
    raw = load_patch(kept["abs_path"][0], patch_size_vox=16, spacing_mm=6.0)
    plain = ds[0]["image"].numpy()
    assert np.array_equal(plain, raw)  # integer index: evaluation, never augmented
    a, b, c = ds[(0, 11)]["image"], ds[(0, 11)]["image"], ds[(0, 12)]["image"]
    assert not np.allclose(a.numpy(), raw)
    assert np.array_equal(a.numpy(), b.numpy())  # same seed, same augmentation
    assert not np.allclose(a.numpy(), c.numpy())
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
