"""End to end in a real browser: upload a synthetic scan, see the table, a concept panel, a draft.

Drives Debian's Chromium through Playwright (no Playwright browser download). Skips with a
reason when no Chromium is installed. Screenshots go to the test's temporary folder, or to
``SPINEFX_SCREENSHOT_DIR`` when it is set (the README's are made by docs/figures/make_app_*.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def expected_levels(scan_path, ctd_path) -> list[str]:
    """Thoracic/lumbar levels of a centroid file, cranial first (what the table must list)."""
    from spinefx.conventions import SPINE_ORDER, level_name
    from spinefx.io import load_centroids, load_scan

    labels = load_centroids(ctd_path, load_scan(scan_path))
    return [level_name(k) for k in SPINE_ORDER if k in labels and k >= 8]


def _chromium() -> str:
    for candidate in (os.environ.get("SPINEFX_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium found (install Debian's `chromium` or set SPINEFX_CHROMIUM)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live_app(request, tmp_path):
    """The app served by uvicorn on a free localhost port, in a thread.

    ``SPINEFX_APP_RUN_DIR`` replaces the tiny untrained run by a real one (used to take the
    README screenshots with a trained, dissected run).
    """
    import uvicorn

    from spinefx.app import create_app
    from spinefx.reporting import load_model_run

    run_dir = os.environ.get("SPINEFX_APP_RUN_DIR") or request.getfixturevalue("tiny_run")
    app = create_app(load_model_run(run_dir), cache_dir=tmp_path / "cache")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def screenshot_dir(tmp_path) -> Path:
    """Where screenshots go: ``SPINEFX_SCREENSHOT_DIR`` if set, else the test's tmp folder."""
    chosen = os.environ.get("SPINEFX_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_upload_table_concept_panel_and_draft_in_chromium(
    live_app, synthetic_files, screenshot_dir
):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    scan_path, ctd_path = synthetic_files
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(live_app)
        page.set_input_files("#scan-file", str(scan_path))
        page.set_input_files("#ctd-file", str(ctd_path))
        page.click("#upload-btn")
        rows = page.locator("#vertebra-table tbody tr")
        rows.first.wait_for(timeout=60_000)
        levels = expected_levels(scan_path, ctd_path)
        assert [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())] == levels
        probabilities = [float(rows.nth(i).locator(".p").inner_text()) for i in range(len(levels))]
        assert all(0.0 <= p <= 1.0 for p in probabilities)
        page.screenshot(path=str(screenshot_dir / "app_overview.png"), full_page=False)

        # open the most suspicious vertebra, as a reader would
        chosen = max(range(len(levels)), key=probabilities.__getitem__)
        rows.nth(chosen).click()
        page.wait_for_function(
            f"document.querySelector('#panel-title').textContent.startsWith('{levels[chosen]}:')",
            timeout=60_000,
        )
        units = page.locator("#units .unit")
        assert units.count() == 5
        page.wait_for_function(
            "[...document.querySelectorAll('#units img.unit-map')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        assert page.locator("#gradcam-img").evaluate("i => i.naturalWidth") > 0
        assert "rank" in units.first.locator(".ranks").inner_text()
        page.click("#plane-seg button[data-plane=axial]")
        page.wait_for_function(
            "document.querySelector('#units img.unit-map').src.includes('plane=axial')"
        )
        page.click("#plane-seg button[data-plane=sagittal]")
        page.locator("#panel").screenshot(path=str(screenshot_dir / "app_concept_panel_full.png"))
        box = page.locator("#panel").bounding_box()  # viewport coordinates
        top = box["y"] + page.evaluate("window.scrollY")
        clip = {**box, "y": top, "height": min(box["height"], 1150)}  # reference + first units
        page.screenshot(
            path=str(screenshot_dir / "app_concept_panel.png"), full_page=True, clip=clip
        )

        page.wait_for_function(
            "document.querySelector('#findings').value.startsWith('DRAFT')", timeout=30_000
        )
        assert f"{len(levels)} vertebrae assessed" in page.input_value("#findings")
        page.locator("#report").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "app_report.png"), full_page=True)
        # the report is posted with the page's token (a plain form post would be refused)
        with page.expect_download(timeout=60_000) as download:
            page.click("#download-html")
        saved = Path(download.value.path()).read_text()
        assert "DRAFT" in saved and download.value.suggested_filename.endswith(".html")
        assert page.locator("#error").is_hidden()
        browser.close()


