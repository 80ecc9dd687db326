"""The ``zeroseg`` command line: a thin face over io, hub, segment and viz.

Every ZerosegError is caught in one place (:class:`_Group`) and printed as one line
``error: <message>`` on stderr, exiting with the error's ``exit_code``. Every file is written
atomically, and the JSON result last, so an output folder never holds half a result.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from typer.core import TyperGroup

from zeroseg import __version__, hub
from zeroseg.engine.cli import DtypeOpt
from zeroseg.errors import NothingFoundError, PromptShapeError, PromptValueError, ZerosegError
from zeroseg.io import (
    atomic_write,
    ensure_dir,
    load_image,
    rle_to_mask,
    save_mask_png,
    save_png,
    staged_output,
)

if TYPE_CHECKING:
    from zeroseg.segment import Predictor
    from zeroseg.segment.record import Segment

DEFAULT_MODEL = hub.DEFAULT_MODEL


class _Group(TyperGroup):
    """A command group that reports ZerosegError as one line and its exit code, without a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZerosegError as err:
            message = " ".join(str(err).split())
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="zeroseg",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: paragraphs rewrapped, \b blocks (examples) kept
    pretty_exceptions_show_locals=False,
)

ImageArg = Annotated[
    Path, typer.Argument(metavar="IMAGE", help="Image file (PNG, JPEG, TIFF, ...).", show_default=False)
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if needed).", show_default=False)]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registered model name or alias (see `zeroseg models`).")]
CheckpointOpt = Annotated[
    Path | None, typer.Option(help="Weight file to use instead of the cached official one.", show_default=False)
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(help="JSON model config (needs --checkpoint); replaces --model.", show_default=False),
]
DeviceOpt = Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, mps.")]
NamesOpt = Annotated[
    str | None,
    typer.Option(
        "--names", "-n", metavar="NAMES",
        help='Vocabulary for naming, comma-separated: "sky, grass, cow". Any words: unseen classes work too.',
        show_default=False,
    ),
]
EmbedderOpt = Annotated[
    str | None,
    typer.Option(
        help="Dense vision-language embedder for names and text: lite, maskclip, groupvit; or sam3 (names "
        "masks by finding each name's instances).",
        show_default="the model's preset",
    ),
]
CalibrateOpt = Annotated[
    bool | None,
    typer.Option(
        "--calibrate/--no-calibrate",
        help="Calibrated stacking: lower the mask scores of names the embedder was trained on by its fitted "
        "gamma (the zero-shot evaluation's device); off by default, when masks take a smaller gamma, which is "
        "right more often on a user's own names.",
        show_default="the model's preset",
    ),
]


