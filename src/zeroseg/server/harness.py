"""Run the app in-process for browser tests, benchmarks and screenshots.

:func:`serve_in_thread` runs uvicorn on a free localhost port in a background thread;
:func:`launch_chromium` starts the system's headless Chromium through Playwright (no browser
download: Debian's ``/usr/bin/chromium``, or ``$ZEROSEG_CHROMIUM``); :func:`click_image` and
:func:`drag_box` prompt the open image at image pixels and wait until the page has drawn the masks;
:func:`drag_image` drags through image pixels (strokes) and :func:`image_to_client` maps an image
pixel to page coordinates at the page's current zoom and pan.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

CHROMIUM = os.environ.get("ZEROSEG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
STARTUP_TIMEOUT_S = 20.0


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free port of ``host`` while the block runs; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it, replies sent in two writes wait for the
    # client's delayed ACK (~40 ms). uvicorn's own sockets get it from asyncio.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def launch_chromium(playwright: Any, **options: Any) -> Any:
    """A headless Chromium browser from a Playwright instance (``sync_playwright().start()``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), **options)


def click_image(page: Any, x: float, y: float, *, negative: bool = False, timeout_ms: float = 30_000) -> None:
    """Click image pixel (x, y) in the page (shift-click if ``negative``) and wait for the masks drawn."""

    def click() -> None:
        cx, cy = image_to_client(page, x, y)
        if negative:
            page.keyboard.down("Shift")
        try:
            page.mouse.click(cx, cy)
        finally:
            if negative:
                page.keyboard.up("Shift")

    _await_prediction(page, click, timeout_ms)


def drag_box(page: Any, box: tuple[float, float, float, float], *, timeout_ms: float = 30_000) -> None:
    """Drag a box (x0, y0, x1, y1 image pixels) on the open image and wait for the masks drawn."""
    _await_prediction(page, lambda: drag_image(page, [box[:2], box[2:]]), timeout_ms)


def drag_image(page: Any, points: Any, *, steps: int = 8, modifiers: tuple[str, ...] = ()) -> None:
    """Press the left button at the first image pixel of ``points``, move through the others, release.

    A box drag, a brush or eraser stroke or a split line, whatever the page's mode makes of it.
    """
    for key in modifiers:
        page.keyboard.down(key)
    try:
        first, *rest = [image_to_client(page, x, y) for x, y in points]
        page.mouse.move(*first)
        page.mouse.down()
        for cx, cy in rest:
            page.mouse.move(cx, cy, steps=steps)
        page.mouse.up()
    finally:
        for key in reversed(modifiers):
            page.keyboard.up(key)


def image_to_client(page: Any, x: float, y: float) -> tuple[float, float]:
    """Image pixel (x, y) of the open image as a position in the page (CSS pixels), at any zoom and pan."""
    cx, cy = page.evaluate("([x, y]) => window.zeroseg.imageToClient(x, y)", [x, y])
    return cx, cy


def _await_prediction(page: Any, action: Any, timeout_ms: float) -> None:
    before = int(page.evaluate("document.body.dataset.predictions || 0"))
    action()
    page.wait_for_function(f"Number(document.body.dataset.predictions || 0) > {before}", timeout=timeout_ms)
