"""The annotation page's tools in headless Chromium: zoom and pan, classes and keys, polygon editing,
brush and eraser, merge, undo and redo, review, export and re-import.

One server and one browser serve the whole module (a fresh page per test); each test works on
its own image of the dataset, so the tests do not see each other's masks. Results are read back
from the store (or the HTTP API), not from the page. Needs Playwright (Python) and the system
Chromium; without them the tests are skipped, unless ZEROSEG_REQUIRE=1 makes that a failure.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from optional import unavailable
from PIL import Image

from zeroseg.engine import NewAnnotation, Source, Store
from zeroseg.server import create_app
from zeroseg.server.harness import (
    CHROMIUM,
    click_image,
    image_to_client,
    launch_chromium,
    serve_in_thread,
)

TOKEN = "t0ken"
TIMEOUT_MS = 30_000
CAT_FACE = (230, 110)  # image pixel (x, y) on the cat in skimage's chelsea photo
# One image per test (file name -> what uses it); all are chelsea or coffee.
IMAGES = ("a_zoom.jpg", "b_classes.jpg", "c_polygon.jpg", "d_paint.jpg", "e_merge.jpg", "f_review.jpg", "g_export.jpg")


@pytest.fixture(scope="module")
def playwright_browser():
    """One headless Chromium for the module, or a skip (a failure with ZEROSEG_REQUIRE=1)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser test: playwright is not installed")
    if not Path(CHROMIUM).exists():
        unavailable(f"browser test: no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app (with a token) on a free port over a dataset of small real photos, one per test."""
    from skimage import data

    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "photos"
    root.mkdir()
    photos = [data.chelsea(), data.coffee()[::2, ::2]]
    for i, name in enumerate(IMAGES):
        Image.fromarray(photos[0] if i != len(IMAGES) - 1 else photos[1]).save(root / name, quality=92)
    with Store.open(tmp / "db") as store:
        store.create_dataset("photos", root)
        store.add_images("photos")
        with serve_in_thread(create_app(store, "photos", token=TOKEN)) as url:
            yield url, store


@pytest.fixture
def page(playwright_browser, served):
    """A fresh page (its own storage) on the module's server; fails the test on any page error."""
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def api(served):
    url, _ = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        yield client


def image_named(store: Store, name: str):
    (image,) = [i for i in store.images("photos") if i.path == name]
    return image


def open_image(page, served, name: str) -> int:
    """Open the dataset's image ``name`` in the page; returns its id."""
    url, store = served
    index = [i.path for i in store.images("photos")].index(name)
    page.goto(f"{url}/?token={TOKEN}#{index}")
    page.wait_for_selector("body[data-ready='1']")
    image_id = int(page.evaluate("document.body.dataset.imageId"))
    assert store.get_image(image_id).path == name
    return image_id


def box_mask(image, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((image.height, image.width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def add_mask(store: Store, image, mask: np.ndarray, label: str | None = None) -> int:
    record = store.add_annotation(NewAnnotation(image_id=image.id, mask=mask, label=label), author="seed")
    return record.id


def edits(page) -> int:
    return int(page.evaluate("document.body.dataset.edits || 0"))


def wait_edits(page, before: int) -> None:
    """Until the page has stored one more edit than ``before`` (and drawn the result)."""
    page.wait_for_function(f"Number(document.body.dataset.edits || 0) > {before}")


def select_mask(page, annotation_id: int) -> None:
    page.click(f"#annotations li[data-id='{annotation_id}']")
    page.wait_for_selector(f"#annotations li.current[data-id='{annotation_id}']")


def test_zoom_and_pan_keep_clicks_on_their_pixel(page, served):
    _, store = served
    image_id = open_image(page, served, "a_zoom.jpg")
    fit_zoom = float(page.evaluate("document.body.dataset.zoom"))
    transform = page.evaluate("document.getElementById('world').style.transform")

    # The wheel zooms in at the cursor: the image pixel under it stays under it.
    cx, cy = image_to_client(page, *CAT_FACE)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"Number(document.body.dataset.zoom) > {fit_zoom * 1.5}")
    zoom = float(page.evaluate("document.body.dataset.zoom"))
    zoomed = page.evaluate("document.getElementById('world').style.transform")
    assert zoomed != transform and float(zoomed.split("scale(")[1].rstrip(")")) == pytest.approx(zoom, abs=1e-3)
    after = image_to_client(page, *CAT_FACE)
    assert abs(after[0] - cx) < 1.5 and abs(after[1] - cy) < 1.5

    page.keyboard.press("+")  # the keys zoom at the stage's centre
    page.wait_for_function(f"Number(document.body.dataset.zoom) > {zoom * 1.2}")
    # Space + drag pans: the pixel moves with the mouse.
    before = image_to_client(page, *CAT_FACE)
    page.keyboard.down(" ")
    page.mouse.move(640, 400)
    page.mouse.down()
    page.mouse.move(590, 370, steps=5)
    page.mouse.up()
    page.keyboard.up(" ")
    moved = image_to_client(page, *CAT_FACE)
    assert abs(moved[0] - before[0] + 50) < 1.5 and abs(moved[1] - before[1] + 30) < 1.5
    # Arrow keys pan while zoomed in.
    page.keyboard.press("ArrowLeft")
    assert image_to_client(page, *CAT_FACE)[0] > moved[0] + 40

    # A click while zoomed and panned prompts the image pixel under it.
    click_image(page, *CAT_FACE)
    point = page.evaluate("window.zeroseg.state.session.points[0]")
    assert abs(point[0] - CAT_FACE[0]) < 1 and abs(point[1] - CAT_FACE[1]) < 1 and point[2] == 1
    page.keyboard.press("Enter")
    page.wait_for_selector("#annotations li[data-source='assisted']")
    (stored,) = store.annotations_for(image_id)
    assert stored.mask()[CAT_FACE[1], CAT_FACE[0]]

    page.keyboard.press("0")  # fit again
    page.wait_for_function(f"Math.abs(Number(document.body.dataset.zoom) - {fit_zoom}) < 1e-3")

    # Layers: hide the mask and its pixels leave the overlay; outlines only keep its edge.
    def painted() -> int:
        return page.evaluate(
            """() => { const c = document.getElementById('overlay');
                const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < px.length; i += 4) n += px[i] > 0; return n; }"""
        )

    page.keyboard.press("Escape")
    shown = painted()
    assert shown > 1000
    page.check("#outlines")
    outlined = painted()
    assert 0 < outlined < shown / 2
    page.click(f"#annotations li[data-id='{stored.id}'] .eye")
    page.wait_for_selector(f"#annotations li.hidden-layer[data-id='{stored.id}']")
    assert painted() == 0


def test_classes_and_one_key_labelling(page, served):
    _, store = served
    image_id = open_image(page, served, "b_classes.jpg")
    for name, key in (("cat", "c"), ("sofa", "9")):
        page.fill("#class-name", name)
        page.fill("#class-key", key)
        page.click("#class-form button[type='submit']")
        page.wait_for_selector(f"#classes li[data-name='{name}'][data-key='{key}']")
    # A duplicate name is refused with the server's message.
    page.fill("#class-name", "cat")
    page.click("#class-form button[type='submit']")
    page.wait_for_selector("#message.error")
    page.fill("#class-name", "")
    page.keyboard.press("Escape")  # out of the form: keys are commands again

    page.keyboard.press("c")
    page.wait_for_selector("body[data-active-class='cat']")
    page.keyboard.press("9")
    page.wait_for_selector("body[data-active-class='sofa']")
    page.keyboard.press("c")  # the class key: cat is the active class
    page.wait_for_selector("body[data-active-class='cat']")
    click_image(page, *CAT_FACE)
    page.keyboard.press("Enter")  # accepted as the active class
    page.wait_for_selector("#annotations li[data-label='cat']")
    (stored,) = store.annotations_for(image_id)
    assert stored.label == "cat" and stored.mask()[CAT_FACE[1], CAT_FACE[0]]

    # The selected mask takes a class by its key, too.
    page.keyboard.press("9")
    page.wait_for_selector("#annotations li[data-label='sofa']")
    assert store.get_annotation(stored.id).label == "sofa"

    # Rename and recolour in the class editor: its masks follow.
    page.click("#classes li[data-name='sofa'] .edit")
    page.fill(".class-editor .name-input", "couch")
    page.click(".class-editor button[type='submit']")
    page.wait_for_selector("#annotations li[data-label='couch']")
    assert store.get_annotation(stored.id).label == "couch"
    assert [c["name"] for c in page.evaluate("window.zeroseg.state.classes")] == ["cat", "couch"]

    # Merge couch into cat: the class goes, its masks are cat's.
    page.click("#classes li[data-name='couch'] .edit")
    page.select_option(".class-editor .merge-into", label="cat")
    page.wait_for_selector("#classes li[data-name='couch']", state="detached")
    page.wait_for_selector("#annotations li[data-label='cat']")
    assert store.get_annotation(stored.id).label == "cat"


def test_export_polygons_and_import_again(page, served, tmp_path):
    _, store = served
    image = image_named(store, "g_export.jpg")
    annotation_id = add_mask(store, image, box_mask(image, 30, 30, 90, 80), label="cup")
    open_image(page, served, "g_export.jpg")

    page.select_option("#export-format", "coco-polygons")
    with page.expect_download() as started:
        page.click("#export")
    download = started.value
    assert download.suggested_filename == "photos-coco-polygons.json"
    coco = json.loads(Path(download.path()).read_text())
    (coco_image,) = [i for i in coco["images"] if i["file_name"] == "g_export.jpg"]
    mine = [a for a in coco["annotations"] if a["image_id"] == coco_image["id"]]
    assert len(mine) == 1 and isinstance(mine[0]["segmentation"], list)  # polygons, not RLE

    select_mask(page, annotation_id)
    page.keyboard.press("Delete")
    page.wait_for_selector(f"#annotations li[data-id='{annotation_id}']", state="detached")
    assert not [a for a in store.annotations_for(image.id) if a.status.value == "accepted"]
    path = tmp_path / "only-mine.json"
    coco["annotations"] = mine
    path.write_text(json.dumps(coco))
    page.set_input_files("#import", str(path))
    page.wait_for_function("document.getElementById('message').textContent.startsWith('imported 1 mask')")
    page.wait_for_selector("#annotations li[data-label='cup']")
    (back,) = store.annotations_for(image.id)
    assert back.source is Source.MANUAL and back.area == pytest.approx(60 * 50, rel=0.05)
