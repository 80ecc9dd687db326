"""``zeroseg serve DATASET``: open (or create) the dataset of a folder and serve the web app.

The database is where every ``zeroseg engine`` command looks too (:func:`zeroseg.engine.db.resolve_url`);
``serve`` prints it on start.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zeroseg import hub

if TYPE_CHECKING:
    from zeroseg.engine import Store

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def serve(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET",
            help="Folder of images (its dataset is created, with the images in it, on first use).",
            exists=True,
            file_okay=False,
            resolve_path=True,
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on; beyond localhost a --token is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar="ZEROSEG_TOKEN", help="Access token every API request must carry.", show_default=False),
    ] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name or alias.")] = hub.DEFAULT_MODEL,
    names: Annotated[
        str | None,
        typer.Option(
            help='Vocabulary for zero-shot names, e.g. "cat, dog, sofa" (saved with the dataset; '
            "default: the one saved last).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL or folder holding zeroseg.db (default: $ZEROSEG_DB, else zeroseg.db in "
            "$ZEROSEG_HOME, as for `zeroseg engine`).",
            show_default=False,
        ),
    ] = None,
    author: Annotated[str, typer.Option(help="Name recorded on the changes made through the app.")] = "web",
    graph_cut: Annotated[
        bool, typer.Option(help="GrabCut masks around their boundaries: sharper edges, up to 0.5 s per mask.")
    ] = False,
) -> None:
    """Serve the annotation web app for a folder of images.

    Open http://HOST:PORT/ in a browser (add ?token=... when a token is set): click to get masks,
    accept, name, review proposals. The API is documented at /docs.

    \b
    Examples:
      zeroseg serve photos/
      zeroseg serve photos/ --names "cat, dog, sofa"
      zeroseg serve photos/ --graph-cut       # sharper masks, slower clicks
      ZEROSEG_TOKEN=s3cret zeroseg serve photos/ --host 0.0.0.0
    """
    import uvicorn

    from zeroseg.engine import Store
    from zeroseg.engine.db import DB_FILENAME, display_url
    from zeroseg.server.app import create_app
    from zeroseg.vocabulary import clean_names

    if not is_local(host) and not token:
        raise typer.BadParameter(
            f"listening on {host} exposes the app beyond this machine: set --token (or ZEROSEG_TOKEN)",
            param_hint="--host",
        )
    vocabulary = clean_names(names) if names is not None else None
    with Store.open(db) as store:
        name = open_dataset(store, dataset)
        app = create_app(store, name, model, token, vocabulary, author, graph_cut=graph_cut)
        app.state.zeroseg.segmenter.load()  # a missing model fails now, not at the first click
        count = len(store.images(name))
        typer.echo(f"database: {display_url(store.url)} (dataset {name!r}; `zeroseg engine list` shows it)")
        legacy = dataset / DB_FILENAME
        if db is None and legacy.is_file() and store.url != f"sqlite:///{legacy.resolve()}":
            typer.echo(f"note: {legacy} is a store of an older zeroseg; open it with --db {dataset}")
        typer.echo(f"serving {name!r} ({count} images) at http://{_url_host(host)}:{port}/ (Ctrl+C to stop)")
        uvicorn.run(app, host=host, port=port, log_level="warning")


def open_dataset(store: Store, folder: Path) -> str:
    """The name of the dataset rooted at ``folder``; a new one (named after the folder, images added)
    if there is none."""
    root = folder.resolve()
    existing = store.dataset_at(root)
    if existing is not None:
        return existing.name
    taken = {d.name for d in store.datasets()}
    name = next(n for n in (root.name or "dataset", *(f"{root.name}-{i}" for i in range(2, 10_000))) if n not in taken)
    store.create_dataset(name, root)
    store.add_images(name)
    return name


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
