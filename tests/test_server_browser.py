"""The annotation page in headless Chromium: click, see the mask, accept, name, reload, find it stored.

Needs Playwright (Python) and the system Chromium (/usr/bin/chromium; no browser download). Without
them the test is skipped, unless ZEROSEG_REQUIRE=1 makes that a failure.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from optional import unavailable
from PIL import Image

from zeroseg.engine import Source, Store
from zeroseg.server import create_app
from zeroseg.server.harness import (
    CHROMIUM,
    click_image,
    launch_chromium,
    serve_in_thread,
)

CAT_FACE = (230, 110)  # image pixel (x, y) on the cat in skimage's chelsea photo
TIMEOUT_MS = 30_000
TOKEN = "t0ken"


@pytest.fixture
def sync_playwright():
    """Playwright's sync entry point, or a skip (a failure with ZEROSEG_REQUIRE=1)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed"
    if reason is None and not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM}"
    if reason is not None:
        unavailable(f"browser test: {reason}")
    return sync_playwright


@pytest.fixture
def served(tmp_path):
    """The app (with an access token) on a free localhost port over a dataset of two small real photos."""
    from skimage import data

    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(data.chelsea()).save(root / "a_chelsea.jpg", quality=92)
    Image.fromarray(data.coffee()[::2, ::2]).save(root / "b_coffee.jpg", quality=92)
    with Store.open(tmp_path / "db") as store:
        store.create_dataset("photos", root)
        store.add_images("photos")
        with serve_in_thread(create_app(store, "photos", token=TOKEN)) as url:
            yield url, store


def test_click_accept_name_reload(sync_playwright, served):
    url, store = served
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{url}/?token={TOKEN}")
            page.wait_for_selector("body[data-ready='1']")
            assert TOKEN not in page.url  # kept for the tab, taken out of the address bar
            image_id = int(page.evaluate("document.body.dataset.imageId"))
            assert store.get_image(image_id).path == "a_chelsea.jpg"

            click_image(page, *CAT_FACE)
            hooks = page.evaluate("({...document.body.dataset})")
            assert hooks["candidates"] == "3" and int(hooks["maskPixels"]) > 1000
            drawn = page.evaluate(
                """() => {
                    const c = document.getElementById('overlay');
                    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0;
                    for (let i = 3; i < px.length; i += 4) n += px[i] > 0;
                    return n;
                }"""
            )
            assert drawn > 1000  # the mask is on the canvas
            print(f"click to mask drawn {hooks['clickMs']} ms, of which RLE decode + draw {hooks['drawMs']} ms")

            page.keyboard.press("Enter")
            page.wait_for_selector("#annotations li[data-source='assisted']")
            page.keyboard.press("n")
            page.wait_for_selector("#name-panel:not([hidden])")
            page.fill("#name-input", "cat")
            page.keyboard.press("Enter")
            page.wait_for_selector("#annotations li[data-label='cat']")

            page.reload()
            page.wait_for_selector("body[data-ready='1']")
            item = page.locator("#annotations li[data-label='cat']")
            assert item.count() == 1
            assert item.get_attribute("data-author") == "web" and "assisted" in item.inner_text()
            assert page.evaluate("document.body.dataset.annotations") == "1"

            with page.expect_download() as started:  # the page's export: the engine's COCO file
                page.click("#export")
            download = started.value
            assert download.suggested_filename == "photos-coco.json"
            coco = json.loads(Path(download.path()).read_text())
            (exported,) = coco["annotations"]
            assert coco["categories"][0]["name"] == "cat" and exported["segmentation"]["counts"]
            page.set_input_files("#import", download.path())  # importing it again adds nothing
            page.wait_for_function("document.getElementById('message').textContent.startsWith('imported')")
            assert page.inner_text("#message") == "imported 0 mask(s) on 2 image(s), 1 there already"
            assert page.locator("#annotations li").count() == 1
            assert not errors, errors
        finally:
            browser.close()

    (stored,) = store.annotations_for(image_id)
    assert stored.label == "cat" and stored.source is Source.ASSISTED and stored.author == "web"
    assert stored.model_name == "lite" and stored.mask()[CAT_FACE[1], CAT_FACE[0]]
    assert np.count_nonzero(stored.mask()) == stored.area > 1000