def _version(show: bool) -> None:
    if show:
        typer.echo(f"zeroseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Segment anything from the command line.

    \b
    Examples:
      zeroseg segment photo.jpg --point 320,240 --out out
      zeroseg everything photo.jpg --out out
      zeroseg models download mobile_sam
    """
    from zeroseg.runtime import reuse_freed_memory

    reuse_freed_memory()  # a CLI process does batch work: keep freed tensors' memory for reuse


# --- segment ------------------------------------------------------------------------------
@app.command()
def segment(
    image: ImageArg,
    out: OutOpt,
    point: Annotated[
        list[str] | None,
        typer.Option(
            "--point", "-p", metavar="X,Y[,LABEL]",
            help="Point prompt in pixels; LABEL 1 = object (default), 0 = background. Repeatable.",
            show_default=False,
        ),
    ] = None,
    box: Annotated[
        list[str] | None,
        typer.Option(
            "--box", "-b", metavar="X0,Y0,X1,Y1",
            help="Box prompt in pixels (corners). Repeatable: one mask per box.",
            show_default=False,
        ),
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(
            "--text", "-t", metavar="PHRASE",
            help="Text prompt: masks of the regions matching the phrase (zero-shot). Repeatable.",
            show_default=False,
        ),
    ] = None,
    exemplar: Annotated[
        list[str] | None,
        typer.Option(
            "--exemplar", "-e", metavar="X0,Y0,X1,Y1[,neg]",
            help="Exemplar box for a concept model (sam3): find every instance like it (neg: not like it). "
            "Repeatable; joins each --text phrase, or prompts alone.",
            show_default=False,
        ),
    ] = None,
    names: NamesOpt = None,
    single: Annotated[bool, typer.Option("--single", help="Keep only the best mask of each prompt.")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    calibrate: CalibrateOpt = None,
    embedder: EmbedderOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
) -> None:
    """Segment objects from point, box and text prompts.

    All points form one prompt. With boxes, each box is one prompt (the points, if any, are added
    to every box) and gives one mask. A single point alone is ambiguous, so it gives three
    candidates (whole, part, sub-part), best first; --single keeps the best one.

    A text prompt finds the regions whose pixels match the phrase better than the other names
    (--names) and the background, and prompts the model with each region's box and peak; its
    masks are labelled with the phrase, and their label score is how well they match it (0-1).
    A phrase that matches nothing is reported on stderr and listed in the result's
    prompts.unmatched; if no prompt gave a mask at all, nothing is written and the exit code is
    24. With --names the other masks are named from that vocabulary (label and label score).

    With a concept model (--model sam3), a text phrase and/or --exemplar boxes find every instance
    of the concept: each mask is labelled with the phrase, its score and label score are the
    model's instance score. Such a model takes no --point, --box or --names.

    Writes OUT/mask_<i>.png (0/255), OUT/overlay.png and, last, OUT/result.json (image size,
    model, prompts, and per mask: the index of its prompt and the prompt as the model got it
    (prompt_used), score (= predicted IoU), XYWH bbox, area, COCO RLE, label, label score, source
    and model). The files of an earlier result in OUT are replaced whole (no stale masks), or, if
    writing fails, left as they were.

    \b
    Examples:
      zeroseg segment photo.jpg --point 320,240 --out out
      zeroseg segment photo.jpg --text "a cat" --out out
      zeroseg segment photo.jpg -p 320,240 --names "cat, dog, sofa" --out out
      zeroseg segment photo.jpg -p 320,240 -p 400,260,0 --single --out out
      zeroseg segment photo.jpg --box 10,20,200,220 --box 250,30,400,300 --out out
      zeroseg segment photo.jpg -p 50,60 --config tiny.json --checkpoint tiny.pth -o out
      zeroseg segment photo.jpg --model sam3 --text "a cow" --out out
      zeroseg segment photo.jpg --model sam3 -e 10,20,200,220 -e 300,40,380,90,neg -o out
    """
    from zeroseg.segment import Predictor
    from zeroseg.segment.concept import is_concept_model
    from zeroseg.viz import overlay

    rgb = load_image(image)
    from zeroseg.vocabulary import clean_names, name_key

    phrases = clean_names(text) if text else []
    if text and not phrases:
        raise PromptValueError("--text needs a non-empty phrase")
    exemplars = _parse_exemplars(exemplar or [], rgb.shape[:2])
    points, boxes = _read_prompts(point or [], box or [], rgb.shape[:2], allow_none=bool(phrases or exemplars))
    vocabulary = _vocabulary(names)
    ensure_dir(out)
    loaded = hub.load_model(model, checkpoint, config, device, dtype)
    segments: list[Segment] = []
    prompt_ids: list[int] = []
    multimask = False
    unmatched: list[str] = []
    namer = None
    if is_concept_model(loaded):
        segments, prompt_ids, unmatched = _concept_prompts(loaded, rgb, phrases, exemplars, points, boxes, vocabulary, single)
    else:
        if exemplars:
            raise PromptValueError(f"--exemplar needs a concept model (e.g. --model sam3); {model} takes --point and --box")
        predictor = Predictor(loaded)
        predictor.set_image(rgb)
        if points is not None or boxes is not None:
            segments, prompt_ids, multimask = _predict(predictor, points, boxes, single)
        settings = hub.preset_of(loaded).override(embedder=embedder, calibrate=calibrate)
        # a text prompt's namer: "none of these" (the learned background) to find nothing where nothing matches
        # the phrases join the names, unless a name already names the same thing ("cup" for "a cup")
        known = {name_key(name) for name in vocabulary}
        names = vocabulary + [phrase for phrase in phrases if name_key(phrase) not in known]
        namer = _namer(names, settings, text=bool(phrases)) if names else None
        if phrases:
            from zeroseg.segment import text_to_masks

            n_prompts = max(prompt_ids) + 1 if prompt_ids else 0
            for k, phrase in enumerate(phrases):
                found = text_to_masks(rgb, phrase, predictor, namer)[: 1 if single else None]
                segments += found
                prompt_ids += [n_prompts + k] * len(found)
                if not found:
                    unmatched.append(phrase)
    if unmatched and not segments:
        quoted = ", ".join(repr(phrase) for phrase in unmatched)
        raise NothingFoundError(f"no region of {image} matches {quoted}; nothing was written")
    for phrase in unmatched:
        typer.echo(f"warning: no region matches {phrase!r}", err=True)
    if vocabulary and segments:
        named = namer.name_masks(rgb, np.stack([s.mask for s in segments]))
        for segment, (label, score) in zip(segments, named):
            if segment.label is None:
                segment.label, segment.label_score = label, score

    records = [_mask_record(i, segment, prompt) for i, (segment, prompt) in enumerate(zip(segments, prompt_ids))]
    captions = [_caption(record) for record in records]
    result = {
        "image": str(image),
        "size": {"height": rgb.shape[0], "width": rgb.shape[1]},
        "model": _model_info(loaded, checkpoint, config),
        "prompts": {
            "points": [] if points is None else points.tolist(),
            "boxes": [] if boxes is None else boxes.tolist(),
            "exemplars": [[*box, int(positive)] for box, positive in exemplars],
            "multimask_output": multimask,
            "text": phrases,
            "unmatched": unmatched,
        },
        "names": vocabulary,
        "bbox_format": "xywh",
        "masks": records,
    }
    masks = [s.mask for s in segments]
    with staged_output(out, stale=r"mask_\d+\.png", last="result.json") as stage:
        for record, mask in zip(records, masks):
            save_mask_png(stage / record["file"], mask)
        save_png(stage / "overlay.png", overlay(rgb, masks, labels=captions, points=points, boxes=boxes))
        atomic_write(stage / "result.json", json.dumps(result))
    for record in records:
        named = f", {record['label']}" if record["label"] else ""
        if record["label_score"] is not None:
            named += f" (match {record['label_score']:.2f})"
        typer.echo(f"{record['file']}: score {record['score']:.3f}, area {record['area']} px{named}")
    typer.echo(f"wrote {len(records)} mask(s), overlay.png and result.json to {out}")


def _mask_record(index: int, segment: Segment, prompt: int) -> dict[str, Any]:
    """A mask of result.json: its file, the index of its prompt, ``score`` (= predicted IoU) and the
    segment's fields (:meth:`Segment.to_dict`), the prompt as the model got it as ``prompt_used``."""
    fields = segment.to_dict()
    fields["prompt_used"] = fields.pop("prompt")
    rle = fields.pop("segmentation")
    return {"id": index, "file": f"mask_{index}.png", "prompt": prompt, "score": segment.predicted_iou, **fields,
            "segmentation": rle}  # fmt: skip


def _caption(record: dict[str, Any]) -> str:
    """``#0 score 0.91`` plus ``cat (match 0.87)``: the label and how well the mask matches it."""
    caption = f"#{record['id']} score {record['score']:.2f}"
    if record["label"]:
        caption += f" {record['label']}"
        if record["label_score"] is not None:
            caption += f" (match {record['label_score']:.2f})"
    return caption


def _read_prompts(
    point: list[str], box: list[str], size: tuple[int, int], allow_none: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Parse and check the prompts against the image before any model work: Nx3 points, Bx4 boxes."""
    from zeroseg.segment.validation import check_boxes, check_points

    points, boxes = _parse_points(point), _parse_boxes(box)
    if points is None and boxes is None and not allow_none:
        raise PromptShapeError('give at least one --point X,Y[,LABEL], --box X0,Y0,X1,Y1 or --text "PHRASE"')
    if points is not None:
        check_points(points[:, :2], points[:, 2], size)
    if boxes is not None:
        check_boxes(boxes, size, batched=True)
    return points, boxes


def _predict(
    predictor: Predictor, points: np.ndarray | None, boxes: np.ndarray | None, single: bool
) -> tuple[list[Segment], list[int], bool]:
    """Segments, the prompt index of each, and whether multimask output was asked; best first within
    each prompt.

    One prompt per box (the points join every box), or one prompt of points alone. Only a single
    point alone asks for three candidates, as SAM recommends for ambiguous prompts.
    """
    from zeroseg.segment.record import Segment

    multimask = boxes is None and len(points) == 1
    coords, labels = (None, None) if points is None else (points[:, :2], points[:, 2])
    model = predictor.model
    provenance = {"source": "assisted", "model_name": getattr(model, "name", None),
                  "model_version": getattr(model, "version", None)}  # fmt: skip
    segments, prompt_ids = [], []
    # One predict call per prompt (the decoder takes milliseconds): the model's interactive
    # post-processing (e.g. the lite model's graph cut) applies as in Predictor.predict.
    for index, box in enumerate([None] if boxes is None else boxes):
        masks, scores, _ = predictor.predict(coords, labels, box, multimask_output=multimask)
        prompt = {} if points is None else {"points": points.tolist()}
        if box is not None:
            prompt["box"] = box.tolist()
        order = np.argsort(-scores, kind="stable")[: 1 if single else None]
        segments += [
            Segment(masks[k], predicted_iou=float(scores[k]), prompt=dict(prompt), **provenance) for k in order
        ]
        prompt_ids += [index] * len(order)
    return segments, prompt_ids, multimask


def _parse_exemplars(texts: list[str], size: tuple[int, int]) -> list[tuple[list[float], bool]]:
    """``X0,Y0,X1,Y1[,neg]`` strings -> checked (box, positive) pairs."""
    from zeroseg.segment.validation import check_boxes

    exemplars = []
    for text in texts:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (4, 5):
            raise PromptShapeError(f"--exemplar expects X0,Y0,X1,Y1 or X0,Y0,X1,Y1,neg in pixels, got {text!r}")
        sign = parts[4].lower() if len(parts) == 5 else "pos"
        if sign not in ("pos", "neg", "1", "0"):
            raise PromptValueError(f"--exemplar {text!r}: the fifth value is neg (not like this) or pos")
        box = _floats(parts[:4], "--exemplar", text)
        check_boxes(box, size)
        exemplars.append((box, sign in ("pos", "1")))
    return exemplars


def _concept_prompts(
    model: Any, rgb: np.ndarray, phrases: list[str], exemplars: list[tuple[list[float], bool]],
    points: np.ndarray | None, boxes: np.ndarray | None, vocabulary: list[str], single: bool,
) -> tuple[list[Segment], list[int], list[str]]:
    """A concept model's segments: one prompt per phrase (the exemplars join each), or the exemplars
    alone; the prompt index of each segment; the prompts that found nothing."""
    from zeroseg.segment.concept import concept_masks

    name = getattr(model, "name", None) or "a concept model"
    if points is not None or boxes is not None:
        raise PromptValueError(f"{name} takes --text and --exemplar prompts, not --point or --box")
    if vocabulary:
        raise PromptValueError(f"{name} names what it finds by the prompt: give each name as --text, not --names")
    segments: list[Segment] = []
    prompt_ids: list[int] = []
    unmatched: list[str] = []
    for index, phrase in enumerate(phrases or [None]):
        found = concept_masks(rgb, model, phrase, exemplars)[: 1 if single else None]
        segments += found
        prompt_ids += [index] * len(found)
        if not found:
            unmatched.append("the exemplar boxes" if phrase is None else phrase)
    return segments, prompt_ids, unmatched


def _parse_points(texts: list[str]) -> np.ndarray | None:
    """``X,Y[,LABEL]`` strings -> Nx3 float array (x, y, label)."""
    if not texts:
        return None
    rows = []
    for text in texts:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (2, 3):
            raise PromptShapeError(f"--point expects X,Y or X,Y,LABEL in pixels, got {text!r}")
        label = parts[2] if len(parts) == 3 else "1"
        if label not in ("0", "1"):
            raise PromptValueError(f"--point {text!r}: LABEL must be 1 (object) or 0 (background)")
        rows.append([*_floats(parts[:2], "--point", text), float(label)])
    return np.asarray(rows, dtype=np.float64)


def _parse_boxes(texts: list[str]) -> np.ndarray | None:
    """``X0,Y0,X1,Y1`` strings -> Bx4 float array."""
    if not texts:
        return None
    rows = []
    for text in texts:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise PromptShapeError(f"--box expects X0,Y0,X1,Y1 in pixels, got {text!r}")
        rows.append(_floats(parts, "--box", text))
    return np.asarray(rows, dtype=np.float64)


def _floats(parts: list[str], option: str, text: str) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise PromptShapeError(f"{option} {text!r}: coordinates must be numbers") from None
    if not np.isfinite(values).all():
        raise PromptValueError(f"{option} {text!r}: coordinates must be finite")
    return values


def _vocabulary(names: str | None) -> list[str]:
    """``--names "sky, grass, cow"`` -> cleaned names; an option given but empty is an error."""
    from zeroseg.vocabulary import clean_names

    if names is None:
        return []
    vocabulary = clean_names(names)
    if not vocabulary:
        raise PromptValueError('--names needs at least one name, e.g. --names "sky, grass, cow"')
    return vocabulary


def _namer(vocabulary: list[str], settings: Any, **options: Any):
    """A Namer over the vocabulary with a preset's naming settings; ``options`` given as None keep them."""
    from zeroseg.segment.pipeline import namer_for

    return namer_for(vocabulary, settings, **{k: v for k, v in options.items() if v is not None})


def _model_info(model: Any, checkpoint: Path | None, config: Path | None) -> dict[str, Any]:
    """What made the masks: the loaded model's name and version, and the files given."""
    return {
        "name": getattr(model, "name", None),
        "version": getattr(model, "version", None),
        "config": None if config is None else str(config),
        "checkpoint": None if checkpoint is None else str(checkpoint),
    }


# --- everything ---------------------------------------------------------------------------
@app.command()
def everything(
    image: ImageArg,
    out: OutOpt,
    points_per_side: Annotated[int | None, typer.Option(min=1, help="Grid of N x N point prompts.")] = None,
    pred_iou_thresh: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Drop masks with a lower predicted IoU.")
    ] = None,
    stability_score_thresh: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Drop masks with a lower stability score.")
    ] = None,
    min_area: Annotated[
        int | None,
        typer.Option(min=0, help="Fill holes and drop islands smaller than this (pixels), then drop smaller masks."),
    ] = None,
    max_masks: Annotated[int | None, typer.Option(min=0, help="Keep at most this many masks, best first.")] = None,
    names: NamesOpt = None,
    calibrate: CalibrateOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    embedder: EmbedderOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Segment everything: prompt a grid of points and keep the good, distinct masks.

    Settings not given come from the model's preset (`zeroseg models show MODEL`). Writes
    OUT/overlay.png and, last, OUT/annotations.json in COCO format (one image, annotations with
    RLE segmentation, XYWH bbox, area, score = predicted IoU, stability_score, the prompt point,
    the model), best first. With --names each mask is named from the vocabulary (zero-shot: any
    names work) and gets that category, label_score and a caption in the overlay; masks that match
    no name keep the category "object".

    \b
    Examples:
      zeroseg everything photo.jpg --out out
      zeroseg everything photo.jpg --names "sky, grass, cow" --out out
      zeroseg everything photo.jpg --points-per-side 16 --min-area 100 --out out
      zeroseg everything photo.jpg --pred-iou-thresh 0.8 --model vit_b --out out
    """
    from zeroseg.engine import coco
    from zeroseg.segment.pipeline import Everything, namer_for
    from zeroseg.viz import name_captions, overlay

    rgb = load_image(image)
    vocabulary = _vocabulary(names)
    ensure_dir(out)
    loaded = hub.load_model(model, checkpoint, config, device)
    settings = hub.preset_of(loaded).override(
        points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_score_thresh, min_area=min_area, max_masks=max_masks,
        embedder=embedder, calibrate=calibrate,
    )  # fmt: skip
    namer = namer_for(vocabulary, settings) if vocabulary else None
    segments = Everything(loaded, settings, namer, progress=True)(rgb)

    info = {
        "description": "zeroseg segment-everything",
        "version": __version__,
        "model": _model_info(loaded, checkpoint, config),
        "parameters": settings.to_dict(),
    }
    entry = {"id": 1, "file_name": image.name, "path": str(image), "height": rgb.shape[0], "width": rgb.shape[1]}
    known = [{"id": i + 1, "name": name} for i, name in enumerate([coco.UNLABELLED, *vocabulary])]
    document = coco.document([(entry, segments)], categories=known, info=info)
    names, scores = name_captions(segments) if vocabulary else (None, None)
    save_png(out / "overlay.png", overlay(rgb, [s.mask for s in segments], labels=names, scores=scores, by_label=True))
    atomic_write(out / "annotations.json", json.dumps(document))
    if vocabulary:
        counts = {name: sum(s.label == name for s in segments) for name in vocabulary}
        typer.echo("named: " + (", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"))
    if not segments:
        typer.echo(
            "no mask passed the filters: try a lower --pred-iou-thresh or --stability-score-thresh "
            f"(this model's preset: {settings.pred_iou_thresh} / {settings.stability_score_thresh})",
            err=True,
        )
    typer.echo(f"wrote {len(segments)} mask(s), overlay.png and annotations.json to {out}")


# --- label-pixels -------------------------------------------------------------------------
@app.command("label-pixels")
def label_pixels(
    image: ImageArg,
    out: OutOpt,
    names: Annotated[
        str,
        typer.Option(
            "--names", "-n", metavar="NAMES", show_default=False,
            help='Vocabulary, comma-separated: "sky, grass, cow". Any words: unseen classes work too.',
        ),
    ],
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Leave pixels whose best name scores below this unlabelled.",
                     show_default=False),
    ] = None,
    none: Annotated[
        bool | None,
        typer.Option(
            "--none/--no-none",
            help="Let the embedder's learned background leave pixels unlabelled.",
            show_default="the model's preset",
        ),
    ] = None,
    calibrate: CalibrateOpt = None,
    embedder: EmbedderOpt = None,
    segments: Annotated[
        bool,
        typer.Option(
            "--segments/--no-segments",
            help="Let pixels take the names of the photo's segment-everything masks (a few seconds on a CPU); "
                 "--no-segments names each pixel from its own features alone.",
        ),
    ] = True,
    model: ModelOpt = DEFAULT_MODEL,
    checkpoint: CheckpointOpt = None,
) -> None:
    """Label every pixel with one of the names (zero-shot semantic segmentation).

    Pixels are named in the light of the photo's segments (segment-everything with --model), so a
    whole thing gets one name; --no-segments skips them. Writes OUT/labels.png (8- or 16-bit: 0 = none,
    i = the i-th name), OUT/overlay.png (colours and a legend) and, last, OUT/result.json (names with
    their pixel counts).

    \b
    Examples:
      zeroseg label-pixels photo.jpg --names "sky, grass, tree, cow, road" --out out
      zeroseg label-pixels photo.jpg -n "cat, sofa, floor, wall" --threshold 0.3 -o out
    """
    from zeroseg.viz import label_map_overlay

    rgb = load_image(image)
    vocabulary = _vocabulary(names)
    ensure_dir(out)
    settings = hub.get(DEFAULT_MODEL).preset.override(
        embedder=embedder, background=none, background_threshold=threshold
    )
    namer = _namer(vocabulary, settings, pixel_calibrate=calibrate)  # pixels are calibrated unless told
    from zeroseg.segment import Predictor
    from zeroseg.segment.pipeline import label_pixels

    predictor = Predictor(hub.load_model(model, checkpoint)) if segments else None
    labels = label_pixels(rgb, namer, predictor, progress=True)
    ids = (labels + 1).astype(np.uint8 if len(vocabulary) < 255 else np.uint16)
    save_png(out / "labels.png", ids)
    save_png(out / "overlay.png", label_map_overlay(rgb, labels, vocabulary))
    counts = np.bincount(ids.ravel(), minlength=len(vocabulary) + 1)
    result = {
        "image": str(image),
        "size": {"height": rgb.shape[0], "width": rgb.shape[1]},
        "embedder": settings.embedder,
        "labels_png": {"0": None, **{str(i + 1): name for i, name in enumerate(vocabulary)}},
        "pixels": {"none": int(counts[0]), **{name: int(counts[i + 1]) for i, name in enumerate(vocabulary)}},
    }
    atomic_write(out / "result.json", json.dumps(result))
    for i in np.argsort(-counts[1:]):
        if counts[i + 1]:
            typer.echo(f"{vocabulary[i]}: {counts[i + 1] / labels.size:.1%}")
    typer.echo(f"wrote labels.png, overlay.png and result.json to {out}")


# --- models -------------------------------------------------------------------------------
models_app = typer.Typer(cls=_Group, rich_markup_mode=None)
app.add_typer(models_app, name="models")

KindOption = Annotated[
    str | None, typer.Option("--kind", help="segmenter, text_encoder, dense_embedder, or a file kind.")
]


def _weights_status(entry: hub.ModelEntry) -> tuple[str, str]:
    """(size, state) of an entry's weights, for listings; a Hugging Face folder's size is approximate."""
    size = f"{'~' if entry.repo else ''}{entry.size / 1e6:,.0f} MB" if entry.size else "-"
    if entry.fetchable and not hub.is_cached(entry.name):
        return size, "not cached, gated" if entry.gated else "not cached"
    if hub.trained_weights(entry) is not None:
        return size, "trained"
    if entry.packaged:
        return size, "packaged"
    if entry.needs:
        missing = [need for need in entry.needs if not hub.is_cached(need)]
        return size, f"needs {', '.join(missing)}" if missing else "cached"
    return size, "cached" if hub.is_cached(entry.name) else "not cached"


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, kind: KindOption = None) -> None:
    """List everything the hub can load: segmenters (with the versions `zeroseg engine train` made),
    text encoders, dense embedders, and the weight files they are built from, with size, licence and
    whether they are cached. Gated models (SAM 3) need their licence accepted on Hugging Face and HF_TOKEN.

    \b
    Examples:
      zeroseg models
      zeroseg models --kind dense_embedder
      zeroseg models download mobile_sam
      zeroseg models download sam2.1_hiera_tiny
      zeroseg models verify vit_b
      zeroseg models verify ~/Downloads/sam_vit_b_01ec64.pth
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = [("name", "kind", "aliases", "size", "weights", "licence", "description")]
    for entry in hub.list_models(kind):
        size, state = _weights_status(entry)
        rows.append((entry.name, entry.kind, ",".join(entry.aliases) or "-", size, state, entry.licence, entry.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    typer.echo(
        f"\ncache: {hub.checkpoints_dir()}, Hugging Face folders in {hub.cache_dir() / 'hf'} (set ZEROSEG_HOME to "
        f"move them); trained: {hub.trained_dir()}"
    )


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name or alias.", show_default=False)], kind: KindOption = None
) -> None:
    """Show an entry and, for a segmenter, its preset: the defaults every command uses for it (flags override).

    \b
    Examples:
      zeroseg models show lite
      zeroseg models show lite --kind dense_embedder
      zeroseg models show vit_b
      zeroseg models show sam3
    """
    entry = hub.get(name, kind)
    typer.echo(f"{entry.name}: {entry.description}")
    typer.echo(f"  kind: {entry.kind}")
    typer.echo(f"  aliases: {', '.join(entry.aliases) or '-'}")
    typer.echo(f"  licence: {entry.licence}")
    trained = hub.trained_weights(entry)
    if entry.downloadable:
        typer.echo(f"  weights: {entry.url} ({entry.size / 1e6:,.0f} MB, sha256 {entry.sha256})")
        typer.echo(f"  cached: {'yes' if hub.is_cached(entry.name) else 'no'} ({hub.cache_path(entry.name)})")
    elif entry.repo is not None:
        typer.echo(f"  repo: https://huggingface.co/{entry.repo}")
        typer.echo(f"  revision: {entry.revision or 'main (not pinned)'}")
        if entry.fetchable:
            gated = "yes: accept the licence on the repo's page, then set HF_TOKEN" if entry.gated else "no"
            typer.echo(f"  gated: {gated}")
        if entry.size:
            typer.echo(f"  size: ~{entry.size / 1e6:,.0f} MB")
        typer.echo(f"  cached: {'yes' if hub.is_cached(entry.name) else 'no'} ({hub.folder_path(entry.name)})")
    elif trained is not None:
        typer.echo(f"  weights: {trained} (trained by `zeroseg engine train`)")
    else:
        typer.echo(f"  weights: {entry.source()}")
    if entry.kind == hub.SEGMENTER:
        typer.echo("preset:")
        for key, value in entry.preset.to_dict().items():
            typer.echo(f"  {key}: {value}")


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Model name or alias.", show_default=False)],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    kind: KindOption = None,
) -> None:
    """Download an entry's official weights (or the files it needs) into the cache and check their SHA-256;
    a Hugging Face model's folder (config and safetensors) at its pinned revision. Gated ones (SAM 3) need
    their licence accepted at huggingface.co and HF_TOKEN set.

    \b
    Examples:
      zeroseg models download mobile_sam
      zeroseg models download sam2.1_hiera_tiny
      HF_TOKEN=hf_... zeroseg models download sam3
      zeroseg models download maskclip --kind dense_embedder
      ZEROSEG_HOME=/data/zeroseg zeroseg models download vit_h
    """
    entry = hub.get(name, kind)
    for file in entry.needs or (entry.name,):
        path = hub.download(file, progress=not quiet)
        if path is not None and hub.get(file).fetchable:
            typer.echo(f"{file}: {path} ({hub.get(file).repo}, {hub.get(file).revision or 'main'})")
        elif path is not None:
            typer.echo(f"{file}: {path} (sha256 ok)")
        else:
            typer.echo(f"{entry.name}: nothing to download ({_weights_status(entry)[1]})")


@models_app.command("verify")
def models_verify(
    name_or_path: Annotated[str, typer.Argument(metavar="NAME|PATH", help="Model name, or a weight file.")],
) -> None:
    """Check a weight file's SHA-256 against the registry.

    \b
    Examples:
      zeroseg models verify vit_b
      zeroseg models verify ./sam_vit_b_01ec64.pth
    """
    entry = hub.verify(name_or_path)
    typer.echo(f"ok: {name_or_path} is {entry.name}" + (f" (sha256 {entry.sha256})" if entry.sha256 else ""))


# --- sub-commands from other packages -----------------------------------------------------
from zeroseg.eval.cli import app as eval_app  # noqa: E402
from zeroseg.train.cli import app as train_app  # noqa: E402

from zeroseg.engine.cli import app as engine_app  # noqa: E402
from zeroseg.server.cli import serve  # noqa: E402

app.add_typer(engine_app, name="engine")
app.add_typer(eval_app, name="eval")
app.command("serve")(serve)
app.add_typer(train_app, name="train")
