"""The app's HTTP API on a tiny dissected run: table, concept panel, images, editing, reports."""

from __future__ import annotations

import io
import re
import shutil

import yaml
from PIL import Image as PILImage


def _upload(client, scan_path, ctd_path=None):
    files = {"scan": (scan_path.name, scan_path.read_bytes())}
    if ctd_path is not None:
        files["centroids"] = (ctd_path.name, ctd_path.read_bytes())
    return client.post("/api/scans", files=files)


def _is_png(resp) -> bool:
    return resp.status_code == 200 and resp.content.startswith(b"\x89PNG")


def test_index_page_has_the_upload_form_and_run_name(client, tiny_run):
    page = client.get("/").text
    assert 'id="upload-form"' in page and tiny_run.name in page and "atlas.yaml" in page


def test_upload_gives_one_row_per_vertebra_with_probabilities(client, phantom_files):
    r = _upload(client, *phantom_files)
    assert r.status_code == 200, r.text
    s = r.json()
    assert [v["level"] for v in s["vertebrae"]] == ["T12", "L1", "L2", "L3", "L4"]
    assert all(0.0 <= v["probability"] <= 1.0 for v in s["vertebrae"])
    assert all(v["flagged"] == (v["probability"] >= 0.5) for v in s["vertebrae"] if v["assessable"])
    assert s["has_atlas"] and s["notes"] == []
    assert _is_png(client.get(f"/api/scans/{s['scan_id']}/overview.png"))


def test_concept_panel_lists_top_units_with_concepts_and_images(client, phantom_files):
    sid = _upload(client, *phantom_files).json()["scan_id"]
    p = client.get(f"/api/scans/{sid}/vertebrae/20/panel").json()
    assert p["level"] == "L1" and p["has_gradcam"] and len(p["units"]) == 5
    rel = [u["relevance"] for u in p["units"]]
    assert rel == sorted(rel, reverse=True)
    assert {"tp", "fp", "tn"} <= set(p["units"][0]["concept"]["ranks"])
    base = f"/api/scans/{sid}/vertebrae/20/slice.png"
    for plane in ("sagittal", "axial", "coronal"):
        u = p["units"][0]["unit"]
        r = client.get(base, params={"layer": "unit", "unit": u, "plane": plane, "index": 3})
        assert _is_png(r)
    assert _is_png(client.get(base, params={"layer": "gradcam"}))
    assert _is_png(client.get(base, params={"layer": "ct", "plane": "axial"}))
    with_collage = [u for u in p["units"] if u["concept"]["has_collage"]]
    for u in with_collage[:1]:
        assert _is_png(client.get(f"/api/units/{u['unit']}/collage.png"))
    bad = client.get(base, params={"layer": "unit", "unit": 9999})
    assert bad.status_code == 400 and "not among the top units" in bad.json()["detail"]


def test_expert_edit_is_saved_to_the_atlas_and_keeps_the_previous_version(
    tiny_run, phantom_files, tmp_path
):
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    run_dir = tmp_path / "run"  # a copy: the session's tiny run (and its atlas) stays unedited
    shutil.copytree(tiny_run, run_dir)
    atlas = run_dir / "dissection" / "atlas.yaml"
    before = atlas.read_text()
    app = create_app(load_model_run(run_dir), cache_dir=tmp_path / "cache")
    with TestClient(app, headers=token_headers(app)) as client:
        sid = _upload(client, *phantom_files).json()["scan_id"]
        panel_url = f"/api/scans/{sid}/vertebrae/20/panel"
        shown = client.get(panel_url).json()["units"]
        unit = shown[-1]["unit"]  # a unit the panel shows (the least relevant of the top five)
        assert shown[-1]["concept"]["label"] != "anterior wedge"
        r = client.post(
            f"/api/units/{unit}", json={"label": "anterior wedge", "explanation": "front"}
        )
        assert r.status_code == 200
        assert (r.json()["unit"], r.json()["label"], r.json()["explanation"]) == (
            unit,
            "anterior wedge",
            "front",
        )
        saved = {u["unit"]: u for u in yaml.safe_load(atlas.read_text())["units"]}
        assert saved[unit]["concept_label"] == "anterior wedge"
        assert saved[unit]["explanation"] == "front"
        assert (run_dir / "dissection" / "atlas.prev.yaml").read_text() == before
        after = {u["unit"]: u["concept"] for u in client.get(panel_url).json()["units"]}
        assert after[unit]["label"] == "anterior wedge" and after[unit]["explanation"] == "front"
        others = {u["unit"]: u["concept"]["label"] for u in shown if u["unit"] != unit}
        assert {k: after[k]["label"] for k in others} == others  # only the edited unit changed
        assert client.post("/api/units/100000", json={"label": "x"}).status_code == 400
    assert (tiny_run / "dissection" / "atlas.yaml").read_text() == before


