"""``zeroseg engine ...``: the data engine's stages as commands (mounted by the main CLI).

Every command takes ``--db`` (a database URL or a folder holding ``zeroseg.db``; default
``$ZEROSEG_DB``, else ``zeroseg.db`` in ``$ZEROSEG_HOME``: :func:`zeroseg.engine.db.resolve_url`, the
rule ``zeroseg serve`` follows too). Commands that only read never create a database. A DATASET is
named, or given as the folder it was made from. Errors are ZerosegErrors, which the main CLI prints
as one line with their exit code.
"""
from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from zeroseg.engine.export import ExportFormat
from zeroseg.engine.schema import ImageStatus, Source, Status
from zeroseg.engine.stages import AutoConfig

_AUTO = AutoConfig()  # the defaults of `auto`
PRESET = "the model's preset (zeroseg models show MODEL)"

app = typer.Typer(
    name="engine",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", metavar="URL|FOLDER", show_default=False,
        help="Database: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...) or a folder holding "
        "zeroseg.db. Default: $ZEROSEG_DB, else zeroseg.db in $ZEROSEG_HOME (where `zeroseg serve` "
        "keeps its datasets too).",
    ),
]  # fmt: skip
DatasetArg = Annotated[
    str, typer.Argument(metavar="DATASET", help="Dataset name, or the folder it was made from.", show_default=False)
]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]
DtypeOpt = Annotated[
    str | None,
    typer.Option(metavar="float32|bfloat16", show_default="float32",
                 help="Weights' type of a Hugging Face model (SAM 2.1, SAM-HQ, SAM 3): bfloat16 is faster on CPUs "
                 "with AVX-512 BF16."),
]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="Compile a Hugging Face model's prompt decoder with torch.compile (a minute or so "
                 "at start; clicks and batches of grid points about twice as fast after)."),
]


class Engine(StrEnum):
    local = "local"
    ray = "ray"


@app.callback()
def _group() -> None:
    """The data engine: a store of datasets, images and masks, and the stages that fill it.

    \b
    Examples:
      zeroseg engine add photos/ --dataset street
      zeroseg engine auto street --names "car, person, tree, road, sky"
      zeroseg engine auto street --engine ray --workers 4
      zeroseg engine train street --steps 300
      zeroseg engine export street street.json --format coco
    """


def _store(db: str | None, create: bool = False):
    """The store at ``db`` (see :func:`zeroseg.engine.db.resolve_url`); made only if ``create``."""
    from zeroseg.engine.store import Store

    return Store.open(db, create=create)


