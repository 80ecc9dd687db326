"""Interactive latency of the annotation app: click -> mask, against the 150 ms target.

Serves the app (real uvicorn on localhost, the embedded lite model) over a photo at a few sizes,
embeds each image once, then times a session of clicks through the HTTP API with httpx: from
sending the request to having the response JSON decoded (candidates as COCO RLE). Clicks alternate
between a first click (three candidates) and refinements (more points plus the previous candidate's
logits, one candidate), as in the page. With --browser it also drives the page in headless Chromium
and reports click -> mask drawn on the canvas, and the page's own RLE decode + draw time.

    python -m benchmarks.app_latency [--clicks 40] [--size 640x480 --size 1600x1200] [--no-graph-cut] [--no-zoom-in] [--first-look] [--browser]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.cases import photo
from zeroseg.engine import Store
from zeroseg.server import create_app
from zeroseg.server.harness import (
    CHROMIUM,
    click_image,
    launch_chromium,
    serve_in_thread,
)

TARGET_MS = 150.0
DEFAULT_SIZES = ("640x480", "1600x1200")
POINTS_PER_SESSION = 3  # a first click, then refinements


@dataclass(frozen=True)
class Stats:
    name: str
    samples_ms: list[float]

    def line(self) -> str:
        ms = sorted(self.samples_ms)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        median = statistics.median(ms)
        verdict = "meets" if p90 <= TARGET_MS else ("median meets" if median <= TARGET_MS else "misses")
        return (
            f"{self.name:<44} n={len(ms):<3} median {median:6.1f} ms  p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms"
            f"  ({verdict} the {TARGET_MS:.0f} ms target)"
        )


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def make_dataset(folder: Path, sizes: Sequence[tuple[int, int]]) -> list[str]:
    base = Image.fromarray(photo())
    names = []
    for width, height in sizes:
        name = f"photo_{width}x{height}.png"
        base.resize((width, height), Image.Resampling.BICUBIC).save(folder / name)
        names.append(name)
    return names


def clicks(width: int, height: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` click positions (x, y), away from the border."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.1, 0.9, count) * width, rng.uniform(0.1, 0.9, count) * height])


def api_session(client: httpx.Client, image: dict, count: int) -> tuple[Stats, Stats, float]:
    """Time ``count`` predictions on one image through the API; returns (round trip, server) stats and embed s."""
    embed = client.post(f"/api/images/{image['id']}/embed").json()["seconds"]
    round_trip, server = [], []
    points: list[list[float]] = []
    previous = None
    for x, y in clicks(image["width"], image["height"], count):
        if len(points) == POINTS_PER_SESSION:
            points, previous = [], None
        points.append([float(x), float(y), 1 if not points or len(points) % 2 else 0])
        body = {"points": points, "multimask": previous is None}
        if previous is not None:
            body["mask_input"] = previous
        start = time.perf_counter()
        response = client.post(f"/api/images/{image['id']}/predict", json=body)
        out = response.json()
        round_trip.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        server.append(out["seconds"] * 1000)
        previous = out["candidates"][0]["id"]
    size = f"{image['width']}x{image['height']}"
    return Stats(f"API click -> JSON decoded, {size}", round_trip), Stats(f"  of which server, {size}", server), embed


def browser_session(url: str, index: int, image: dict, count: int) -> tuple[Stats, Stats]:
    """Time ``count`` clicks in the page: click -> mask drawn, and the page's decode + draw."""
    from playwright.sync_api import sync_playwright

    shown, drawn = [], []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/#{index}")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        for n, (x, y) in enumerate(clicks(image["width"], image["height"], count, seed=1)):
            if n % POINTS_PER_SESSION == 0:
                page.keyboard.press("Escape")
            click_image(page, float(x), float(y), negative=n % POINTS_PER_SESSION == 2)
            hooks = page.evaluate("({...document.body.dataset})")
            shown.append(float(hooks["clickMs"]))
            drawn.append(float(hooks["drawMs"]))
        browser.close()
    size = f"{image['width']}x{image['height']}"
    return Stats(f"page click -> mask drawn, {size}", shown), Stats(f"  of which RLE decode + draw, {size}", drawn)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=40, help="timed clicks per image size")
    parser.add_argument("--size", action="append", metavar="WxH", help=f"image size (default: {', '.join(DEFAULT_SIZES)})")
    parser.add_argument("--model", default="lite", help="registered model name")
    parser.add_argument("--no-graph-cut", action="store_true", help="serve with the graph cut off (the preset has it on for lite)")
    parser.add_argument("--no-zoom-in", action="store_true", help="serve with --no-zoom-in (refinements on the whole photo)")
    parser.add_argument("--first-look", action="store_true", help="serve with --first-look (first clicks looked at close up)")
    parser.add_argument("--browser", action="store_true", help=f"also time the page in headless Chromium ({CHROMIUM})")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.size or DEFAULT_SIZES]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_dataset(folder, sizes)
        with Store.open(folder) as store:
            store.create_dataset("latency", folder)
            store.add_images("latency")
            app = create_app(
                store, "latency", args.model, graph_cut=False if args.no_graph_cut else None,
                zoom_in=False if args.no_zoom_in else None, first_look=args.first_look,
            )
            app.state.zeroseg.segmenter.load()
            results: list[Stats] = []
            with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=120) as client:
                images = client.get("/api/images").json()["images"]
                for image in images:
                    round_trip, server, embed = api_session(client, image, args.clicks)
                    print(f"{image['path']}: embedded in {embed:.2f} s")
                    results += [round_trip, server]
                if args.browser:
                    for index, image in enumerate(images):
                        results += browser_session(url, index, image, args.clicks)
    print(f"\nmodel {args.model}, {args.clicks} clicks per size (target: mask visible <= {TARGET_MS:.0f} ms)")
    for stats in results:
        print(stats.line())


if __name__ == "__main__":
    main()
