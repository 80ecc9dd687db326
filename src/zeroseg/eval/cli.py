"""``zeroseg eval``: benchmark commands (mounted by the main CLI; also ``python -m zeroseg.eval.cli``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zeroseg.errors import ZerosegError
from zeroseg.eval.interactive import InteractiveModel, PredictorModel, evaluate, load_interactive_dataset
from zeroseg.io import atomic_write

app = typer.Typer(help="Evaluate models on benchmarks.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Evaluate models on benchmarks."""


def build_interactive_model(
    name: str,
    checkpoint: Path | None,
    config: Path | None,
    device: str,
    refine_edges: bool | None = None,
    graph_cut: bool | None = None,
) -> InteractiveModel:
    """``grabcut`` -> the classical baseline; any other name -> a hub model behind a Predictor
    (``refine_edges``, ``graph_cut``: as :class:`~zeroseg.segment.Predictor`, None = the model's default)."""
    if name.lower() == "grabcut":
        from zeroseg.eval.grabcut import GrabCutModel

        return GrabCutModel()
    from zeroseg.hub import load_model
    from zeroseg.segment import Predictor

    model = load_model(name, checkpoint=checkpoint, config=config, device=device)
    return PredictorModel(Predictor(model, refine_edges=refine_edges, graph_cut=graph_cut))


