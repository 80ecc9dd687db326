"""Screenshots of the annotation app's main screens for docs/app.md and the README.

Runs the app on a temporary dataset (three COCO128 photos from ../shared/data/coco128_seg when
they are there, and scikit-image's chelsea and coffee) with the embedded lite model, drives
headless Chromium (Playwright, /usr/bin/chromium) through what a person does, and writes:

- app.jpg: classes with keys, elephants labelled with the one-key flow (key, click, Enter), captions;
- app-edit.jpg: zoomed in on the calf, its polygon's vertex handles;
- app-classes.jpg: the class editor, masks coloured by class, proposals with their scores;
- app-review.jpg: review mode, a mask accepted and one rejected with a comment.

    python scripts/screenshot_app.py [--out docs/images]
"""
from __future__ import annotations

import argparse
import shutil
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
COCO128 = REPO.parent / "shared" / "data" / "coco128_seg" / "images" / "train2017"
VIEWPORT = {"width": 1440, "height": 860}
CLASSES = (
    ("elephant", "1", "#f5a524"), ("calf", "2", "#ff6ac1"), ("road", "3", "#4cc38a"), ("giraffe", "4", "#3e8ed0"),
    ("tree", "5", "#12b5b0"),
)  # fmt: skip
# Clicks on COCO 000000000312 (640x427): four grown elephants, the calf, the dirt road.
ELEPHANTS = ((110, 260), (330, 270), (580, 240), (480, 290))
CALF = (338, 296, 405, 372)  # a box: a click on the calf also takes the elephant behind it
ROAD = (300, 400)


def make_dataset(folder: Path) -> list[str]:
    names = []
    for stem, name in (("000000000312", "a_elephants.jpg"), ("000000000144", "b_giraffes.jpg")):
        if (COCO128 / f"{stem}.jpg").exists():
            shutil.copy(COCO128 / f"{stem}.jpg", folder / name)
            names.append(name)
    Image.fromarray(data.chelsea()).save(folder / "c_chelsea.jpg", quality=92)
    Image.fromarray(data.coffee()).save(folder / "d_coffee.jpg", quality=92)
    return names + ["c_chelsea.jpg", "d_coffee.jpg"]


def label(page, key: str, *prompt: float) -> None:
    """The one-key flow: the class key, a click on the object (or a box), Enter."""
    page.keyboard.press(key)
    if len(prompt) == 4:
        drag_box(page, prompt)
    else:
        click_image(page, *prompt)
    before = int(page.evaluate("document.body.dataset.edits || 0"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"Number(document.body.dataset.edits || 0) > {before}")


def stored(page, action) -> None:
    """Run ``action`` and wait until the page has stored and drawn the edit it makes."""
    before = int(page.evaluate("document.body.dataset.edits || 0"))
    action()
    page.wait_for_function(f"Number(document.body.dataset.edits || 0) > {before}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        names = make_dataset(folder)
        coco = "a_elephants.jpg" in names
        with Store.open(Path(tmp) / "db") as store:
            store.create_dataset("samples", folder)
            store.add_images("samples")
            app = create_app(store, "samples")
            with serve_in_thread(app) as url, sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(60_000)
                page.on("pageerror", lambda err: print("page error:", err))
                page.on("console", lambda m: m.type == "error" and print("console:", m.text))
                page.goto(f"{url}/#0")
                page.wait_for_selector("body[data-ready='1']")
                page.fill("#author", "ana")
                page.dispatch_event("#author", "change")
                page.keyboard.press("Escape")
                for name, key, color in CLASSES:
                    page.fill("#class-name", name)
                    page.fill("#class-key", key)
                    page.eval_on_selector("#class-color", "(e, c) => { e.value = c; }", color)
                    page.click("#class-form button[type='submit']")
                    page.wait_for_selector(f"#classes li[data-name='{name}']")

                # app.jpg: elephants, the calf and the road labelled with the one-key flow.
                if coco:
                    for x, y in ELEPHANTS:
                        label(page, "1", x, y)
                    label(page, "2", *CALF)
                    label(page, "3", *ROAD)
                else:
                    label(page, "1", 230, 110)
                page.keyboard.press("Escape")
                page.mouse.move(5, 5)
                page.wait_for_timeout(800)  # class counts and progress follow a moment after an edit
                page.screenshot(path=str(args.out / "app.jpg"), quality=85)

                # app-edit.jpg: zoomed on the calf, its polygon's vertices.
                first = page.evaluate("window.zeroseg.state.annotations.at(-2).id")
                page.click(f"#annotations li[data-id='{first}']")
                page.keyboard.press("v")
                page.wait_for_function("Number(document.body.dataset.vertices) > 3")
                x, y = ((CALF[0] + CALF[2]) / 2, (CALF[1] + CALF[3]) / 2) if coco else (230, 110)
                page.evaluate(
                    "([x, y]) => { const s = document.getElementById('stage').getBoundingClientRect();"
                    " const z = window.zeroseg.state.view.z * 2.2;"
                    " window.zeroseg.setView(z, s.width / 2 - x * z, s.height / 2 - y * z); }",
                    [x, y],
                )
                page.wait_for_timeout(300)
                page.wait_for_timeout(800)  # class counts and progress follow a moment after an edit
                page.screenshot(path=str(args.out / "app-edit.jpg"), quality=85)
                page.keyboard.press("Escape")
                page.keyboard.press("0")

                # app-classes.jpg: the class editor open, proposals of a giraffe photo with scores.
                if coco:
                    page.keyboard.press("PageDown")
                    page.wait_for_function("window.zeroseg.state.index === 1 && document.body.dataset.ready === '1'")
                    page.keyboard.press("p")
                    page.wait_for_selector("#proposals li", timeout=300_000)
                    page.fill("#min-score", "0.6")
                    page.dispatch_event("#min-score", "input")
                page.click("#classes li[data-name='calf'] .edit")
                page.fill(".class-editor .description-input", "a young elephant, trunk and tail included")
                page.mouse.move(5, 5)
                page.wait_for_timeout(800)  # class counts and progress follow a moment after an edit
                page.screenshot(path=str(args.out / "app-classes.jpg"), quality=85)
                page.keyboard.press("Escape")  # out of the description field

                # app-review.jpg: the first image done, then reviewed: one accepted, one rejected.
                page.click("#classes li[data-name='calf'] .edit")  # the editor closes
                page.keyboard.press("PageUp")
                page.wait_for_function("window.zeroseg.state.index === 0 && document.body.dataset.ready === '1'")
                page.keyboard.press("d")
                page.wait_for_function("window.zeroseg.state.index === 1")
                page.fill("#author", "ben")
                page.dispatch_event("#author", "change")
                page.keyboard.press("Escape")
                page.keyboard.press("Shift+R")
                page.wait_for_selector("body[data-reviewing='1'][data-ready='1']")
                stored(page, lambda: page.keyboard.press("a"))  # the calf: accepted
                for _ in range(2):
                    stored(page, lambda: page.keyboard.press("a"))
                page.fill("#review-comment", "two elephants in one mask: split it")
                stored(page, lambda: page.click("#review-reject"))
                page.mouse.move(5, 5)
                page.wait_for_timeout(800)  # class counts and progress follow a moment after an edit
                page.screenshot(path=str(args.out / "app-review.jpg"), quality=85)
                browser.close()
    print(f"wrote app.jpg, app-edit.jpg, app-classes.jpg, app-review.jpg in {args.out}")


if __name__ == "__main__":
    main()