def test_draft_and_reports_are_marked_draft_and_carry_edits(client, phantom_files):
    sid = _upload(client, *phantom_files).json()["scan_id"]
    text = client.get(f"/api/scans/{sid}/draft").json()["text"]
    assert text.startswith("DRAFT") and "5 vertebrae assessed (T12 to L4)" in text
    r = client.post(f"/api/scans/{sid}/report.html", data={"findings": "Edited: L1 <b>ok</b>"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert "Edited: L1 &lt;b&gt;ok&lt;/b&gt;" in r.text and "DRAFT" in r.text
    images = re.findall(r"data:image/png;base64,", r.text)
    assert len(images) >= 3
    r = client.post(f"/api/scans/{sid}/report.txt", data={"findings": "my text"})
    assert r.text == "my text"


def test_upload_size_limit_gives_a_clear_413(client):
    big = b"\0" * 3_500_000
    r = client.post("/api/scans", files={"scan": ("ct.nii", big)})
    assert r.status_code == 413
    assert "limit is 2 MB" in r.json()["detail"]


def test_unreadable_files_show_the_input_error(client, tmp_path, phantom_files):
    r = client.post("/api/scans", files={"scan": ("ct.nii", b"not a nifti at all")})
    assert r.status_code == 400 and "ct.nii" in r.json()["detail"]
    r = client.post("/api/scans", files={"scan": ("v.npy", b"\x93NUMPY")})
    assert r.status_code == 400 and "not accepted" in r.json()["detail"]
    scan, _ = phantom_files
    # no centroids: automatic localisation on the CT; the phantom's bodies are too far apart
    # for what it finds to be one spine, so it is refused rather than guessed
    r = _upload(client, scan)
    detail = r.json()["detail"]
    assert r.status_code == 400 and "automatic localisation is implausible" in detail, detail
    assert "VerSe centroid JSON" in detail
    r = client.post(
        "/api/scans",
        files={"scan": (scan.name, scan.read_bytes()), "centroids": ("c.json", b"{broken")},
    )
    detail = r.json()["detail"]
    assert r.status_code == 400 and "centroids.json: not valid JSON" in detail, detail
    assert "Fix: pass a VerSe centroid JSON file" in detail, detail


def test_unknown_scan_is_404(client):
    assert client.get("/api/scans/nope/draft").status_code == 404


def test_slice_png_dimensions_follow_the_patch_geometry(client, phantom_files):
    sid = _upload(client, *phantom_files).json()["scan_id"]
    r = client.get(f"/api/scans/{sid}/vertebrae/19/slice.png", params={"layer": "ct"})
    img = PILImage.open(io.BytesIO(r.content))
    assert img.size == (256, 256)  # 48 x 48 voxels of 2 mm: square


def example_paths(client):
    from spinefx.app.examples import get_example

    example = get_example("synth0001", client.app.state.spinefx.cache_dir)
    return example.scan_path, example.centroids_path


def expected_levels(scan_path, ctd_path) -> list[str]:
    """Thoracic/lumbar levels of a centroid file, cranial first (what the table must list)."""
    from spinefx.conventions import SPINE_ORDER, level_name
    from spinefx.io import load_centroids, load_scan

    labels = load_centroids(ctd_path, load_scan(scan_path))
    return [level_name(k) for k in SPINE_ORDER if k in labels and k >= 8]


def test_bundled_synthetic_example_is_generated_once_and_analysed(client):
    r = client.post("/api/examples/synth0001")
    assert r.status_code == 200, r.text
    levels = [v["level"] for v in r.json()["vertebrae"]]
    assert levels == expected_levels(*example_paths(client))
    assert client.post("/api/examples/synth9999").status_code == 400


def test_run_without_atlas_degrades_with_a_clear_message(tiny_run, phantom_files, tmp_path):
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    bare = tmp_path / "bare-run"
    bare.mkdir()
    shutil.copy(tiny_run / "checkpoint.pt", bare / "checkpoint.pt")
    app = create_app(load_model_run(bare), cache_dir=tmp_path / "c")
    with TestClient(app, headers=token_headers(app)) as c:
        assert "no concept atlas" in c.get("/").text
        s = _upload(c, *phantom_files).json()
        assert not s["has_atlas"] and "spinefx dissect" in s["notes"][0]
        r = c.get(f"/api/scans/{s['scan_id']}/vertebrae/20/panel")
        assert r.status_code == 400 and "spinefx dissect" in r.json()["detail"]
        assert c.get(f"/api/scans/{s['scan_id']}/draft").json()["text"].startswith("DRAFT")
        r = c.post("/api/units/3", json={"label": "x"})
        assert r.status_code == 400 and "no concept atlas" in r.json()["detail"]


def test_app_command_binds_to_localhost_by_default():
    from spinefx.cli import build_parser

    args = build_parser().parse_args(["app", "some-run"])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 8501, 512.0)


def test_allowed_hosts_refuse_a_foreign_host_header(tiny_run, tmp_path):
    from fastapi.testclient import TestClient

    from spinefx.app import create_app
    from spinefx.reporting import load_model_run

    app = create_app(load_model_run(tiny_run), cache_dir=tmp_path, allowed_hosts=["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"host": "evil.example"}).status_code == 400


def test_a_vertebra_mask_upload_gives_the_vertebrae(real_data, tiny_run, tmp_path):
    from fastapi.testclient import TestClient

    from spinefx.app import create_app, token_headers
    from spinefx.reporting import load_model_run

    scan = real_data / "verse/rawdata/sub-verse007/sub-verse007_ct.nii.gz"
    mask = real_data / "verse/derivatives/sub-verse007/sub-verse007_seg-vert_msk.nii.gz"
    app = create_app(load_model_run(tiny_run), max_upload_mb=20, cache_dir=tmp_path / "c")
    files = {"scan": (scan.name, scan.read_bytes()), "mask": (mask.name, mask.read_bytes())}
    with TestClient(app, headers=token_headers(app)) as c:
        r = c.post("/api/scans", files=files, data={"mask_numbering": "verse"})
        assert r.status_code == 200, r.text
        levels = [v["level"] for v in r.json()["vertebrae"]]
        assert levels == ["T9", "T10", "T11", "T12", "L1", "L2", "L3"]
        assert "mask" in r.json()["centroid_source"]
        morph = [v["morphometry"] for v in r.json()["vertebrae"]]
        assert all(m and 10 < m["posterior_height_mm"] < 45 for m in morph), morph
        html = c.post(f"/api/scans/{r.json()['scan_id']}/report.html", data={"findings": "x"})
        assert "Morphometric grade" in html.text and "Ha / Hm / Hp (mm)" in html.text
        both = {**files, "centroids": ("c.json", b"[]")}
        r = c.post("/api/scans", files=both)
        assert r.status_code == 400 and "one of them" in r.json()["detail"]
        r = c.post("/api/scans", files={**files, "mask": ("m.zip", b"PK")})
        assert r.status_code == 400 and "NIfTI" in r.json()["detail"]
        r = c.post("/api/scans", files=files, data={"mask_numbering": "roman"})
        assert r.status_code == 400 and "numbering" in r.json()["detail"]


def test_overview_and_panel_are_radiological_in_world_coordinates(client, phantom_files):
    """The phantom's posterior elements (world y = -22 mm) show on the right of the overview."""
    import numpy as np

    from spinefx.display import display_slice
    from spinefx.io import load_scan

    sid = _upload(client, *phantom_files).json()["scan_id"]
    png = np.asarray(
        PILImage.open(io.BytesIO(client.get(f"/api/scans/{sid}/overview.png").content))
    )
    view = display_slice(load_scan(phantom_files[0]), plane="sagittal", through_mm=(0, 0, 0))
    height, width = png.shape[:2]
    scale_x, scale_y = width / view.pixels.shape[1], height / view.pixels.shape[0]
    row = int((view.pixel_of((0, 0, 30.0))[1] + 0.5) * scale_y)  # mid-L1 (centroid z = 30 mm)
    col_posterior = int((view.pixel_of((0, -22.0, 30.0))[0] + 0.5) * scale_x)
    col_soft = int((view.pixel_of((0, 30.0, 30.0))[0] + 0.5) * scale_x)  # anterior soft tissue
    assert col_posterior > width / 2 > col_soft  # posterior on the right, anterior left
    assert png[row, col_posterior, 0] > 150 > png[row, col_soft, 0]
    panel = client.get(f"/api/scans/{sid}/vertebrae/20/panel").json()
    positions = panel["positions_mm"]["sagittal"]
    assert len(positions) == panel["slices"]["sagittal"]
    centre = len(positions) // 2
    assert abs(positions[centre]) < 3  # L1's patch centre: the centroid's world x = 0 mm
    assert positions == sorted(positions)  # slice index grows towards the patient's right
