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
    zoom_in: bool | None = None,
    first_look: bool = False,
    box_choice: bool | None = None,
) -> InteractiveModel:
    """``grabcut`` -> the classical baseline; any other name -> a hub model behind a Predictor
    (``refine_edges``, ``graph_cut``: as :class:`~zeroseg.segment.Predictor`, None = the model's default;
    ``zoom_in``: later clicks in a crop around the object, :class:`~zeroseg.segment.zoom.ZoomIn`; None: the
    model's preset; ``first_look``: with it, a first click answered close up when the object fits there;
    ``box_choice``: a box answered by the output that fits it best, None: the model's preset)."""
    if name.lower() == "grabcut":
        from zeroseg.eval.grabcut import GrabCutModel

        return GrabCutModel()
    from zeroseg.hub import load_model
    from zeroseg.segment import Predictor

    model = load_model(name, checkpoint=checkpoint, config=config, device=device)
    if zoom_in is None:
        zoom_in = getattr(model, "zoom_in", False)
    predictor = Predictor(model, refine_edges=refine_edges, graph_cut=graph_cut, box_choice=box_choice)
    return PredictorModel(predictor, zoom_in=zoom_in, first_look=first_look)


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
    zoom_in: Annotated[
        bool | None,
        typer.Option("--zoom-in/--no-zoom-in",
                     help="answer clicks after the first (and boxes) in a crop around the object (default: the model's own)"),
    ] = None,
    first_look: Annotated[
        bool,
        typer.Option("--first-look/--no-first-look",
                     help="with Zoom-In, also answer a first click close up, kept for a small object the whole photo's "
                          "mask spilled over"),
    ] = False,
    box_choice: Annotated[
        bool | None,
        typer.Option("--box-choice/--no-box-choice",
                     help="answer a box with the output that fits it best, not the single-mask output "
                          "(default: the model's own)"),
    ] = None,
) -> None:
    """NoC@85/90, mIoU after 1 and 5 clicks and box mIoU (tight and loose boxes) with the RITM click protocol."""
    console = Console()
    try:
        objects = load_interactive_dataset(dataset)
        if limit is not None:
            objects = objects[:limit]
        interactive_model = build_interactive_model(
            model, checkpoint, config, device, refine_edges, graph_cut, zoom_in, first_look, box_choice
        )
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


def _segmenter() -> Any:
    """A predictor on the default model: the user's protocol names pixels with its proposals, as the product does."""
    from zeroseg.hub import DEFAULT_MODEL, load_model
    from zeroseg.segment import Predictor

    return Predictor(load_model(DEFAULT_MODEL))


def _write_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        atomic_write(path, json.dumps(results, indent=2))


ProtocolOption = Annotated[
    str,
    typer.Option(
        help="user: what the product does by default, the whole vocabulary, accuracy over all masks; "
             "zero-shot: the strict seen / unseen protocol (calibrated stacking, the dense head alone)",
    ),
]


def _protocol(value: str) -> str:
    value = value.strip().lower().replace("_", "-")
    if value not in ("user", "zero-shot"):
        raise typer.BadParameter(f"--protocol must be 'user' or 'zero-shot', not {value!r}")
    return value