# Software WebGL2 for headless Chromium: ANGLE on SwiftShader (no GPU needed)
VIEWER_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
NO_WEBGL_ARGS = CHROMIUM_ARGS + ["--disable-webgl", "--disable-3d-apis"]
HAS_WEBGL2 = "!!document.createElement('canvas').getContext('webgl2')"
SAGITTAL = 2  # NiiVue's SLICE_TYPE


def _upload_and_wait_for_table(page, scan_path, ctd_path) -> list[dict]:
    """Upload through the form; returns the summary the page received (``/api/scans``)."""
    page.set_input_files("#scan-file", str(scan_path))
    page.set_input_files("#ctd-file", str(ctd_path))
    with page.expect_response("**/api/scans") as answer:
        page.click("#upload-btn")
    page.locator("#vertebra-table tbody tr").first.wait_for(timeout=60_000)
    return answer.value.json()


def _viewer(page) -> dict:
    """The viewer's state as the page publishes it on ``#viewer`` (data attributes)."""
    data = page.locator("#viewer").evaluate("el => ({...el.dataset})")
    out = {"state": data.get("state"), "label": int(data.get("label", 0))}
    for key in ("vox", "mm", "calMin", "calMax"):
        if key in data:
            out[key] = [float(v) for v in data[key].split(",")]
    return out


def _canvas_point(page, world_mm, slice_type: int) -> tuple[float, float]:
    """Page coordinates where NiiVue's tile of ``slice_type`` (0 axial, 1 coronal, 2 sagittal)
    shows the world point projected onto the tile's current slice."""
    x, y = page.evaluate(
        """([mm, type]) => {
            const nv = spinefxViewer.niivue;
            const normal = [2, 1, 0][type];  // the axis a tile's slices are stacked along
            const onSlice = mm.slice();
            onSlice[normal] = nv.frac2mm(nv.scene.crosshairPos)[normal];
            const hit = nv.frac2canvasPosWithTile(nv.mm2frac(onSlice), type);
            const box = nv.canvas.getBoundingClientRect();
            const dpr = nv.uiData.dpr || 1;
            return [box.left + hit.pos[0] / dpr, box.top + hit.pos[1] / dpr];
        }""",
        [list(world_mm), slice_type],
    )
    return x, y


