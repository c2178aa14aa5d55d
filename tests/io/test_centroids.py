"""VerSe centroid JSON <-> world mm: real files land on their own vertebra, all orientations."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io import (
    centroids_from_mask,
    load_centroids,
    load_mask,
    load_scan,
    save_centroids,
    save_image,
)

CTFU = "ctfu/derivatives/sub-ctfu00001"
REAL_JSON_WITH_MASK = {
    "verse004": (
        "verse004/sub-verse004_seg-subreg_ctd.json",
        "verse004/sub-verse004_seg-vert_msk.nii.gz",
    ),
    "ctfu-2008": (
        f"{CTFU}/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_seg-subreg_ctd.json",
        f"{CTFU}/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_seg-vert_msk.nii.gz",
    ),
    "ctfu-2014-0": (
        f"{CTFU}/ses-20140908/sub-ctfu00001_ses-20140908_split-0_ce-no_seg-subreg_ctd.json",
        f"{CTFU}/ses-20140908/sub-ctfu00001_ses-20140908_split-0_ce-no_seg-vert_msk.nii.gz",
    ),
    "ctfu-2014-1": (
        f"{CTFU}/ses-20140908/sub-ctfu00001_ses-20140908_split-1_ce-no_seg-subreg_ctd.json",
        f"{CTFU}/ses-20140908/sub-ctfu00001_ses-20140908_split-1_ce-no_seg-vert_msk.nii.gz",
    ),
}


def _lands_on_own_label(centroids, mask: Image) -> None:
    assert centroids
    for label, world in centroids.items():
        ijk = tuple(np.rint(mask.world_to_voxel(world)).astype(int))
        # C1 has no body: its centroid sits in the ring, on the dens of C2
        allowed = {1, 2} if label == 1 else {label}
        assert mask.data[ijk] in allowed, f"label {label} centroid lands on {mask.data[ijk]}"


def _reoriented(mask: Image, codes: str) -> Image:
    """The same mask stored in another voxel order (nibabel orientations)."""
    img = nib.Nifti1Image(np.asarray(mask.data), mask.affine)
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(mask.affine), nib.orientations.axcodes2ornt(tuple(codes))
    )
    out = img.as_reoriented(transform)
    return Image(np.asarray(out.dataobj), out.affine)


@pytest.mark.parametrize("name", sorted(REAL_JSON_WITH_MASK))
@pytest.mark.parametrize("codes", ["PIR", "RAS", "LPS"])
def test_real_centroids_land_on_their_own_label_in_every_orientation(real_data, name, codes):
    json_path, mask_path = REAL_JSON_WITH_MASK[name]
    mask = load_mask(real_data / mask_path)
    assert mask.orientation == "PIR"  # the JSONs say PIR; other codes exercise the conversion
    reference = _reoriented(mask, codes)
    assert reference.orientation == codes
    centroids = load_centroids(real_data / json_path, reference)
    _lands_on_own_label(centroids, reference)
    same_on_pir = load_centroids(real_data / json_path, mask)
    for label, world in centroids.items():
        np.testing.assert_allclose(world, same_on_pir[label], atol=1e-6)


def test_ctfu_centroids_on_the_ct_equal_those_on_the_mask(real_data):
    json_path, mask_path = REAL_JSON_WITH_MASK["ctfu-2008"]
    ct = load_scan(
        real_data
        / "ctfu/rawdata/sub-ctfu00001/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz"
    )
    on_ct = load_centroids(real_data / json_path, ct)
    on_mask = load_centroids(real_data / json_path, load_mask(real_data / mask_path))
    assert sorted(on_ct) == [21, 22, 23, 24]
    for label in on_ct:
        np.testing.assert_allclose(on_ct[label], on_mask[label], atol=1e-4)


def test_body_centroids_from_masks_land_on_their_label_tptbox(real_data):
    mask = load_mask(real_data / "tptbox/sub-ct_seg-vert_label-22_msk.nii.gz")
    sub = load_mask(real_data / "tptbox/sub-ct_seg-subreg_label-22_msk.nii.gz", known_labels=None)
    for codes in ("PIR", "RAS"):
        m, s = _reoriented(mask, codes), _reoriented(sub, codes)
        centroids = centroids_from_mask(m, subregion_mask=s)
        assert sorted(centroids) == [21, 22, 23]
        _lands_on_own_label(centroids, m)


def test_verse004_body_centroids_from_masks_are_near_the_json(real_data):
    json_path, mask_path = REAL_JSON_WITH_MASK["verse004"]
    mask = load_mask(real_data / mask_path)
    from_json = load_centroids(real_data / json_path, mask)
    from_mask = centroids_from_mask(mask)  # whole vertebra: body + posterior elements
    assert sorted(from_mask) == sorted(from_json) == list(range(16, 25))
    for label in from_json:  # the whole-vertebra centre sits ~1 cm behind the body centre
        assert np.linalg.norm(from_mask[label] - from_json[label]) < 20


def test_known_answer_for_a_pir_file_on_a_ras_reference(tmp_path):
    reference = Image(np.zeros((10, 20, 30), np.uint8), np.eye(4))  # RAS, 1 mm, origin 0
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps([{"direction": ["P", "I", "R"]}, {"label": 20, "X": 4, "Y": 7, "Z": 2}])
    )
    # PIR index (p, i, r) on a RAS grid of shape (10, 20, 30): x = r, y = 19 - p, z = 29 - i
    np.testing.assert_allclose(load_centroids(path, reference)[20], [2, 15, 22])


def test_file_without_direction_uses_the_reference_codes_with_a_warning(tmp_path, caplog):
    reference = Image(np.zeros((10, 20, 30), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    path = tmp_path / "old.json"
    path.write_text(json.dumps([{"label": 8, "X": 1, "Y": 2, "Z": 3}]))
    np.testing.assert_allclose(load_centroids(path, reference)[8], [2, 4, 6])
    assert "no direction entry" in caplog.text


def _error(path, reference) -> str:
    with pytest.raises(InputError) as exc:
        load_centroids(path, reference)
    message = str(exc.value)
    assert str(path) in message and "Fix:" in message
    return message


def test_centroid_outside_the_scan_names_label_and_file(tmp_path):
    reference = Image(np.zeros((10, 20, 30), np.uint8), np.eye(4))
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            [
                {"direction": ["R", "A", "S"]},
                {"label": 20, "X": 4, "Y": 40, "Z": 2},
                {"label": 21, "X": 4, "Y": 10, "Z": 10},
            ]
        )
    )
    message = _error(path, reference)
    assert "label 20 (L1)" in message and "outside" in message
    # a vertebra cut by the field of view is kept (its prediction is then "not assessable")
    assert load_centroids(path, reference, outside="keep")[20][1] == 40


def _write(path, entries):
    path.write_text(json.dumps([{"direction": ["R", "A", "S"]}, *entries]))
    return path


def _keep_error(path, reference) -> str:
    with pytest.raises(InputError) as err:
        load_centroids(path, reference, outside="keep")
    return str(err.value)


def test_centroids_that_cannot_belong_to_the_scan_or_one_spine_are_refused(tmp_path):
    reference = Image(np.zeros((60, 60, 200), np.uint8), np.eye(4))
    column = [{"label": k, "X": 30, "Y": 30, "Z": 20 + 35 * i} for i, k in enumerate((20, 21, 22))]
    assert sorted(load_centroids(_write(tmp_path / "ok.json", column), reference, outside="keep"))
    another_scan = [{**e, "Z": e["Z"] + 400} for e in column]
    message = _keep_error(_write(tmp_path / "other.json", another_scan), reference)
    assert "all 3 centroids lie outside" in message and "other.json" in message
    far = [*column[:2], {**column[2], "Z": 350}]
    assert "far outside" in _keep_error(_write(tmp_path / "far.json", far), reference)
    swapped = [{**column[0], "label": 21}, {**column[1], "label": 20}, column[2]]
    message = _keep_error(_write(tmp_path / "swap.json", swapped), reference)
    assert "out of order" in message
    crowded = [{**e, "Z": 20 + 3 * i} for i, e in enumerate(column)]
    assert "mm apart per level" in _keep_error(_write(tmp_path / "tight.json", crowded), reference)


def test_a_real_centroid_file_of_another_scan_is_refused(real_data):
    json_path, _ = REAL_JSON_WITH_MASK["verse004"]
    ct = load_scan(
        real_data
        / "ctfu/rawdata/sub-ctfu00001/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz"
    )
    with pytest.raises(InputError) as err:
        load_centroids(real_data / json_path, ct, outside="keep")
    assert "sub-verse004_seg-subreg_ctd.json" in str(err.value)


@pytest.mark.parametrize("name", sorted(REAL_JSON_WITH_MASK))
def test_real_centroid_files_pass_the_geometry_check_on_their_own_scan(real_data, name):
    json_path, mask_path = REAL_JSON_WITH_MASK[name]
    assert load_centroids(real_data / json_path, load_mask(real_data / mask_path), outside="keep")


def test_unknown_label_malformed_entries_and_bad_json(tmp_path):
    reference = Image(np.zeros((10, 20, 30), np.uint8), np.eye(4))
    cases = {
        "unknown.json": [{"direction": ["R", "A", "S"]}, {"label": 99, "X": 1, "Y": 1, "Z": 1}],
        "missing.json": [{"direction": ["R", "A", "S"]}, {"label": 20, "X": 1, "Y": 1}],
        "codes.json": [{"direction": ["R", "A", "R"]}, {"label": 20, "X": 1, "Y": 1, "Z": 1}],
        "twice.json": [
            {"label": 20, "X": 1, "Y": 1, "Z": 1},
            {"label": 20, "X": 1, "Y": 1, "Z": 1},
        ],
        "dict.json": {"label": 20},
    }
    expected = {"unknown.json": "unknown vertebra label 99", "missing.json": "malformed",
                "codes.json": "axis codes", "twice.json": "twice", "dict.json": "list"}  # fmt: skip
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        assert expected[name] in _error(path, reference)
    broken = tmp_path / "broken.json"
    broken.write_text("[{'label': 20")
    assert "not valid JSON" in _error(broken, reference)


def test_centroids_from_mask_known_answer():
    data = np.zeros((10, 10, 10), np.int16)
    data[2:4, 2:4, 2:4] = 20  # centre (2.5, 2.5, 2.5)
    data[6:9, 5, 5] = 21  # centre (7, 5, 5)
    affine = np.diag([2.0, 1.0, 0.5, 1.0])
    affine[:3, 3] = (10, 20, 30)
    centroids = centroids_from_mask(Image(data, affine))
    np.testing.assert_allclose(centroids[20], [15, 22.5, 31.25])
    np.testing.assert_allclose(centroids[21], [24, 25, 32.5])


_ORIENTATIONS = [a + b + c for a in "LR" for b in "AP" for c in "IS"]
_PERMUTATIONS = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]


@settings(max_examples=60, deadline=None)
@given(
    perm=st.sampled_from(_PERMUTATIONS),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.floats(0.5, 3.0)] * 3),
    file_codes=st.sampled_from(_ORIENTATIONS),
    file_perm=st.sampled_from(_PERMUTATIONS),
    fractions=st.lists(st.tuples(*[st.floats(0.0, 1.0)] * 3), min_size=1, max_size=5),
)
def test_save_then_load_round_trips_in_any_orientation(
    tmp_path_factory, perm, signs, spacing, file_codes, file_perm, fractions
):
    shape = (7, 11, 13)
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, list(perm)] * np.array(signs) * np.array(spacing)
    affine[:3, 3] = (-5.0, 12.0, 100.0)
    reference = Image(np.zeros(shape, np.uint8), affine)
    centroids = {
        label: reference.voxel_to_world(np.array(f) * (np.array(shape) - 1))
        for label, f in zip((8, 20, 21, 24, 28), fractions, strict=False)
    }
    codes = "".join(file_codes[i] for i in file_perm)
    path = tmp_path_factory.mktemp("c") / "ctd.json"
    save_centroids(centroids, path, reference, axcodes=codes)
    assert json.loads(path.read_text())[0] == {"direction": list(codes)}
    loaded = load_centroids(path, reference)
    assert list(loaded) == list(centroids)
    for label, world in centroids.items():
        np.testing.assert_allclose(loaded[label], world, atol=2e-3)


def test_saved_json_on_a_saved_pir_image_matches_verse_convention(tmp_path):
    """Indices written for a PIR image in its own codes are that image's voxel indices."""
    affine = np.array([[0, 0, 2.0, -30], [-1.0, 0, 0, 40], [0, -1.0, 0, 50], [0, 0, 0, 1]])
    image = Image(np.zeros((12, 14, 10), np.int16), affine)
    save_image(image, tmp_path / "m.nii.gz")
    world = image.voxel_to_world([3.0, 4.5, 6.0])
    save_centroids({20: world}, tmp_path / "c.json", image)
    entries = json.loads((tmp_path / "c.json").read_text())
    assert entries == [{"direction": ["P", "I", "R"]}, {"label": 20, "X": 3.0, "Y": 4.5, "Z": 6.0}]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('[{"direction": 5}, {"label": 20, "X": 1, "Y": 1, "Z": 1}]', "not a list of axis codes"),
        (
            '[{"direction": ["L","P","S"]}, {"label": 1e999, "X": 1, "Y": 1, "Z": 1}]',
            "whole number",
        ),
        ('[{"direction": ["L","P","S"]}, {"label": 21.9, "X": 1, "Y": 1, "Z": 1}]', "whole number"),
        ('[{"direction": ["L","P","S"]}, {"label": true, "X": 1, "Y": 1, "Z": 1}]', "whole number"),
    ],
)
def test_malformed_direction_and_labels_are_input_errors(tmp_path, entries, message):
    from spinefx.image import Image

    path = tmp_path / "ctd.json"
    path.write_text(entries)
    reference = Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    with pytest.raises(InputError, match=message):
        load_centroids(path, reference, outside="keep")


def test_a_whole_float_label_is_accepted(tmp_path):
    from spinefx.image import Image

    path = tmp_path / "ctd.json"
    path.write_text('[{"direction": ["L","P","S"]}, {"label": 21.0, "X": 1, "Y": 1, "Z": 1}]')
    reference = Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    assert list(load_centroids(path, reference, outside="keep")) == [21]
