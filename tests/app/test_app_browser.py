"""End to end in a real browser: upload a synthetic scan, see the table, a concept panel, a draft.

Drives Debian's Chromium through Playwright (no Playwright browser download). Skips with a
reason when no Chromium is installed. Screenshots go to the test's temporary folder, or to
``SPINEFX_SCREENSHOT_DIR`` when it is set (how the README screenshots are taken).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

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
