"""The app's request guards: streaming size limit, same-origin + token, busy bound, clean errors."""

from __future__ import annotations

import shutil
import threading

import pytest

from spinefx.app.guards import HeavyGate, same_origin


def _scope(**headers) -> dict:
    return {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": "127.0.0.1:8501"}, True),
        ({"host": "127.0.0.1:8501", "origin": "http://127.0.0.1:8501"}, True),
        ({"host": "127.0.0.1:8501", "origin": "http://evil.example"}, False),
        ({"host": "127.0.0.1:8501", "origin": "null"}, False),
        ({"host": "127.0.0.1:8501", "referer": "http://127.0.0.1:8501/"}, True),
        ({"host": "127.0.0.1:8501", "referer": "https://evil.example/page"}, False),
        ({"host": "127.0.0.1:8501", "origin": "http://127.0.0.1:9999"}, False),
    ],
)
def test_same_origin_compares_origin_or_referer_with_the_host(headers, ok):
    assert same_origin(_scope(**headers)) is ok


def test_posts_without_the_token_or_from_another_site_are_refused(client, phantom_files):
    from fastapi.testclient import TestClient

    scan, ctd = phantom_files
    files = {"scan": (scan.name, scan.read_bytes()), "centroids": (ctd.name, ctd.read_bytes())}
    bare = TestClient(client.app)  # no token header
    r = bare.post("/api/scans", files=files)
    assert r.status_code == 403 and "reload the page" in r.json()["detail"]
    r = bare.post("/api/scans", files=files, headers={"X-Spinefx-Token": "guess"})
    assert r.status_code == 403
    r = client.post("/api/scans", files=files, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = client.post(
        "/api/units/3", json={"label": "x"}, headers={"Referer": "http://evil.example/"}
    )
    assert r.status_code == 403
    assert client.app.state.spinefx.scans == {}  # nothing was analysed
    token = client.app.state.spinefx.token
    assert f'content="{token}"' in bare.get("/").text  # the page carries it; GET needs none
    r = client.post("/api/scans", files=files, headers={"Origin": str(client.base_url)})
    assert r.status_code == 200, r.text


def test_a_chunked_upload_is_cut_off_at_the_limit(client):
    """No Content-Length: the app answers 413 (the test client sends the body chunked)."""
    boundary = "spinefxboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="scan"; filename="ct.nii"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def stream():
        yield head
        for _ in range(20):
            yield b"\0" * 1_000_000

    r = client.post(
        "/api/scans",
        content=stream(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413 and "limit is 2 MB" in r.json()["detail"]


def test_the_size_guard_stops_reading_a_stream_at_the_limit():
    """At most one chunk past the limit is read from the client, whatever the app does."""
    import asyncio

    from spinefx.app.guards import BodySizeLimit

    chunk, limit = 1_000_000, 3_000_000
    delivered = 0

    async def receive():
        nonlocal delivered
        delivered += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": delivered < 200 * chunk}

    async def app(scope, receive, send):  # an app that spools the whole body (as forms do)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    guard = BodySizeLimit(app, limit_bytes=lambda: limit, message=lambda n: f"over {n}")
    scope = {"type": "http", "method": "POST", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413 and b"over 3000000" in sent[1]["body"]
    assert delivered <= limit + chunk


def test_declared_oversized_body_is_refused_before_reading(client):
    r = client.post("/api/scans", content=b"x" * 10, headers={"Content-Length": "999999999999"})
    assert r.status_code == 413


def test_busy_app_answers_429_and_frees_its_slot(client, phantom_files):
    gate = client.app.state.spinefx.heavy
    scan, ctd = phantom_files
    files = {"scan": (scan.name, scan.read_bytes()), "centroids": (ctd.name, ctd.read_bytes())}
    with gate.slot(), gate.slot():  # the default bound is two analyses at once
        r = client.post("/api/scans", files=files)
        assert r.status_code == 429 and r.headers["retry-after"] == "5"
        assert "--max-concurrent" in r.json()["detail"]
    assert client.post("/api/scans", files=files).status_code == 200


def test_heavy_gate_counts_concurrent_holders():
    gate = HeavyGate(2)
    entered, release = threading.Barrier(3), threading.Event()
    refused = []

    def hold():
        with gate.slot():
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    try:
        with gate.slot():
            pass
    except Exception as exc:  # noqa: BLE001 - the refusal is what is tested
        refused.append(type(exc).__name__)
    release.set()
    for t in threads:
        t.join()
    assert refused == ["Busy"]
    with gate.slot():  # both slots are free again
        pass
    with pytest.raises(ValueError):
        HeavyGate(0)


def test_unit_edits_must_be_text(tiny_run, tmp_path):
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    app = create_app(load_model_run(run_dir), cache_dir=tmp_path / "cache")
    with TestClient(app, headers=token_headers(app)) as c:
        r = c.post("/api/units/3", json={"label": {"a": 1}})
        assert r.status_code == 400 and "label" in r.json()["detail"], r.text
        assert c.post("/api/units/3", json={"label": 5}).status_code == 400
        assert c.post("/api/units/3", json={"colour": "red"}).status_code == 400
        assert c.post("/api/units/3", json={"label": "x" * 201}).status_code == 400
        r = c.post("/api/units/3", json={"label": None, "explanation": "kept"})
        assert r.status_code == 200 and r.json()["label"] == "" and r.json()["label"] != "None"


def test_error_messages_do_not_show_server_folders(client, tmp_path):
    r = client.post("/api/scans", files={"scan": ("ct.nii", b"not a nifti at all")})
    detail = r.json()["detail"]
    assert r.status_code == 400 and "ct.nii" in detail
    assert "/tmp" not in detail and "spinefx-upload-" not in detail, detail


def test_public_message_keeps_names_and_urls():
    from spinefx.app.server import public_message

    text = "/tmp/spinefx-upload-x1/ct.nii: unreadable; see https://example.org/a/b or ./rel/f.json"
    assert public_message(text) == "ct.nii: unreadable; see https://example.org/a/b or ./rel/f.json"


def test_uploaded_scan_over_the_image_cap_is_refused_on_its_header(tiny_run, tmp_path):
    import gzip

    import nibabel as nib
    import numpy as np
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    header = nib.Nifti1Header()
    header.set_data_shape((1200, 1200, 1200))
    header.set_data_dtype(np.int16)
    header.set_qform(np.eye(4), code=1)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 4096
    app = create_app(load_model_run(tiny_run), cache_dir=tmp_path, max_image_gb=0.5)
    with TestClient(app, headers=token_headers(app)) as c:
        r = c.post("/api/scans", files={"scan": ("bomb.nii.gz", gzip.compress(raw))})
    assert r.status_code == 400 and "bomb.nii.gz" in r.json()["detail"]
    assert "limit" in r.json()["detail"] or "can hold" in r.json()["detail"]
