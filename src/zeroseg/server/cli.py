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
from zeroseg.engine.cli import CompileOpt, DtypeOpt

if TYPE_CHECKING:
    from torch import nn

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
        list[str] | None,
        typer.Option(
            metavar="[NAME=]TOKEN",
            help="Access token every API request must carry (or $ZEROSEG_TOKEN); NAME=TOKEN (repeatable, or "
            '$ZEROSEG_TOKENS="a=t1,b=t2") gives each person their own, and their name is recorded on their changes.',
            show_default=False,
        ),
    ] = None,
    env_token: Annotated[
        str | None, typer.Option("--env-token", envvar="ZEROSEG_TOKEN", hidden=True, show_default=False)
    ] = None,
    env_tokens: Annotated[
        str | None, typer.Option("--env-tokens", envvar="ZEROSEG_TOKENS", hidden=True, show_default=False)
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
        bool | None,
        typer.Option("--graph-cut/--no-graph-cut", show_default="the model's preset (on for lite)",
                     help="GrabCut the masks of clicks around their boundaries: sharper edges, slower clicks."),
    ] = None,
    zoom_in: Annotated[
        bool | None,
        typer.Option("--zoom-in/--no-zoom-in", show_default="the model's preset (on for lite)",
                     help="Answer an object's later clicks and boxes in a crop around it (sharper small objects)."),
    ] = None,
    first_look: Annotated[
        bool,
        typer.Option("--first-look/--no-first-look",
                     help="With Zoom-In, answer an object's first click close up when the object fits there (better "
                          "small objects; the click pays a second embedding)."),
    ] = False,
    dtype: DtypeOpt = None,
    compile: CompileOpt = False,
) -> None:
    """Serve the annotation web app for a folder of images.

    Open http://HOST:PORT/ in a browser (add ?token=... when a token is set): click to get masks,
    accept, name, review proposals. The API is documented at /docs.

    \b
    Examples:
      zeroseg serve photos/
      zeroseg serve photos/ --names "cat, dog, sofa"
      zeroseg serve photos/ --no-graph-cut    # the model's own masks, faster clicks
      zeroseg serve photos/ --model sam2.1_hiera_tiny --dtype bfloat16 --compile
      ZEROSEG_TOKEN=s3cret zeroseg serve photos/ --host 0.0.0.0
      zeroseg serve photos/ --host 0.0.0.0 --token ann=t0k3n1 --token bob=t0k3n2
      ZEROSEG_TOKENS="ann=t0k3n1,bob=t0k3n2" zeroseg serve photos/ --host 0.0.0.0
    """
    import uvicorn

    from zeroseg.engine import Store
    from zeroseg.engine.db import DB_FILENAME, display_url
    from zeroseg.server.app import create_app
    from zeroseg.vocabulary import clean_names

    tokens = parse_tokens(token or [], env_token, env_tokens)
    if not is_local(host) and not tokens:
        raise typer.BadParameter(
            f"listening on {host} exposes the app beyond this machine: set --token (or ZEROSEG_TOKEN)",
            param_hint="--host",
        )
    vocabulary = clean_names(names) if names is not None else None
    segmenter: str | nn.Module = model  # by name: loaded below, on the app's first use
    if dtype is not None or compile:
        if compile and hub.get(model).repo is not None:  # a Hugging Face model: it will compile
            typer.echo(f"compiling {model}'s prompt decoder (once per start; a minute or so on a CPU) ...")
        segmenter = hub.load_model(model, dtype=dtype, compile=compile)
    with Store.open(db) as store:
        name = open_dataset(store, dataset)
        app = create_app(store, name, segmenter, tokens, vocabulary, author, graph_cut=graph_cut, zoom_in=zoom_in,
                         first_look=first_look)
        app.state.zeroseg.segmenter.model()  # a missing model fails now, not at the first click
        count = len(store.images(name))
        typer.echo(f"database: {display_url(store.url)} (dataset {name!r}; `zeroseg engine list` shows it)")
        legacy = dataset / DB_FILENAME
        if db is None and legacy.is_file() and store.url != f"sqlite:///{legacy.resolve()}":
            typer.echo(f"note: {legacy} is a store of an older zeroseg; open it with --db {dataset}")
        typer.echo(f"serving {name!r} ({count} images) at http://{_url_host(host)}:{port}/ (Ctrl+C to stop)")
        uvicorn.run(app, host=host, port=port, log_level="warning")


def parse_tokens(given: list[str], env_token: str | None = None, env_tokens: str | None = None) -> str | dict[str, str] | None:
    """The server's tokens: one plain token (``--token T`` or ``$ZEROSEG_TOKEN``), or ``{name: token}``
    from ``--token NAME=TOKEN`` (repeatable) and ``$ZEROSEG_TOKENS="a=t1,b=t2"``.

    ``$ZEROSEG_TOKEN`` is always one plain token; in ``--token`` an ``=`` names the token (so a token
    containing ``=`` needs a name in front). Plain and named tokens do not mix.
    """
    named: dict[str, str] = {}
    plain: list[str] = []
    pairs = [(value, "--token") for value in given]
    pairs += [(part, "ZEROSEG_TOKENS") for part in (env_tokens or "").split(",") if part.strip()]
    for value, where in pairs:
        name, sep, secret = value.partition("=")
        if not sep and where == "--token":
            plain.append(value.strip())
            continue
        name, secret = " ".join(name.split()), secret.strip()
        if not name or not secret:
            raise typer.BadParameter(f"expected NAME=TOKEN, got {name or '?'}=...", param_hint=where)
        if name in named:
            raise typer.BadParameter(f"{name!r} has two tokens", param_hint=where)
        if secret in named.values():
            raise typer.BadParameter(f"{name!r} shares a token with someone else: give each their own", param_hint=where)
        named[name] = secret
    if env_token and env_token.strip() and not given:
        plain.append(env_token.strip())
    plain = [p for p in plain if p]
    if named and plain:
        raise typer.BadParameter("give either one plain token or NAME=TOKEN pairs, not both", param_hint="--token")
    if len(plain) > 1:
        raise typer.BadParameter("several plain tokens: name them (NAME=TOKEN) to tell people apart", param_hint="--token")
    return named or (plain[0] if plain else None)


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