@app.command("zero-shot")
def zero_shot(
    dataset: Annotated[str, typer.Option(help="msrc21, camvid, coco128, or a folder laid out like them")],
    split: Annotated[str, typer.Option(help="split folder; coco128 (YOLO-seg): train, val or all")] = "val",
    unseen: UnseenOption = None,
    dropped: DroppedOption = None,
    model: EmbedderOption = "lite",
    checkpoint: CheckpointOption = None,
    calibration: CalibrationOption = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="zero-shot: the strict protocol (the dense head alone, every name but the unseen ones "
                 "calibrated); user: what label-pixels does by default (its namer, and the names of the "
                 "default model's segment-everything proposals).",
        ),
    ] = "zero-shot",
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Zero-shot semantic segmentation: mIoU of seen and unseen classes and their harmonic mean (zsl, gzsl)."""
    from zeroseg.eval.zero_shot import evaluate_semantic, open_semantic_dataset, zero_shot_split

    protocol = _protocol(protocol)
    try:
        data = open_semantic_dataset(dataset, split, limit)
        unseen_names, dropped_names = zero_shot_split(dataset, data.classes.values(), _names(unseen), _names(dropped))
        results = evaluate_semantic(
            _embedder(model, checkpoint), data, unseen_names, calibration, dropped_names,
            product=protocol == "user", segmenter=_segmenter() if protocol == "user" else None,
        )
        _write_json(json_path, {
            "dataset": dataset, "split": split, "model": model, "protocol": protocol, "n_images": len(data),
            "unseen": unseen_names, "dropped": dropped_names, **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    console = Console()
    columns = {"miou": "mIoU", "seen_miou": "seen", "unseen_miou": "unseen", "hmean": "hmean"}
    title = f"{model} on {dataset} {split} ({len(data)} images, gamma {results['gzsl']['calibration']:g})"
    console.print(settings_table(results, columns, title))
    console.print(per_class_table(results, unseen_names))


def _unseen_or_none(dataset: str, classes: Any, unseen: str | None, protocol: str) -> list[str]:
    """The split's unseen names; the user's protocol needs none (its groups then stay empty)."""
    from zeroseg.eval.zero_shot import known_split, zero_shot_split

    if protocol == "user" and unseen is None and known_split(dataset) is None:
        return []
    return zero_shot_split(dataset, classes, _names(unseen), dropped=())[0]


def _covered_line(covered: dict[str, list[str]]) -> str:
    names = [name for name, classes in covered.items() if classes]
    return (f"ImageNet-1k (the backbone's pretraining) already has classes for {len(names)} of "
            f"{len(covered)} names: {', '.join(names) or '-'}")


@app.command()
def naming(
    dataset: Annotated[
        str,
        typer.Option(help="coco128, msrc21, camvid, a COCO instances .json, or a folder (index.csv, YOLO-seg, "
                          "or split/images + split/labels class maps, cut into regions)"),
    ],
    protocol: ProtocolOption = "user",
    split: Annotated[
        str | None,
        typer.Option(help="split of class maps (default val); coco128's part: train, val (default) or all"),
    ] = None,
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
            help="override the protocol's calibrated stacking (the embedder's mask gamma subtracted from "
                 "every name but the unseen ones; user: off, zero-shot: on)",
            show_default=False,
        ),
    ] = None,
    calibration: CalibrationOption = None,
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Top-1 accuracy of naming ground-truth masks among all the dataset's names: all masks, seen, unseen.

    --protocol user (default) names every mask as the product does (zeroseg.load_namer's defaults) and
    reports `accuracy` over all masks; --protocol zero-shot is the strict protocol (seen / unseen / hm).
    Both say which names the backbone's ImageNet-1k pretraining already covers.
    """
    from zeroseg.eval.naming import SemanticRegionNaming, evaluate_naming, load_naming_dataset

    try:
        protocol = _protocol(protocol)
        data = load_naming_dataset(dataset, images, limit, split=split, dropped=_names(dropped))
        unseen_names = _unseen_or_none(dataset, data.classes, unseen, protocol)
        if calibrate is None and protocol == "zero-shot":
            calibrate = True
        classifier = None if protocol == "user" else False
        results = evaluate_naming(
            _embedder(model, checkpoint), data, unseen_names, calibration, calibrate=calibrate, classifier=classifier
        )
        regions = isinstance(data, SemanticRegionNaming)
        _write_json(json_path, {
            "dataset": dataset, "protocol": protocol, "split": _split_of(data, split), "model": model,
            "unseen": unseen_names, "dropped": data.dropped if regions else [], **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    columns = {"accuracy": "all", "seen_acc": "seen", "unseen_acc": "unseen", "hmean": "hmean",
               "imagenet_acc": "ImageNet names", "not_imagenet_acc": "other names", "untrained_acc": "untrained names"}
    how = f"calibrated, gamma {results['calibration']:g}" if results["calibrated"] else "uncalibrated"
    how += ", + ImageNet classifier" if results["classifier"] else ", dense head only"
    where = f"{dataset} {_split_of(data, split) or ''}".strip()
    title = f"{model} naming on {where} ({results['n_masks']} masks, {protocol} protocol: {how})"
    console = Console()
    console.print(settings_table({"top-1": results}, columns, title))
    console.print(_covered_line(results["imagenet_covered"]))


def _split_of(data: Any, split: str | None) -> str | None:
    """The split a naming dataset was read with (None: a dataset without splits)."""
    if hasattr(data, "semantic"):  # class maps cut into regions
        return split or "val"
    return getattr(data, "split", None)  # YOLO-seg: train, val or all


@app.command("text-prompt")
def text_prompt(
    dataset: Annotated[str, typer.Option(help="msrc21, camvid, coco128, or a folder laid out like them")],
    protocol: ProtocolOption = "user",
    split: Annotated[
        str | None,
        typer.Option(help="split of class maps (default val); coco128's part: train, val (default) or all"),
    ] = None,
    unseen: UnseenOption = None,
    dropped: DroppedOption = None,
    model: EmbedderOption = "lite",
    checkpoint: CheckpointOption = None,
    segmenter: Annotated[str, typer.Option(help="promptable segmentation model (hub name)")] = "lite",
    device: Annotated[str, typer.Option(help="torch device of the segmentation model")] = "cpu",
    calibration: CalibrationOption = None,
    absent: Annotated[
        int | None,
        typer.Option(min=0, help="user protocol: prompts per image for absent classes (default: every one)"),
    ] = None,
    vocabulary: Annotated[
        str,
        typer.Option(help="user protocol: 'all' (the phrase among every dataset name, as --names does) or "
                          "'phrase' (the phrase alone, as `segment --text` without --names)"),
    ] = "all",
    phrase: Annotated[
        str,
        typer.Option(help='user protocol: how a class name is typed, e.g. "a {}" (a cup); default the bare name'),
    ] = "{}",
    verify: Annotated[
        bool | None,
        typer.Option("--verify/--no-verify",
                     help="check each mask by naming it (text_to_masks' verify; default: on for the user "
                          "protocol, as the product does, off for the zero-shot protocol)",
                     show_default=False),
    ] = None,
    limit: LimitOption = None,
    json_path: JsonOption = None,
) -> None:
    """Text prompts. --protocol user (default): each class name prompted as `zeroseg segment --text NAME`
    does, on instance masks: hit rate (instances whose best mask has IoU >= 0.5) and false-positive rate
    (prompts for absent classes that return a mask). --protocol zero-shot: mean IoU of the prompted masks
    against each class region, seen vs unseen classes."""
    from zeroseg.hub import load_model
    from zeroseg.segment import Predictor

    try:
        protocol = _protocol(protocol)
        predictor = Predictor(load_model(segmenter, device=device))
        embedder = _embedder(model, checkpoint)
        if protocol == "user":
            results, data_size, info = _user_text_prompts(dataset, split, unseen, dropped, limit, absent,
                                                          predictor, embedder, vocabulary, verify, phrase)
        else:
            results, data_size, info = _zero_shot_text_prompts(dataset, split or "val", unseen, dropped, limit,
                                                               calibration, predictor, embedder, bool(verify))
        _write_json(json_path, {
            "dataset": dataset, "protocol": protocol, "model": model, "segmenter": segmenter,
            "n_images": data_size, **info, **results,
        })
    except ZerosegError as err:
        raise _fail(err) from None
    where = f"{dataset} {info.get('split') or ''}".strip()
    if protocol == "user":
        columns = {"hit_rate": "hit", "first_hit_rate": "first mask hit", "fp_rate": "false positive",
                   "empty_rate": "nothing found", "seen_hit_rate": "seen hit", "unseen_hit_rate": "unseen hit"}
        title = (f"{segmenter} + {model} text prompts on {where} ({results['n_instances']} instances, "
                 f"{results['n_absent_prompts']} absent-class prompts, user protocol, vocabulary "
                 f"{results['vocabulary']}, typed {results['phrase']!r})")
    else:
        columns = {"miou": "mIoU", "seen_miou": "seen", "unseen_miou": "unseen", "hmean": "hmean"}
        title = f"{segmenter} + {model} text prompts on {where} ({results['n_prompts']} prompts, zero-shot protocol)"
    Console().print(settings_table({"text": results}, columns, title))


def _user_text_prompts(dataset: str, split: str | None, unseen: str | None, dropped: str | None,
                       limit: int | None, absent: int | None, predictor: Any, embedder: Any,
                       vocabulary: str = "all", verify: bool | None = None,
                       phrase: str = "{}") -> tuple[Any, int, dict]:
    from zeroseg.eval.naming import SemanticRegionNaming, evaluate_text_prompt_hits, load_naming_dataset

    data = load_naming_dataset(dataset, None, limit, split=split, dropped=_names(dropped))
    unseen_names = _unseen_or_none(dataset, data.classes, unseen, "user")
    prompt = None
    if verify is not None:
        import functools

        from zeroseg.segment.text_prompt import text_to_masks

        prompt = functools.partial(text_to_masks, verify=verify)
    results = evaluate_text_prompt_hits(predictor, embedder, data, unseen_names, absent_per_image=absent,
                                        vocabulary=vocabulary, text_to_masks=prompt, phrase=phrase)
    from zeroseg.segment.text_prompt import DEFAULT_VERIFY

    dropped_names = data.dropped if isinstance(data, SemanticRegionNaming) else []
    return results, len(data), {"split": _split_of(data, split), "unseen": unseen_names, "dropped": dropped_names,
                                "verify": DEFAULT_VERIFY if verify is None else verify}


def _zero_shot_text_prompts(dataset: str, split: str, unseen: str | None, dropped: str | None, limit: int | None,
                            calibration: float | None, predictor: Any, embedder: Any,
                            verify: bool = False) -> tuple[Any, int, dict]:
    from zeroseg.eval.naming import evaluate_text_prompts
    from zeroseg.eval.zero_shot import open_semantic_dataset, zero_shot_split

    data = open_semantic_dataset(dataset, split, limit)
    unseen_names, dropped_names = zero_shot_split(dataset, data.classes.values(), _names(unseen), _names(dropped))
    results = evaluate_text_prompts(predictor, embedder, data, unseen_names, calibration, dropped_names,
                                    verify=verify)
    return results, len(data), {"split": split, "unseen": unseen_names, "dropped": dropped_names}


if __name__ == "__main__":
    app()
