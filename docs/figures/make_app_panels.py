"""Make docs/figures/app_overview.png and app_concept_panel.png: the app's PNG views on a real CT.

Usage: python docs/figures/make_app_panels.py [--out-dir docs/figures] [--run RUN_DIR]
       [--level T10]

Starts the app (default: the shipped models) on a local port and opens it in headless Chromium
without WebGL, so the page shows its PNG views: the vertebra table beside the mid-sagittal PNG
overview (``app_overview.png``), then the concept panel of one vertebra (``app_concept_panel.png``:
the CT patch, Grad-CAM and the top units' maps, all in the radiological display with edge
letters and world positions). The scan is VerSe19 subject 007 from ../shared/data/real (CT +
expert vertebra mask; CC BY-SA 4.0, so the figures are too); its T12 and L1 have grade 2
fractures, T10 is the vertebra the shipped models flag with its panel shown.
The screenshots are stored as 256-colour PNGs to keep the README light.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from make_app_viewer import REAL, ROOT, SUBJECT, running_app, upload_real_subject

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-webgl",
    "--disable-3d-apis",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: the concept panel's screenshot shows the reference images and the first units
PANEL_HEIGHT_PX = 1150


def screenshot(url: str, out_dir: Path, *, level: str, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    overview, panel = out_dir / "app_overview.png", out_dir / "app_concept_panel.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(url)
        upload_real_subject(page)
        page.locator("#vertebra-table tbody tr").first.wait_for(timeout=300_000)
        page.wait_for_function(
            "document.querySelector('#overview').complete &&"
            " document.querySelector('#overview').naturalWidth > 0",
            timeout=60_000,
        )
        page.locator("#results").screenshot(path=str(overview))
        page.locator("#vertebra-table tbody tr", has_text=level).first.click()
        page.wait_for_function(
            f"document.querySelector('#panel-title').textContent.startsWith('{level}:')",
            timeout=120_000,
        )
        page.wait_for_function(
            "[...document.querySelectorAll('#panel img.slice')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=60_000,
        )
        box = page.locator("#panel").bounding_box()
        top = box["y"] + page.evaluate("window.scrollY")
        clip = {**box, "y": top, "height": min(box["height"], PANEL_HEIGHT_PX)}
        page.screenshot(path=str(panel), full_page=True, clip=clip)
        browser.close()
    for path in (overview, panel):
        _shrink(path)
    return [overview, panel]


def _shrink(path: Path) -> None:
    """Store the screenshot as a 256-colour PNG (the page has few colours)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs/figures")
    parser.add_argument("--run", type=Path, help="patch classifier run (default: shipped)")
    parser.add_argument("--level", default="T10", help="the vertebra whose panel is shown")
    parser.add_argument(
        "--chromium", default=os.environ.get("SPINEFX_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    if not (REAL / "verse" / "rawdata" / SUBJECT).is_dir():
        parser.error(f"{REAL / 'verse'} is absent")
    with running_app(args.run) as url:
        t0 = time.perf_counter()
        paths = screenshot(url, args.out_dir, level=args.level, chromium=args.chromium)
        print(f"wrote {', '.join(map(str, paths))} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
