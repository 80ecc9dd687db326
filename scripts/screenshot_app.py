"""Screenshot of the annotation app for the README: a mask accepted and named, and a live candidate.

Runs the app on a temporary dataset of two scikit-image sample photos with the embedded lite model,
drives headless Chromium (Playwright, /usr/bin/chromium) through a box, accept and name, then a
click, and writes docs/images/app.png.

    python scripts/screenshot_app.py [--out docs/images/app.png]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright
from skimage import data

from zeroseg.engine import Store
from zeroseg.server import create_app
from zeroseg.server.harness import (
    click_image,
    drag_box,
    launch_chromium,
    serve_in_thread,
)

REPO = Path(__file__).resolve().parents[1]
VOCABULARY = ["cat", "cup", "saucer", "spoon", "table"]
VIEWPORT = {"width": 1440, "height": 860}


def make_dataset(folder: Path) -> None:
    Image.fromarray(data.chelsea()).save(folder / "chelsea.jpg", quality=92)
    Image.fromarray(data.coffee()).save(folder / "coffee.jpg", quality=92)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "app.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_dataset(folder)
        with Store.open(folder) as store:
            store.create_dataset("samples", folder)
            store.add_images("samples")
            app = create_app(store, "samples", vocabulary=VOCABULARY)
            with serve_in_thread(app) as url, sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{url}/#1")  # coffee.jpg
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                drag_box(page, (170, 18, 412, 310))  # the cup
                page.keyboard.press("Enter")
                page.wait_for_selector("#annotations li")
                page.keyboard.press("n")
                page.wait_for_selector("#suggestions button, #suggestions .note:not(:text('naming…'))")
                page.fill("#name-input", "cup")
                page.keyboard.press("Enter")
                page.wait_for_selector("#annotations li[data-label='cup']")
                click_image(page, 540, 330)  # the table: a live candidate beside the named mask
                page.keyboard.press("2")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
