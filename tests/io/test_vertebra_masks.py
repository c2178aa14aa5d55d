"""VerSe and TotalSegmentator vertebra masks (v1, v2 `total`, per-structure folders) as VerSe ids."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.io import save_image
from spinefx.io.vertebra_masks import FOLDER_NAMES, NUMBERINGS, load_vertebra_mask


@pytest.fixture(scope="module")
def verse_mask():
    """A generated thoracolumbar vertebra mask in VerSe ids (several levels)."""
    from spinefx.synthesis import generate_case, synthesis_preset

    case = generate_case(synthesis_preset("small"), np.random.default_rng(2))
    labels = sorted(int(v) for v in np.unique(case.vertebra_mask.data) if 0 < v < 26)
    assert labels[-1] == 24 and len(labels) >= 6  # down to L5: v1 ids 18-24 are lumbar
    return case.vertebra_mask.with_data(np.asarray(case.vertebra_mask.data).astype(np.uint8))


def _renumber(mask, numbering: str, *, extra: dict[int, tuple] | None = None):
    """The mask in a TotalSegmentator numbering, with optional organ blobs at voxel boxes."""
    from spinefx.conventions import VERTEBRA_LEVELS

    inverse = {v: k for k, v in NUMBERINGS[numbering].items() if v in VERTEBRA_LEVELS}
    data = np.asarray(mask.data)
    out = np.zeros(data.shape, np.uint8)
    for label in np.unique(data[data > 0]):
        out[data == label] = inverse.get(int(label), 0)
    for label, box in (extra or {}).items():
        out[box] = label
    return mask.with_data(out)


def _labels(image):
    return sorted(int(v) for v in np.unique(image.data) if v)


def test_verse_ids_are_read_as_verse(tmp_path, verse_mask):
    path = save_image(verse_mask, tmp_path / "m.nii.gz")
    read = load_vertebra_mask(path)
    assert read.numbering == "verse"
    np.testing.assert_array_equal(read.image.data, verse_mask.data)
    np.testing.assert_allclose(read.image.affine, verse_mask.affine)


@pytest.mark.parametrize("numbering", ["totalseg_v1", "totalseg_v2"])
def test_totalsegmentator_total_ids_are_detected_and_converted(tmp_path, verse_mask, numbering):
    # organ labels in a corner of the volume (spleen 1 in both versions, v2 colon 20)
    corner = (slice(0, 3), slice(0, 3), slice(0, 3))
    other = (slice(-3, None), slice(0, 3), slice(0, 3))
    ts = _renumber(
        verse_mask,
        numbering,
        extra={1: corner, 20: other} if numbering.endswith("2") else {1: corner},
    )
    path = save_image(ts, tmp_path / "ts.nii.gz")
    read = load_vertebra_mask(path)
    assert read.numbering == numbering
    expected = np.asarray(verse_mask.data).copy()
    expected[expected >= 26] = 0  # the sacrum is not written in this test's renumbering
    np.testing.assert_array_equal(read.image.data, expected)
    # naming the numbering gives the same map
    named = load_vertebra_mask(path, numbering=numbering)
    np.testing.assert_array_equal(named.image.data, expected)


def test_levels_and_the_sacrum_follow_the_v2_table():
    table = NUMBERINGS["totalseg_v2"]
    assert table[27] == 24 and table[31] == 20 and table[32] == 19 and table[43] == 8
    assert table[44] == 7 and table[50] == 1 and table[25] == table[26] == 26
    v1 = NUMBERINGS["totalseg_v1"]
    assert v1[18] == 24 and v1[22] == 20 and v1[23] == 19 and v1[34] == 8 and v1[41] == 1


def test_a_totalsegmentator_folder_is_combined_in_verse_ids(tmp_path, verse_mask):
    from spinefx.conventions import level_name

    data = np.asarray(verse_mask.data)
    folder = tmp_path / "segmentations"
    folder.mkdir()
    for label in _labels(verse_mask):
        name = "sacrum" if label == 26 else f"vertebrae_{level_name(label)}"
        assert name in FOLDER_NAMES
        save_image(
            verse_mask.with_data((data == label).astype(np.uint8)), folder / f"{name}.nii.gz"
        )
    save_image(verse_mask.with_data(np.zeros(data.shape, np.uint8)), folder / "liver.nii.gz")
    read = load_vertebra_mask(folder)
    assert read.numbering == "totalseg_folder"
    np.testing.assert_array_equal(read.image.data, data)


def test_a_binary_mask_is_refused(tmp_path, verse_mask):
    binary = verse_mask.with_data((np.asarray(verse_mask.data) > 0).astype(np.uint8))
    path = save_image(binary, tmp_path / "b.nii.gz")
    with pytest.raises(InputError, match="binary mask"):
        load_vertebra_mask(path)


def test_ids_that_fit_two_numberings_ask_for_the_flag(tmp_path, verse_mask):
    # v1 thoracic ids 27-34 read as v2 L5-T10 too: the same order, the same count
    data = np.asarray(verse_mask.data)
    present = _labels(verse_mask)
    out = np.zeros(data.shape, np.uint8)
    for i, label in enumerate(present):
        out[data == label] = 34 - i  # cranial-most = 34 (v1 T1), counting down caudally
    path = save_image(verse_mask.with_data(out), tmp_path / "amb.nii.gz")
    with pytest.raises(InputError, match="--mask-numbering"):
        load_vertebra_mask(path)
    assert load_vertebra_mask(path, numbering="totalseg_v1").numbering == "totalseg_v1"


def test_labels_in_no_numbering_are_refused(tmp_path, verse_mask):
    data = np.asarray(verse_mask.data)
    present = [v for v in _labels(verse_mask) if v < 26]
    swapped = {}
    for a, b in zip(present[::2], present[1::2], strict=False):  # neighbours swapped in pairs
        swapped[a], swapped[b] = b, a
    out = np.zeros(data.shape, np.uint8)
    for label, new in swapped.items():
        out[data == label] = new
    path = save_image(verse_mask.with_data(out), tmp_path / "swapped.nii.gz")
    with pytest.raises(InputError, match="no known vertebra numbering"):
        load_vertebra_mask(path)


def test_every_real_mask_reads_as_verse_ids(real_data):
    masks = [
        *real_data.glob("verse/derivatives/*/*_seg-vert_msk.nii.gz"),
        *real_data.glob("totalseg/spine_report/*.nii.gz"),
        *sorted(real_data.glob("verse_predicted_masks/*_seg.nii.gz"))[:4],  # whole spines too
    ]
    assert masks
    for path in masks:
        read = load_vertebra_mask(path)
        assert read.numbering == "verse", path
    spine = load_vertebra_mask(next(real_data.glob("totalseg/spine_report/*.nii.gz")))
    assert _labels(spine.image) == [19, 20, 21, 22, 23, 24]  # T12-L5, as its report says


def test_an_empty_mask_is_named_as_empty(tmp_path, verse_mask):
    path = save_image(
        verse_mask.with_data(np.zeros(verse_mask.shape, np.uint8)), tmp_path / "e.nii.gz"
    )
    with pytest.raises(InputError, match="empty"):
        load_vertebra_mask(path)
