"""Make docs/figures/app_viewer.png: the app's three-plane scan viewer on a real CT.

Usage: python docs/figures/make_app_viewer.py [--out docs/figures/app_viewer.png]
       [--run RUN_DIR] [--synthetic]

Starts the app (default: the shipped models) on a local port, uploads VerSe19 subject 007 from
../shared/data/real (CT + expert vertebra mask; CC BY-SA 4.0, so the figure is too) in headless
Chromium (Debian's /usr/bin/chromium, software WebGL2 through SwiftShader), waits for NiiVue to
load the volumes and screenshots the vertebra card: the table beside the axial, coronal and
sagittal views with the fracture probability and the mask's labels overlaid. ``--synthetic``
uses the app's bundled synthetic example instead (no real data needed; labels are spheres at
the centroids).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
SUBJECT = "sub-verse007"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def serve(run_dir: Path | None, cache: Path):
    """The app on a free localhost port, in a thread; returns ``(url, server, thread)``."""
    import uvicorn

    from spinefx.app import create_app
    from spinefx.reporting import load_model_run
    from spinefx.runs.shipped import resolve_run

    run = load_model_run(run_dir or resolve_run(None, "patch"))
    app = create_app(run, cache_dir=cache, max_upload_mb=200, max_image_gb=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@contextlib.contextmanager
def running_app(run_dir: Path | None):
    """The app served on a free localhost port for the length of a with-block; yields its URL."""
    os.environ.setdefault("SPINEFX_PROGRESS", "0")
    with tempfile.TemporaryDirectory(prefix="spinefx-app-figure-") as tmp:
        url, server, thread = serve(run_dir, Path(tmp) / "cache")
        try:
            yield url
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def upload_real_subject(page) -> None:
    """Upload the VerSe19 subject's CT and expert vertebra mask through the page's form."""
    page.set_input_files("#scan-file", str(REAL / f"verse/rawdata/{SUBJECT}/{SUBJECT}_ct.nii.gz"))
    mask = REAL / f"verse/derivatives/{SUBJECT}/{SUBJECT}_seg-vert_msk.nii.gz"
    page.set_input_files("#mask-file", str(mask))
    page.select_option("#mask-numbering", "verse")
    page.click("#upload-btn")


def screenshot(url: str, out: Path, *, synthetic: bool, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(url)
        if synthetic:
            page.click("button.example[data-name=synth0001]")
        else:
            upload_real_subject(page)
        page.wait_for_selector("#viewer[data-state=ready]", timeout=300_000)
        page.click("#window-seg button[data-window='1500,400']")
        page.wait_for_timeout(1500)  # NiiVue redraws on the next animation frames
        page.locator("#results").screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/app_viewer.png")
    parser.add_argument("--run", type=Path, help="patch classifier run (default: shipped)")
    parser.add_argument("--synthetic", action="store_true", help="the bundled synthetic example")
    parser.add_argument(
        "--chromium", default=os.environ.get("SPINEFX_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    if not args.synthetic and not (REAL / "verse" / "rawdata" / SUBJECT).is_dir():
        parser.error(f"{REAL / 'verse'} is absent: pass --synthetic")
    with running_app(args.run) as url:
        t0 = time.perf_counter()
        screenshot(url, args.out, synthetic=args.synthetic, chromium=args.chromium)
        print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
