"""Upload parsing is safe: images only, no path traversal, links or zip bombs."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from spinefx.app.uploads import extract_zip_safely, safe_name, save_scan_upload
from spinefx.errors import InputError


def _zip(tmp_path, members: dict[str, bytes], *, link: str | None = None):
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/abs/evil.dcm"])
def test_zip_members_outside_the_folder_are_refused(tmp_path, name):
    path = _zip(tmp_path, {"ok/1.dcm": b"x", name: b"y"})
    with pytest.raises(InputError, match="outside the archive"):
        extract_zip_safely(path, tmp_path / "out", max_bytes=10_000)
    assert not (tmp_path / "evil.dcm").exists()


def test_zip_links_are_refused(tmp_path):
    path = _zip(tmp_path, {"1.dcm": b"x"}, link="series/link.dcm")
    with pytest.raises(InputError, match="link"):
        extract_zip_safely(path, tmp_path / "out", max_bytes=10_000)


def test_zip_bomb_stops_at_the_size_limit_and_leaves_nothing(tmp_path):
    path = _zip(tmp_path, {"big.dcm": b"\0" * 5_000_000})
    assert path.stat().st_size < 100_000
    out = tmp_path / "out"
    with pytest.raises(InputError, match="expands to more than"):
        extract_zip_safely(path, out, max_bytes=1_000_000)
    assert not out.exists()


def test_regular_zip_is_extracted_with_its_folders(tmp_path):
    path = _zip(tmp_path, {"series/1.dcm": b"a", "series/2.dcm": b"bb"})
    assert extract_zip_safely(path, tmp_path / "out", max_bytes=100) == 2
    assert (tmp_path / "out" / "series" / "2.dcm").read_bytes() == b"bb"


@pytest.mark.parametrize("name", ["vertebra.npy", "model.pt", "x.pkl", "scan"])
def test_pickle_formats_and_unknown_types_are_refused(tmp_path, name):
    with pytest.raises(InputError, match="unsupported upload type"):
        save_scan_upload(b"\x93NUMPY", name, tmp_path, max_bytes=100)


def test_fake_gzip_and_oversize_uploads_are_refused(tmp_path):
    with pytest.raises(InputError, match="not gzip"):
        save_scan_upload(b"plain", "ct.nii.gz", tmp_path, max_bytes=100)
    with pytest.raises(InputError, match="too large"):
        save_scan_upload(b"x" * 200, "ct.nii", tmp_path, max_bytes=100)


def test_uploaded_names_lose_their_folders():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\x\\ct scan.nii.gz") == "ct_scan.nii.gz"
    assert safe_name("..") == "upload"


def test_not_a_zip(tmp_path):
    path = tmp_path / "in.zip"
    path.write_bytes(io.BytesIO(b"nope").read())
    with pytest.raises(InputError, match="not a valid zip"):
        extract_zip_safely(path, tmp_path / "out", max_bytes=100)
