"""The real sample folder read as subjects: grades, licences, grids."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.synthesis.real_sources import find_real_subjects, load_real_mask, load_real_pair


def test_real_subjects_carry_official_grades_and_licences(real_data):
    subjects = {s.subject_id: s for s in find_real_subjects(real_data)}
    assert {"verse006", "verse007", "verse008", "verse004", "ctfu00001"} <= set(subjects)
    v7 = subjects["verse007"].scans[0]
    assert v7.grades[19] == (2, "wedge") and v7.grades[20] == (2, "biconcave")
    assert v7.grades[16] == (0, None)
    # the two series of subject 404 are one subject (one fold)
    assert {s.scan_id for s in subjects["verse404"].scans} == {"verse209", "verse256"}
    assert not subjects["verse404"].shippable and not subjects["ctfu00001"].shippable
    assert subjects["verse007"].shippable and subjects["tptbox"].shippable
    # screws are foreign material, not grades
    ctfu = {s.scan_id: s for s in subjects["ctfu00001"].scans}
    session = ctfu["sub-ctfu00001_ses-20080508_ce-no"]
    assert session.foreign_material == {22, 23} and 22 not in session.grades
    predicted = [s for s in subjects.values() if s.collection == "verse_predicted_masks"]
    graded = sum(len(sc.grades) for s in predicted for sc in s.scans)
    fractured = sum(g >= 1 for s in predicted for sc in s.scans for g, _ in sc.grades.values())
    assert (graded, fractured) == (119, 13)


def test_real_pairs_share_one_grid_and_masks_are_integer_verse_ids(real_data):
    for subject in find_real_subjects(real_data):
        for scan in subject.ct_scans:
            ct, mask = load_real_pair(scan)
            assert ct.shape == mask.shape and np.allclose(ct.affine, mask.affine, atol=1e-3)
            assert mask.data.dtype.kind == "i"
    predicted = real_data / "verse_predicted_masks"
    subject = next(s for s in find_real_subjects(real_data) if s.subject_id == "verse018")
    mask = load_real_mask(subject.scans[0])
    assert subject.scans[0].mask_path.parent == predicted
    assert set(np.unique(mask.data)) <= {0, *range(1, 26), 26, 28}


def test_a_folder_that_is_not_the_real_samples_is_refused(tmp_path):
    with pytest.raises(InputError, match="real sample folder"):
        find_real_subjects(tmp_path)
