"""Grade tables: the official appendix and its long form agree; ctfu codes map as documented."""

from __future__ import annotations

import pandas as pd
import pytest

from spinefx.errors import InputError
from spinefx.io import load_grade_table, read_ctfu_labels

KEY = ["series_id", "level"]


@pytest.fixture(scope="module")
def appendix(real_data):
    return load_grade_table(real_data / "verse_labels" / "ryai190138_appendixe1.xlsx")


@pytest.fixture(scope="module")
def long_form(real_data):
    return load_grade_table(real_data / "verse_labels" / "verse19_loeffler_per_vertebra_long.csv")


def test_appendix_and_long_csv_are_the_same_table(appendix, long_form):
    a = appendix.drop(columns="source_code").sort_values(KEY).reset_index(drop=True)
    b = long_form.drop(columns="source_code").sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("table", ["appendix", "long_form"])
def test_official_counts(request, table):
    grades = request.getfixturevalue(table)
    t1_l5 = grades[grades["vertebra_label"].between(8, 24)]
    assert len(t1_l5) == 1494  # graded T1-L5 entries (0-3 or x)
    assert int((t1_l5["genant_grade"] >= 1).sum()) == 289  # fractured
    assert int(t1_l5["foreign_material"].sum()) == 31
    assert t1_l5.loc[t1_l5["foreign_material"], "genant_grade"].isna().all()
    assert set(grades["split"]) == {"train", "val", "test"}
    fractured = grades[grades["genant_grade"] >= 1]
    assert fractured["shape"].isin(["wedge", "biconcave", "crush"]).all()


def test_appendix_lists_160_series(appendix, long_form):
    assert len(appendix.attrs["series"]) == 160
    assert appendix["series_id"].nunique() == 153  # 7 series have no graded T1-L6 level


def test_verse004_official_grades(appendix):
    rows = appendix[appendix["series_id"] == "4"].set_index("level")
    assert rows["genant_grade"].to_dict() == {
        "T9": 2, "T10": 2, "T11": 0, "T12": 0, "L1": 3, "L2": 0, "L3": 0,
    }  # fmt: skip
    assert rows.loc["L1", "shape"] == "crush" and rows.loc["T9", "shape"] == "wedge"
    assert set(rows["split"]) == {"train"}


def test_ctfu_codes(real_data):
    grades = read_ctfu_labels(real_data / "ctfu" / "labels.tsv")
    s0 = grades[grades["series_id"] == "sub-ctfu00001_ses-20140908_split-0_ce-no"].set_index(
        "level"
    )
    assert len(s0) == 17
    assert s0.loc[["L2", "L3", "L4"], "foreign_material"].all()  # code 6: pedicle screws
    assert s0.loc[["L2", "L3", "L4"], "genant_grade"].isna().all()
    assert (s0.drop(index=["L2", "L3", "L4"])["genant_grade"] == 0).all()


def test_ctfu_non_genant_codes_are_ungraded_and_kept(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("ID\tdef_T12\tdef_L1\tdef_L2\tdef_L3\nsub-a\t4\t2\t9\t\n")
    grades = read_ctfu_labels(path).set_index("level")
    assert grades.loc["L1", "genant_grade"] == 2
    assert pd.isna(grades.loc["T12", "genant_grade"]) and grades.loc["T12", "source_code"] == "4"
    assert pd.isna(grades.loc["L2", "genant_grade"]) and not grades.loc["L2", "foreign_material"]
    assert "L3" not in grades.index


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,1,training,T14,,0,0", "unknown level 'T14'"),
        ("1,1,training,L1,21,0,0", "label 21 does not match level L1"),
        ("1,1,training,L1,20,5,0", "grade '5' is not 0-3"),
        ("1,1,training,L1,abc,0,0", "label abc does not match level L1"),
        ("1,1,training,L1,20,2,7", "shape '7'"),
    ],
)
def test_bad_long_table_rows_name_file_line_and_fix(tmp_path, row, message):
    path = tmp_path / "grades.csv"
    path.write_text("verse_ID,subject_ID,split,level,label,grade,shape\n" + row + "\n")
    with pytest.raises(InputError) as exc:
        load_grade_table(path)
    text = str(exc.value)
    assert message in text and str(path) in text and "line 2" in text and "Fix:" in text


def test_ctfu_unknown_code_names_file_and_fix(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("ID\tdef_L1\nsub-a\tfoo\n")
    with pytest.raises(InputError) as exc:
        read_ctfu_labels(path)
    assert "unknown code 'foo'" in str(exc.value) and str(path) in str(exc.value)
