"""Fuzz suite: malformed NIfTI headers, DICOM tags, centroid JSON and masks.

Every entry point (``load_scan``, ``load_mask``, ``load_vertebra_mask``, ``load_centroids``,
``measure_vertebrae``) must either succeed or raise :class:`~spinefx.errors.InputError` (or its
:class:`~spinefx.errors.GeometryError` sibling, both :class:`SpinefxError`): never another
exception, which would reach the user as a traceback. The number of cases each test ran is
counted; ``SPINEFX_FUZZ_REPORT=FILE`` appends the counts as JSON lines (the hardening benchmark
reads them). ``SPINEFX_FUZZ_EXAMPLES`` sets the examples per test (default 60).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinefx.errors import SpinefxError

EXAMPLES = int(os.environ.get("SPINEFX_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OUTCOMES: dict[str, Counter] = {}


def _record(test: str, outcome: str) -> None:
    OUTCOMES.setdefault(test, Counter())[outcome] += 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    target = os.environ.get("SPINEFX_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            for test, counts in OUTCOMES.items():
                handle.write(json.dumps({"test": test, **counts}) + "\n")


def _run(test: str, call) -> None:
    """Call ``call()``; a SpinefxError counts as a clear error, anything else fails the test."""
    try:
        call()
    except SpinefxError as exc:
        assert str(exc), "an error without a message"
        _record(test, "clear error")
        return
    except Exception as exc:  # noqa: BLE001 - this is what the suite looks for
        _record(test, "traceback")
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc
    _record(test, "success")


# --- NIfTI headers ---------------------------------------------------------------------------


def _valid_nifti_bytes() -> bytes:
    import nibabel as nib

    data = np.full((12, 10, 8), -1000, np.int16)
    data[3:9, 3:7, 2:6] = 600
    data[2:10, 2:8, 1:7][data[2:10, 2:8, 1:7] == -1000] = 40
    img = nib.Nifti1Image(data, np.diag([0.9, 0.9, 2.5, 1.0]))
    img.header.set_sform(img.affine, code=1)
    return img.to_bytes()


_BASE = _valid_nifti_bytes()
# (offset, struct format) of the header fields worth breaking (NIfTI-1, little-endian)
_FIELDS = {
    "sizeof_hdr": (0, "<i"),
    "dim": (40, "<8h"),
    "datatype": (70, "<h"),
    "bitpix": (72, "<h"),
    "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"),
    "sform_code": (254, "<h"),
    "quatern": (256, "<6f"),
    "srow": (280, "<12f"),
    "intent_code": (68, "<h"),
}
_weird_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -1.0, 1e-30, 1e30, 1e6, float("nan"), float("inf")]),
)
_weird_shorts = st.one_of(
    st.integers(-32768, 32767), st.sampled_from([0, -1, 1, 2, 3, 4, 7, 8, 32767])
)


@st.composite
def broken_nifti(draw) -> tuple[bytes, str]:
    raw = bytearray(_BASE)
    for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), min_size=1, max_size=4)):
        offset, fmt = _FIELDS[name]
        n = struct.calcsize(fmt) // struct.calcsize(fmt[-1])
        element = _weird_floats if fmt[-1] == "f" else _weird_shorts
        if fmt[-1] == "i":
            element = st.integers(-(2**31), 2**31 - 1)
        values = draw(st.lists(element, min_size=n, max_size=n))
        if name == "dim" and draw(st.booleans()):  # plausible rank with odd sizes
            values[0] = draw(st.integers(1, 7))
        struct.pack_into(fmt, raw, offset, *values)
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    suffix = draw(st.sampled_from([".nii", ".nii.gz"]))
    data = gzip.compress(bytes(raw)) if suffix == ".nii.gz" else bytes(raw)
    return data, suffix


@FUZZ
@given(case=broken_nifti())
def test_fuzzed_nifti_headers_load_or_give_an_input_error(case):
    from spinefx.io import load_scan
    from spinefx.io.scan import load_mask

    data, suffix = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        _run("nifti header -> load_scan", lambda: load_scan(path))
        _run("nifti header -> load_mask", lambda: load_mask(path, known_labels=None))


# --- DICOM tags ------------------------------------------------------------------------------

_TAG_VALUES = {
    "PixelSpacing": st.one_of(
        st.lists(_weird_floats.filter(lambda v: np.isfinite(v)), min_size=0, max_size=3),
        st.just("abc"),
    ),
    "ImagePositionPatient": st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=4),
    "ImageOrientationPatient": st.lists(st.floats(-2, 2), min_size=0, max_size=7),
    "Rows": st.integers(0, 70000),
    "Columns": st.integers(0, 70000),
    "BitsAllocated": st.sampled_from([1, 8, 12, 16, 32, 64]),
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "RescaleSlope": st.floats(-1e6, 1e6),
    "RescaleIntercept": st.floats(-1e6, 1e6),
    "Modality": st.sampled_from(["CT", "MR", "", "OT", "SEG"]),
    "SamplesPerPixel": st.sampled_from([1, 3]),
    "NumberOfFrames": st.integers(0, 4),
    "SliceThickness": st.floats(-10, 100),
}


@st.composite
def broken_series(draw) -> dict:
    n_slices = draw(st.integers(1, 4))
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        tag = draw(st.sampled_from(sorted(_TAG_VALUES)))
        which = draw(st.sampled_from(["all", "one"]))
        if draw(st.integers(0, 4)) == 0:
            edits.append((tag, which, None))  # deleted
        else:
            edits.append((tag, which, draw(_TAG_VALUES[tag])))
    truncate = draw(st.one_of(st.none(), st.integers(0, 600)))
    return {"n": n_slices, "edits": edits, "truncate": truncate}


def _write_slice(path: Path, k: int, uid: str, edits, only_first: bool) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", uid
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
    ds.PixelSpacing = [0.8, 0.8]
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
    pixels = np.full((8, 8), 24, np.uint16)
    pixels[2:6, 2:6] = 1724
    ds.PixelData = pixels.tobytes()
    for tag, which, value in edits:
        if which == "one" and not only_first:
            continue
        try:
            if value is None:
                if tag in ds:
                    delattr(ds, tag)
            else:
                setattr(ds, tag, value)
        except (ValueError, TypeError, OverflowError):
            continue  # pydicom refuses to write this value at all: not an input a file can hold
    try:
        ds.save_as(str(path), enforce_file_format=False)
    except Exception:  # noqa: BLE001 - pydicom cannot write it: keep what a broken writer leaves
        path.write_bytes(b"\0" * 128 + b"DICM")  # what a broken writer leaves behind


@FUZZ
@given(case=broken_series())
def test_fuzzed_dicom_tags_load_or_give_an_input_error(case):
    from pydicom.uid import generate_uid

    from spinefx.io import load_scan

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        folder.mkdir()
        uid = generate_uid()
        for k in range(case["n"]):
            _write_slice(folder / f"{k:03d}.dcm", k, uid, case["edits"], only_first=k == 0)
        if case["truncate"] is not None:
            first = folder / "000.dcm"
            first.write_bytes(first.read_bytes()[: case["truncate"]])
        _run("dicom tags -> load_scan", lambda: load_scan(folder))


# --- centroid JSON ---------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["LPS", "PIR", "RAS", "XYZ", "1e999", "NaN"]),
)
_any_json = st.recursive(
    _json_leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["label", "X", "Y", "Z", "direction", "a"]), children)
    ),
    max_leaves=12,
)


@st.composite
def centroid_text(draw) -> str:
    if draw(st.booleans()):
        return json.dumps(draw(_any_json))
    entries = [{"direction": draw(st.one_of(st.just(["P", "I", "R"]), _any_json))}]
    for _ in range(draw(st.integers(0, 5))):
        entry = {
            "label": draw(st.one_of(st.integers(-5, 40), _json_leaf)),
            "X": draw(st.one_of(st.floats(-50, 200), _json_leaf)),
            "Y": draw(st.one_of(st.floats(-50, 200), _json_leaf)),
            "Z": draw(st.one_of(st.floats(-50, 200), _json_leaf)),
        }
        if draw(st.integers(0, 5)) == 0:
            entry.pop(draw(st.sampled_from(sorted(entry))))
        entries.append(entry)
    text = json.dumps(entries)
    if draw(st.integers(0, 6)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@pytest.fixture(scope="module")
def reference_scan():
    from spinefx.image import Image

    data = np.full((40, 40, 40), -1000, np.int16)
    data[10:30, 10:30, 5:35] = 500
    return Image(data, np.diag([1.0, 1.0, 1.0, 1.0]), {})


@FUZZ
@given(text=centroid_text())
def test_fuzzed_centroid_json_loads_or_gives_an_input_error(text, reference_scan):
    from spinefx.io import load_centroids

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz_ctd.json"
        path.write_text(text)
        for outside in ("error", "drop"):
            _run(
                f"centroid json -> load_centroids(outside={outside})",
                lambda o=outside: load_centroids(path, reference_scan, outside=o),
            )


# --- masks -----------------------------------------------------------------------------------


@st.composite
def odd_mask(draw):
    shape = tuple(draw(st.lists(st.integers(1, 14), min_size=3, max_size=3)))
    kind = draw(st.sampled_from(["labels", "binary", "noise", "float", "empty", "huge_ids"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = np.zeros(shape, np.int16)
    if kind == "labels":
        for label in draw(st.lists(st.integers(1, 28), min_size=1, max_size=5, unique=True)):
            z0 = int(rng.integers(0, shape[2]))
            data[:, :, z0 : z0 + 2] = label
    elif kind == "binary":
        data[rng.random(shape) > 0.5] = 1
    elif kind == "noise":
        data = rng.integers(-5, 120, shape).astype(np.int16)
    elif kind == "huge_ids":
        data = rng.integers(0, 32000, shape).astype(np.int16)
    if kind == "float":
        data = rng.random(shape).astype(np.float32) * 30
    spacing = draw(st.sampled_from([0.5, 1.0, 2.0, 5.0]))
    return data, spacing


@FUZZ
@given(case=odd_mask())
def test_fuzzed_masks_load_measure_or_give_an_input_error(case):
    import nibabel as nib

    from spinefx.io.vertebra_masks import load_vertebra_mask
    from spinefx.morphometry.measure import measure_vertebrae

    data, spacing = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz_msk.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([spacing] * 3 + [1.0])), path)

        def measure():
            mask = load_vertebra_mask(path)
            measure_vertebrae(mask.image)

        _run("mask -> load_vertebra_mask + measure_vertebrae", measure)