# --- add ----------------------------------------------------------------------------------
@app.command()
def add(
    images: Annotated[
        list[Path], typer.Argument(metavar="IMAGES...", help="Image files and folders (scanned recursively).")
    ],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (created if new).", show_default=False)],
    root: Annotated[
        Path | None,
        typer.Option(help="Root folder of a new dataset (default: the folder holding the images).", show_default=False),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Add images to a dataset (creating it). Adding an image again changes nothing.

    \b
    Examples:
      zeroseg engine add photos/ --dataset street
      zeroseg engine add a.jpg b.jpg --dataset street --db ./street-db
    """
    from zeroseg.engine.stages import add_images

    with _store(db, create=True) as store:
        records = add_images(store, dataset, images, root=root)
        total = len(store.images(dataset))
        new = sum(r.status is ImageStatus.NEW for r in records)
    typer.echo(f"{dataset}: {len(records)} image(s) given, {new} not yet annotated; {total} in the dataset")


# --- auto ---------------------------------------------------------------------------------
@app.command()
def auto(
    dataset: DatasetArg,
    engine: Annotated[Engine, typer.Option(help="Run in this process, or as a Ray Data job.")] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local Ray.",
                     show_default=False),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray: model actors (one CPU each).")] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Ray: images per actor call.")] = 1,
    threads_per_worker: Annotated[int, typer.Option(min=1, help="Ray: torch threads of each actor.")] = 1,
    names: Annotated[
        str | None,
        typer.Option("--names", "-n", metavar="NAMES", show_default=False,
                     help='Vocabulary that names the masks, comma-separated: "car, person, sky".'),
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="Dense embedder for naming: lite, maskclip, groupvit.", show_default=PRESET)
    ] = None,
    calibrate: Annotated[
        bool | None,
        typer.Option("--calibrate/--no-calibrate", show_default=PRESET,
                     help="Calibrated stacking: lower the names the embedder was trained on by its fitted "
                     "gamma (the zero-shot evaluation's device; off: masks take a smaller gamma)."),
    ] = None,
    background_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="A mask whose best name scores below this stays unnamed.",
                     show_default=PRESET),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Annotate at most N images.", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered segmentation model.")] = _AUTO.model,
    dtype: DtypeOpt = None,
    compile: CompileOpt = False,
    points_per_side: Annotated[
        int | None, typer.Option(min=1, help="Grid of N x N point prompts.", show_default=PRESET)
    ] = None,
    pred_iou_thresh: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Drop masks with a lower predicted IoU.", show_default=PRESET)
    ] = None,
    stability_score_thresh: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Drop masks with a lower stability score.", show_default=PRESET),
    ] = None,
    min_area: Annotated[
        int | None,
        typer.Option(min=0, help="Fill holes and drop islands smaller than this (pixels), then smaller masks.",
                     show_default=PRESET),
    ] = None,
    max_masks: Annotated[
        int | None, typer.Option(min=0, help="Keep at most N masks per image.", show_default=PRESET)
    ] = None,
    propose: Annotated[
        bool, typer.Option("--propose", help="Store the masks as proposals to review instead of accepted.")
    ] = False,
    progress: ProgressOpt = True,
    db: DbOpt = None,
) -> None:
    """Annotate every image of DATASET not done yet: segment everything, filter, name.

    Each image's masks and its "done" status are committed together, so an interrupted run continues
    where it stopped when started again; images already done (or reviewed) are skipped. Masks are
    stored as accepted (fully automatic) unless --propose. Settings not given are the model's preset
    (`zeroseg models show MODEL`); names not given are the dataset's saved vocabulary. Exits with 1
    if some images could not be read (they stay to do).

    \b
    Examples:
      zeroseg engine auto street
      zeroseg engine auto street --names "car, person, tree, road, sky" --limit 100
      zeroseg engine auto street --engine ray --workers 2
      zeroseg engine auto street --engine ray --address auto --workers 16
    """
    from zeroseg.engine.db import resolve_url
    from zeroseg.vocabulary import clean_names

    vocabulary = tuple(clean_names(names)) if names is not None else ()
    if names is not None and not vocabulary:
        raise typer.BadParameter('needs at least one name, e.g. --names "car, person, sky"', param_hint="--names")
    with _store(db) as store:
        found = store.find_dataset(dataset)
        dataset, vocabulary = found.name, vocabulary or tuple(found.vocabulary)  # the app's saved names
    config = AutoConfig(
        model=model,
        points_per_side=points_per_side,
        pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_score_thresh,
        min_area=min_area,
        max_masks=max_masks,
        names=vocabulary,
        background_threshold=background_threshold,
        embedder=embedder,
        calibrate=calibrate,
        dtype=dtype,
        compile=compile,
        status=Status.PROPOSED if propose else Status.ACCEPTED,
    )
    if engine is Engine.ray:
        from zeroseg.engine.ray_runner import auto_ray

        summary = auto_ray(
            resolve_url(db), dataset, config, address=address, num_workers=workers, batch_size=batch_size,
            threads_per_worker=threads_per_worker, progress=progress, limit=limit,
        )  # fmt: skip
    else:
        from zeroseg.engine.stages import auto as run_auto  # the main CLI set zeroseg.runtime's allocator mode
        with _store(db) as store:
            summary = run_auto(store, dataset, config, progress=progress, limit=limit)
    typer.echo(str(summary))
    for path, error in summary.failed:
        typer.echo(f"failed: {path}: {error}", err=True)
    if summary.failed:
        raise typer.Exit(1)


# --- train --------------------------------------------------------------------------------
@app.command()
def train(
    dataset: DatasetArg,
    steps: Annotated[int, typer.Option(min=1, help="Fine-tuning steps.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of every step's sampling.")] = 0,
    base: Annotated[str, typer.Option(help="Head to start from: lite, an earlier version, or a weight file.")] = "lite",
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 3e-4,
    out: Annotated[
        Path | None,
        typer.Option(help="Working folder (checkpoint, feature cache); default under $ZEROSEG_HOME/engine/train.",
                     show_default=False),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch.", show_default=False)
    ] = None,
    progress: ProgressOpt = True,
    db: DbOpt = None,
) -> None:
    """Fine-tune the lite promptable head on DATASET's accepted masks and register the new version.

    The result is $ZEROSEG_HOME/models/lite-<dataset>-v<N>.safetensors (+ .json sidecar), usable
    as --model lite-<dataset>-v<N> everywhere. Started again after an interruption, a run on the same
    annotations resumes from its checkpoint.

    \b
    Examples:
      zeroseg engine train street --steps 300
      zeroseg engine auto more-streets --model lite-street-v1
    """
    from zeroseg.engine.train import describe, retrain

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    with _store(db) as store:
        dataset = store.find_dataset(dataset).name
        weights = retrain(store, dataset, steps=steps, seed=seed, out=out, base=base, lr=lr, progress=progress)
    info = describe(weights)
    typer.echo(
        f"registered {weights.stem}: {info['objects']} masks, {info['steps']} steps from {info['base']} -> {weights}"
    )


# --- export / import ----------------------------------------------------------------------
@app.command("export")
def export(
    dataset: DatasetArg,
    out: Annotated[
        Path, typer.Argument(help="COCO: the JSON file to write. YOLO, PNG: the folder.", show_default=False)
    ],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.coco,
    status: Annotated[
        list[str] | None,
        typer.Option(metavar="STATUS", show_default=False,
                     help="Export masks with this status: accepted (default), proposed, rejected or all. Repeatable."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write DATASET's masks as COCO (RLE or polygons), YOLO-seg labels or PNG masks.

    \b
    Examples:
      zeroseg engine export street street.json
      zeroseg engine export street street-poly.json --format coco-polygons
      zeroseg engine export street yolo/ --format yolo --status accepted --status proposed
    """
    from zeroseg.engine import export as exports

    statuses = _statuses(status or [Status.ACCEPTED.value])
    with _store(db) as store:
        dataset = store.find_dataset(dataset).name
        path = exports.export(store, dataset, out, format, status=statuses)
    typer.echo(f"wrote {dataset} as {format.value} to {path}")


def _statuses(values: list[str]) -> list[Status] | None:
    if "all" in values:
        return None
    try:
        return [Status(v) for v in values]
    except ValueError:
        known = ", ".join([*(s.value for s in Status), "all"])
        raise typer.BadParameter(f"{values!r}: each must be one of {known}", param_hint="--status") from None


@app.command("import")
def import_(
    coco: Annotated[Path, typer.Argument(metavar="COCO_JSON", help="COCO instances file.", show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (created if new).", show_default=False)],
    root: Annotated[
        Path | None,
        typer.Option(help="Root of a new dataset, where file_name paths start (default: the JSON's folder).",
                     show_default=False),
    ] = None,
    status: Annotated[str, typer.Option(help="Status of the imported masks: accepted or proposed.")] = "accepted",
    author: Annotated[str | None, typer.Option(help="Recorded as the masks' author.", show_default=False)] = None,
    db: DbOpt = None,
) -> None:
    """Import the images and masks of a COCO instances file (RLE or polygons) into a dataset.

    \b
    Examples:
      zeroseg engine import labels.json --dataset street --root photos/
    """
    from zeroseg.engine.export import import_coco

    (chosen,) = _statuses([status]) or [None]
    if chosen is None:
        raise typer.BadParameter("give one status: accepted or proposed", param_hint="--status")
    with _store(db, create=True) as store:
        done = import_coco(store, coco, dataset, root=root, author=author, source=Source.MANUAL, status=chosen)
        images = len(store.images(dataset))
    already = f"; {done.skipped} were there already" if done.skipped else ""
    typer.echo(f"imported {len(done.added)} mask(s) into {dataset} ({images} image(s)){already}")


# --- list ---------------------------------------------------------------------------------
@app.command("list")
def list_datasets(db: DbOpt = None) -> None:
    """List the datasets with their images by status (a database that is not there is not made)."""
    from zeroseg.engine.db import display_url, exists, resolve_url

    url = resolve_url(db)
    if not exists(url):
        typer.echo(f"no datasets: no database at {display_url(url)} yet")
        return
    with _store(url) as store:
        datasets = store.datasets()
        if not datasets:
            typer.echo(f"no datasets in {display_url(store.url)}")
        for ds in datasets:
            counts = {s: len(store.images(ds.name, status=s)) for s in ImageStatus}
            done = ", ".join(f"{n} {s.value}" for s, n in counts.items())
            typer.echo(f"{ds.name}: {sum(counts.values())} image(s) ({done}), root {ds.root}")