def results_table(results: dict[str, Any], title: str) -> Table:
    """The summary metrics (everything but the per-object list) as a two-column table."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if key != "per_object":
            shown = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(key, shown)
    return table


@app.command()
def interactive(
    dataset: Annotated[str, typer.Option(help="grabcut, berkeley, or a folder with an index.csv (image,mask)")],
    model: Annotated[str, typer.Option(help="grabcut (classical baseline) or a registered model name")],
    checkpoint: Annotated[Path | None, typer.Option(help="weights file for the model")] = None,
    config: Annotated[Path | None, typer.Option(help="model config JSON (then --checkpoint is needed)")] = None,
    device: Annotated[str, typer.Option(help="torch device for hub models")] = "cpu",
    max_clicks: Annotated[int, typer.Option(min=1, help="clicks per object")] = 20,
    limit: Annotated[int | None, typer.Option(min=1, help="evaluate only the first N objects")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write all results (with per-object IoUs) here")
    ] = None,
    refine_edges: Annotated[
        bool | None,
        typer.Option("--refine-edges/--no-refine-edges", help="snap masks to image edges (default: the model's own)"),
    ] = None,
    graph_cut: Annotated[
        bool | None,
        typer.Option("--graph-cut/--no-graph-cut", help="GrabCut around mask boundaries (default: the model's own)"),
    ] = None,
) -> None:
    """NoC@85/90, mIoU after 1 and 5 clicks and box mIoU with the RITM click protocol."""
    console = Console()
    try:
        objects = load_interactive_dataset(dataset)
        if limit is not None:
            objects = objects[:limit]
        interactive_model = build_interactive_model(model, checkpoint, config, device, refine_edges, graph_cut)
        results = evaluate(interactive_model, objects, max_clicks=max_clicks)
        if json_path is not None:
            atomic_write(json_path, json.dumps({"dataset": dataset, "model": model, **results}, indent=2))
    except ZerosegError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        raise typer.Exit(err.exit_code) from None
    console.print(results_table(results, f"{model} on {dataset} ({results['n_objects']} objects)"))


UnseenOption = Annotated[
    str | None,
    typer.Option(help="comma-separated unseen class names (default: the dataset's split in ZERO_SHOT_SPLITS)"),
]
DroppedOption = Annotated[
    str | None, typer.Option(help="comma-separated classes treated as void (default: the dataset's split)")
]
EmbedderOption = Annotated[str, typer.Option(help="dense vision-language embedder (lite, maskclip, groupvit)")]
CheckpointOption = Annotated[Path | None, typer.Option(help="weights file for the embedder")]
CalibrationOption = Annotated[
    float | None, typer.Option(help="gamma subtracted from seen-class scores (default: the embedder's own, else 0)")
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="evaluate only the first N images")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="write all results here")]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def settings_table(rows: dict[str, dict[str, Any]], columns: dict[str, str], title: str) -> Table:
    """One row per setting (zsl, gzsl, ...) with the given metric keys as percentage columns."""
    table = Table(title=title)
    table.add_column("setting")
    for header in columns.values():
        table.add_column(f"{header} %", justify="right")
    for setting, results in rows.items():
        table.add_row(setting, *(_percent(results[key]) for key in columns))
    return table


def per_class_table(results: dict[str, dict[str, Any]], unseen: list[str]) -> Table:
    """IoU of every class in each setting, each class marked seen or unseen."""
    table = Table(title="per-class IoU (%)")
    table.add_column("class")
    table.add_column("split")
    for setting in results:
        table.add_column(setting, justify="right")
    for name in results["gzsl"]["per_class_iou"]:
        ious = [_percent(r["per_class_iou"].get(name)) for r in results.values()]
        table.add_row(name, "unseen" if name in unseen else "seen", *ious)
    return table


def _fail(err: ZerosegError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {err}")
    return typer.Exit(err.exit_code)


def _names(value: str | None) -> list[str] | None:
    from zeroseg.models.text import clean_names

    return None if value is None else clean_names(value)


def _embedder(model: str, checkpoint: Path | None) -> Any:
    from zeroseg.hub import load_dense_embedder

    return load_dense_embedder(model, checkpoint)


def _write_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        atomic_write(path, json.dumps(results, indent=2))


@app.command("zero-shot")
def zero_shot(
    dataset: Annotated[str, typer.Option(help="msrc21, camvid, coco128, or a folder laid out like them")],
    split: Annotated[str, typer.Option(help="split folder (not used by YOLO-seg folders like coco128)")] = "val",
    unseen: UnseenOption = None,
    dropped: DroppedOption = None,
    model: EmbedderOption = "lite",
    checkpoint: CheckpointOption = None,
    calibration: CalibrationOption = None,
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Zero-shot semantic segmentation: mIoU of seen and unseen classes and their harmonic mean (zsl, gzsl)."""
    from zeroseg.eval.zero_shot import evaluate_semantic, open_semantic_dataset, zero_shot_split

    try:
        data = open_semantic_dataset(dataset, split, limit)
        unseen_names, dropped_names = zero_shot_split(dataset, data.classes.values(), _names(unseen), _names(dropped))
        results = evaluate_semantic(_embedder(model, checkpoint), data, unseen_names, calibration, dropped_names)
        _write_json(json_path, {
            "dataset": dataset, "split": split, "model": model, "n_images": len(data),
            "unseen": unseen_names, "dropped": dropped_names, **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    console = Console()
    columns = {"miou": "mIoU", "seen_miou": "seen", "unseen_miou": "unseen", "hmean": "hmean"}
    title = f"{model} on {dataset} {split} ({len(data)} images, gamma {results['gzsl']['calibration']:g})"
    console.print(settings_table(results, columns, title))
    console.print(per_class_table(results, unseen_names))


@app.command()
def naming(
    dataset: Annotated[
        str,
        typer.Option(help="coco128, msrc21, camvid, a COCO instances .json, or a folder (index.csv, YOLO-seg, "
                          "or split/images + split/labels class maps, cut into regions)"),
    ],
    split: Annotated[str, typer.Option(help="split of class-map datasets (msrc21, camvid)")] = "val",
    images: Annotated[
        Path | None, typer.Option(help="image folder of a COCO .json (default: images/ beside it)")
    ] = None,
    unseen: UnseenOption = None,
    dropped: DroppedOption = None,
    model: EmbedderOption = "lite",
    checkpoint: CheckpointOption = None,
    calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="calibrated stacking of the zero-shot protocol: the embedder's mask gamma subtracted from "
                 "every name but the unseen ones (default: what the product does, no calibration)",
            show_default=False,
        ),
    ] = None,
    calibration: CalibrationOption = None,
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Top-1 accuracy of naming ground-truth masks among all the dataset's names: all masks, seen, unseen."""
    from zeroseg.eval.naming import SemanticRegionNaming, evaluate_naming, load_naming_dataset
    from zeroseg.eval.zero_shot import zero_shot_split

    try:
        data = load_naming_dataset(dataset, images, limit, split=split, dropped=_names(dropped))
        unseen_names, _ = zero_shot_split(dataset, data.classes, _names(unseen), dropped=())
        results = evaluate_naming(_embedder(model, checkpoint), data, unseen_names, calibration, calibrate=calibrate)
        regions = isinstance(data, SemanticRegionNaming)
        _write_json(json_path, {
            "dataset": dataset, "split": split if regions else None, "model": model, "unseen": unseen_names,
            "dropped": data.dropped if isinstance(data, SemanticRegionNaming) else [], **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    columns = {"accuracy": "all", "seen_acc": "seen", "unseen_acc": "unseen", "hmean": "hmean"}
    how = f"calibrated, gamma {results['calibration']:g}" if results["calibrated"] else "uncalibrated"
    where = f"{dataset} {split}" if isinstance(data, SemanticRegionNaming) else dataset
    title = f"{model} naming on {where} ({results['n_masks']} masks, {how})"
    Console().print(settings_table({"top-1": results}, columns, title))


@app.command("text-prompt")
def text_prompt(
    dataset: Annotated[str, typer.Option(help="msrc21, camvid, coco128, or a folder laid out like them")],
    split: Annotated[str, typer.Option(help="split folder (not used by YOLO-seg folders like coco128)")] = "val",
    unseen: UnseenOption = None,
    dropped: DroppedOption = None,
    model: EmbedderOption = "lite",
    checkpoint: CheckpointOption = None,
    segmenter: Annotated[str, typer.Option(help="promptable segmentation model (hub name)")] = "lite",
    device: Annotated[str, typer.Option(help="torch device of the segmentation model")] = "cpu",
    calibration: CalibrationOption = None,
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Mean IoU of the masks a class name prompts against that class's region, seen vs unseen classes."""
    from zeroseg.eval.naming import evaluate_text_prompts
    from zeroseg.eval.zero_shot import open_semantic_dataset, zero_shot_split
    from zeroseg.hub import load_model
    from zeroseg.segment import Predictor

    try:
        data = open_semantic_dataset(dataset, split, limit)
        unseen_names, dropped_names = zero_shot_split(dataset, data.classes.values(), _names(unseen), _names(dropped))
        predictor = Predictor(load_model(segmenter, device=device))
        embedder = _embedder(model, checkpoint)
        results = evaluate_text_prompts(predictor, embedder, data, unseen_names, calibration, dropped_names)
        _write_json(json_path, {
            "dataset": dataset, "split": split, "model": model, "segmenter": segmenter, "n_images": len(data),
            "unseen": unseen_names, "dropped": dropped_names, **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    columns = {"miou": "mIoU", "seen_miou": "seen", "unseen_miou": "unseen", "hmean": "hmean"}
    title = f"{segmenter} + {model} text prompts on {dataset} {split} ({results['n_prompts']} prompts)"
    Console().print(settings_table({"text": results}, columns, title))


if __name__ == "__main__":
    app()
