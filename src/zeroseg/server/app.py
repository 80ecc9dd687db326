"""The annotation web app: the JSON API of :mod:`zeroseg.server.api` plus a static page.

``create_app`` wires one store, one dataset, one model and one namer into a FastAPI app. The
page (``static/``, plain JS, no build step) is served at ``/``; the API at ``/api`` is described
at ``/docs`` (Swagger UI) and ``/redoc``, whose scripts are served by the app itself
(``fastapi-offline``), so they work offline, and ``/openapi.json``. With a token, every ``/api``
request must carry it as ``Authorization: Bearer <token>`` or ``?token=<token>``, checked before the
body is read. Invalid requests get a 422 whose ``detail`` is one line naming each bad field.
"""
from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send
from torch import nn

from zeroseg import __version__, hub
from zeroseg.engine import Store
from zeroseg.errors import ZerosegError
from zeroseg.models.vl import DenseEmbedder
from zeroseg.preset import Preset
from zeroseg.server import classes, concepts, edits, workflow
from zeroseg.server.api import AppState, router
from zeroseg.server.files import DEFAULT_MAX_UPLOAD_BYTES
from zeroseg.server.names import NameSuggester
from zeroseg.server.segmenter import Segmenter
from zeroseg.vocabulary import clean_names

STATIC = Path(__file__).resolve().parent / "static"
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around an upload


def create_app(
    store: Store,
    dataset: str,
    model: str | nn.Module = hub.DEFAULT_MODEL,
    token: str | Mapping[str, str] | None = None,
    vocabulary: Sequence[str] | str | None = None,
    author: str = "web",
    *,
    embedder: str | DenseEmbedder | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    graph_cut: bool | None = None,
    zoom_in: bool | None = None,
    first_look: bool = False,
) -> FastAPI:
    """The web app for one dataset of ``store``.

    Arguments:
      model: the segmentation model, by registered name (loaded on first use) or built.
      token: if set, required on every /api request (Bearer header or ``?token=``); a mapping
        ``{name: token}`` gives each person a token of their own, and their name is then the author
        of every change made with it (the X-Author header is ignored).
      vocabulary: names for zero-shot naming, saved with the dataset; None or empty: the names saved
        last (the page can change them, and saves them too).
      author: recorded on every change unless a request names its own (``X-Author`` header).
      embedder: the dense embedder for names, by name (loaded on first use) or built; default the
        model's preset's.
      max_upload_bytes: largest accepted image upload (request bodies are limited to this too).
      graph_cut: GrabCut masks around their boundaries (:class:`Segmenter`); None: the model's preset.
      zoom_in: later clicks on an object and boxes answered in a crop around it (:class:`Segmenter`);
        None: the model's preset.
      first_look: with Zoom-In, an object's first click answered close up when the object fits there
        (:class:`Segmenter`; off: it costs the click a crop's embedding).
    """
    lock = threading.RLock()  # one torch user at a time: the machine's cores go to one call
    record = store.get_dataset(dataset)
    names = clean_names(vocabulary or ())
    if names and names != record.vocabulary:
        record = store.set_vocabulary(dataset, names)
    named = _named_tokens(token) if isinstance(token, Mapping) else {}
    state = AppState(
        store=store,
        dataset=record,
        segmenter=Segmenter(model, lock, graph_cut=graph_cut, zoom_in=zoom_in, first_look=first_look),
        suggester=NameSuggester(record.vocabulary, embedder, lock, settings=_preset(model)),
        author=author,
        token=None if isinstance(token, Mapping) else token or None,
        max_upload_bytes=max_upload_bytes,
        tokens=named,
    )
    app = FastAPIOffline(
        title="zeroseg annotation",
        version=__version__,
        description="Click or box to get masks live, accept, name and review them; "
        "masks travel as compressed COCO RLE.",
        max_body_size=max_upload_bytes + FORM_OVERHEAD,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator's site
    )
    app.state.zeroseg = state
    app.include_router(router)
    app.include_router(classes.router)
    app.include_router(edits.router)
    app.include_router(workflow.router)
    app.include_router(concepts.router)
    app.add_exception_handler(ZerosegError, _zeroseg_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", _index, include_in_schema=False)
    if state.token is not None or state.tokens:
        app.add_middleware(TokenGuard, tokens=state.tokens or {state.token: None})
        _document_token(app)
    return app


def _named_tokens(tokens: Mapping[str, str]) -> dict[str, str]:
    """``{name: token}`` as ``{token: name}``, refusing empty, repeated or shared tokens."""
    by_token: dict[str, str] = {}
    for name, secret in tokens.items():
        name, secret = " ".join(str(name).split()), str(secret).strip()
        if not name or not secret:
            raise ZerosegError(f"a named token needs a name and a token, got {name!r}={'*' * len(secret)!r}")
        if secret in by_token:
            raise ZerosegError(f"{by_token[secret]!r} and {name!r} have the same token: give each their own")
        by_token[secret] = name
    return by_token


def _preset(model: str | nn.Module) -> Preset:
    return hub.get(model).preset if isinstance(model, str) else hub.preset_of(model)


def _index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _zeroseg_error(_request: Request, err: ZerosegError) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(err).split())}, status_code=err.http_status)


async def _validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
    """A 422 with one readable line; the offending values are not echoed (NaN is not valid JSON)."""
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")).removeprefix("Value error, "),
            "type": str(e.get("type", "")),
        }
        for e in err.errors()
    ]
    where = lambda loc: ".".join(loc[1:] if len(loc) > 1 else loc)  # noqa: E731  ("body.box" -> "box")
    detail = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": f"invalid request: {detail}", "errors": errors}, status_code=422)


class TokenGuard:
    """ASGI middleware: /api requests need a token (Bearer header or ``?token=``), else 401.

    ``tokens`` maps each accepted token to its holder's name (None: an unnamed token); the name is
    put on the request's state as ``user``, the author of its changes.
    """

    def __init__(self, app: ASGIApp, tokens: Mapping[str, str | None]) -> None:
        self.app = app
        self.tokens = [(token.encode(), name) for token, name in tokens.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            request = Request(scope)
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                given = request.query_params.get("token", "")
            given_bytes = given.strip().encode()
            matches = [name for token, name in self.tokens if secrets.compare_digest(given_bytes, token)]
            if matches:
                scope.setdefault("state", {})["user"] = matches[0]
            else:
                response = JSONResponse(
                    {"detail": "this server needs an access token (Authorization: Bearer <token> or ?token=)"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _document_token(app: FastAPI) -> None:
    """Describe the token in the OpenAPI schema, so /docs can send it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            }
            for path, operations in schema["paths"].items():
                if path.startswith("/api"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"query": []}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