def test_scan_viewer_scrolls_windows_and_opens_a_panel_from_a_click_in_chromium(
    live_app, synthetic_files, screenshot_dir
):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    scan_path, ctd_path = synthetic_files
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=VIEWER_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1100})
        page.goto(live_app)
        if not page.evaluate(HAS_WEBGL2):
            pytest.skip("this Chromium has no software WebGL2 (SwiftShader); see the fallback test")
        page.evaluate(  # record the viewer's states: the loading indicator must show first
            """() => { const el = document.getElementById('viewer'); window.viewerStates = [];
              new MutationObserver(() => viewerStates.push(
                [el.dataset.state, !document.getElementById('viewer-loading').hidden]))
              .observe(el, {attributes: true, attributeFilter: ['data-state']}); }"""
        )
        summary = _upload_and_wait_for_table(page, scan_path, ctd_path)
        page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
        assert page.evaluate("viewerStates") == [["loading", True], ["ready", False]]
        assert page.locator("#overview-fig").is_hidden()
        by_label = {v["label"]: v for v in summary["vertebrae"]}
        spacing = max(summary["spacing_mm"])

        # the crosshair starts on the vertebra whose panel opened, at its centroid (world mm)
        start = _viewer(page)
        first = by_label[start["label"]]
        assert page.locator("#panel-title").inner_text().startswith(first["level"] + ":")
        np.testing.assert_allclose(start["mm"], first["centroid_mm"], atol=spacing)

        # a row of the table moves the crosshair to that vertebra
        other = (
            summary["vertebrae"][-1]
            if first is not summary["vertebrae"][-1]
            else summary["vertebrae"][0]
        )
        page.click(f"#vertebra-table tbody tr[data-label='{other['label']}']")
        page.wait_for_function(
            f"document.querySelector('#viewer').dataset.label === '{other['label']}'"
        )
        np.testing.assert_allclose(_viewer(page)["mm"], other["centroid_mm"], atol=spacing)

        # the wheel over the axial tile scrolls through axial slices (superior-inferior)
        before = _viewer(page)
        x, y = _canvas_point(page, other["centroid_mm"], 0)
        page.mouse.move(x, y)
        for _ in range(3):
            page.mouse.wheel(0, -120)
            page.wait_for_timeout(100)
        page.wait_for_function(
            f"document.querySelector('#viewer').dataset.vox !== '{','.join(str(int(v)) for v in before['vox'])}'"
        )
        after = _viewer(page)
        assert after["vox"] != before["vox"]
        assert abs(after["mm"][2] - before["mm"][2]) >= 0.9 * min(summary["spacing_mm"])
        np.testing.assert_allclose(after["mm"][:2], before["mm"][:2], atol=spacing)  # same x, y

        # radiological display: patient's right (+x, RAS) on the screen's left in the axial and
        # coronal tiles; anterior (+y) on the left in the sagittal tile
        c = np.array(other["centroid_mm"])
        for tile, axis in ((0, 0), (1, 0), (SAGITTAL, 1)):
            step = np.eye(3)[axis] * 10.0
            toward = _canvas_point(page, list(c + step), tile)
            away = _canvas_point(page, list(c - step), tile)
            assert toward[0] < away[0] - 5, (tile, toward, away)

        # window presets and free W/L set NiiVue's display range of the CT
        def ct_range():
            return page.evaluate(
                "() => [spinefxViewer.niivue.volumes[0].cal_min,"
                " spinefxViewer.niivue.volumes[0].cal_max]"
            )

        assert ct_range() == [-500, 1500]  # the default: bone W2000/L500
        page.click("#window-seg button[data-window='400,40']")
        assert ct_range() == [-160, 240]
        assert _viewer(page)["calMin"] == [-160] and _viewer(page)["calMax"] == [240]
        page.fill("#window-width", "1000")
        page.fill("#window-level", "300")
        page.locator("#window-level").dispatch_event("change")
        assert ct_range() == [-200, 800]
        page.click("#window-seg button[data-window='1500,400']")
        assert ct_range() == [-350, 1150]

        # the overlays' opacity follows the sliders
        page.locator("#opacity-probability").fill("0.2")
        assert page.evaluate("spinefxViewer.niivue.volumes[1].opacity") == pytest.approx(0.2)

        # a click on a vertebra in the sagittal view opens its concept panel
        target = next(v for v in summary["vertebrae"] if v["label"] not in (other["label"],))
        page.mouse.click(*_canvas_point(page, target["centroid_mm"], SAGITTAL))
        page.wait_for_function(
            f"document.querySelector('#panel-title').textContent.startsWith('{target['level']}:')",
            timeout=30_000,
        )
        assert _viewer(page)["label"] == target["label"]
        selected = page.locator("#vertebra-table tbody tr.selected")
        assert selected.get_attribute("data-label") == str(target["label"])
        assert page.locator("#units .unit").count() == 5
        assert target["level"] in page.locator("#viewer-position").inner_text()
        page.locator("#results").screenshot(path=str(screenshot_dir / "app_viewer.png"))
        assert page.locator("#error").is_hidden() and page.locator("#viewer-error").is_hidden()
        browser.close()


def test_without_webgl_the_page_falls_back_to_the_png_overview(
    live_app, synthetic_files, screenshot_dir
):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    scan_path, ctd_path = synthetic_files
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=NO_WEBGL_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_app)
        assert not page.evaluate(HAS_WEBGL2)
        summary = _upload_and_wait_for_table(page, scan_path, ctd_path)
        page.wait_for_function(
            "document.querySelector('#overview').complete &&"
            " document.querySelector('#overview').naturalWidth > 0",
            timeout=30_000,
        )
        assert page.locator("#viewer").is_hidden()
        assert page.locator("#no-webgl").is_visible()
        assert not page.evaluate("typeof niivue !== 'undefined'")  # the library is not loaded
        last = summary["vertebrae"][-1]
        page.click(f"#vertebra-table tbody tr[data-label='{last['label']}']")
        page.wait_for_function(
            f"document.querySelector('#panel-title').textContent.startsWith('{last['level']}:')",
            timeout=30_000,
        )
        assert page.locator("#error").is_hidden() and errors == []
        browser.close()
