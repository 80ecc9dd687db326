"""What ``benchmarks.run`` measures: one function per ``--only`` name, each returning table rows."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from skimage import data as skimage_data
from torch import nn

from benchmarks.report import Row, at_least, at_most
from benchmarks.timing import Repeats, median_seconds

if TYPE_CHECKING:  # imported lazily below, so a missing model shows as one failed case, not a crash
    from zeroseg.segment import Predictor

PHOTO_SIZE = (640, 480)  # (width, height) of the photo used wherever a real image is needed
DECODER_BATCH = 64
DECODER_MAX_SECONDS = 0.050
BATCH_MIN_SPEEDUP = 3.0
EVERYTHING_GRID = 32  # points per side, MaskGenerator's default
EVERYTHING_MAX_SECONDS = 20.0
LITE_ENCODER_MAX_SECONDS = 0.3
LITE_DECODER_MAX_SECONDS = 0.015


@dataclass
class Context:
    """Settings shared by the cases, and seconds measured so far (for ratios between cases)."""

    quick: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def repeats(self, full: Repeats, quick: Repeats) -> Repeats:
        return quick if self.quick else full


@functools.cache
def photo() -> np.ndarray:
    """A real photo (scikit-image's ``coffee``), scaled and centre-cropped to PHOTO_SIZE, HxWx3 uint8."""
    image = Image.fromarray(skimage_data.coffee())
    width, height = PHOTO_SIZE
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


@functools.cache
def sam_model(name: str) -> nn.Module:
    """A full-size SAM-family model with its default random initialisation."""
    from zeroseg.models.sam import build_sam

    return build_sam(name).eval()


def predictor(model: nn.Module, refine: bool = False) -> Predictor:
    """A Predictor without an embedding cache, so repeated runs really re-encode; the decoder alone
    unless ``refine`` (the lite model's default edge refinement and graph cut, timed in their own row)."""
    from zeroseg.segment import Predictor

    return Predictor(model, cache_size=0, refine_edges=refine, graph_cut=refine)


def image_encoder(name: str, ctx: Context) -> list[Row]:
    """The SAM image encoder alone on one square input of its native size."""
    encoder = sam_model(name).image_encoder
    size = encoder.img_size
    x = torch.randn(1, 3, size, size)
    repeats = ctx.repeats(Repeats(1, 2), Repeats(0, 1))
    outputs: list[torch.Tensor] = []
    seconds = median_seconds(lambda: outputs.append(encoder(x)), repeats)
    ctx.seconds[name] = seconds
    finite = bool(torch.isfinite(outputs[-1]).all())
    note = f"{repeats}; output {tuple(outputs[-1].shape)}" + ("" if finite else "; NON-FINITE OUTPUT")
    ratio = ""
    if name != "vit_b" and "vit_b" in ctx.seconds:
        ratio = f"{ctx.seconds['vit_b'] / seconds:.1f}x faster than vit_b"
    return [Row(name, f"{name} image encoder, {size}x{size} input", seconds, ratio=ratio, note=note)]


def point_batch(n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """n single-point prompts spread over the image: coords Bx1x2 and labels Bx1."""
    side = int(np.ceil(np.sqrt(n)))
    xs, ys = np.meshgrid((np.arange(side) + 0.5) / side * width, (np.arange(side) + 0.5) / side * height)
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1)[:n, None, :]
    return coords, np.ones((n, 1), dtype=np.int64)


def single_prompt_seconds(
    pred: Predictor, coords: np.ndarray, labels: np.ndarray, ctx: Context
) -> tuple[float, Repeats]:
    """Median seconds of ``pred.predict`` for one prompt on the image already set, and the repeats used."""
    repeats = ctx.repeats(Repeats(3, 20), Repeats(1, 5))
    return median_seconds(lambda: pred.predict(coords, labels), repeats), repeats


def decoder_rows(
    case: str, label: str, model: nn.Module, ctx: Context, max_single: float, min_speedup: float | None
) -> list[Row]:
    """One point prompt at a time vs DECODER_BATCH at once, as ``Predictor.predict`` runs them
    (prompt encoder + mask decoder + upscaling to the image, 3 masks per prompt)."""
    pred = predictor(model)
    image = photo()
    pred.set_image(image)
    height, width = image.shape[:2]
    coords, labels = point_batch(DECODER_BATCH, width, height)

    single, single_repeats = single_prompt_seconds(pred, coords[0], labels[0], ctx)
    batch_repeats = ctx.repeats(Repeats(1, 5), Repeats(1, 2))
    batched = median_seconds(lambda: pred.predict_batch(coords, labels), batch_repeats)
    per_prompt = batched / DECODER_BATCH
    speedup = single / per_prompt
    where = f"{width}x{height} image"
    return [
        Row(case, f"{label}: 1 point prompt, {where}", single, at_most(single, max_single), note=str(single_repeats)),
        Row(case, f"{label}: {DECODER_BATCH} point prompts in one call", batched, note=str(batch_repeats)),
        Row(
            case,
            f"{label}: per prompt when batched {DECODER_BATCH}",
            per_prompt,
            None if min_speedup is None else at_least(speedup, min_speedup, "cheaper"),
            ratio=f"{speedup:.1f}x cheaper",
        ),
    ]


def sam_decoder(ctx: Context) -> list[Row]:
    # every SAM family member shares the same prompt encoder and mask decoder; vit_t embeds fastest
    model = sam_model("vit_t")
    return decoder_rows("decoder", "SAM mask decoder", model, ctx, DECODER_MAX_SECONDS, BATCH_MIN_SPEEDUP)


def everything(ctx: Context) -> list[Row]:
    """Segment everything with vit_t and default settings, image encoding included.

    Random weights rarely pass the predicted-IoU and stability filters, which makes the default run
    cheaper than with real weights; a second run with the filters off bounds the cost from above.
    """
    pred = predictor(sam_model("vit_t"))
    image = photo()
    height, width = image.shape[:2]
    what = f"segment everything, vit_t, {EVERYTHING_GRID}x{EVERYTHING_GRID} grid, {width}x{height} photo"
    repeats = ctx.repeats(Repeats(1, 2), Repeats(0, 1))
    seconds, count = segment_everything(pred, image, repeats)
    once = Repeats(0, 1)
    unfiltered, unfiltered_count = segment_everything(
        pred, image, once, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    return [
        Row("everything", f"{what}, default settings", seconds, at_most(seconds, EVERYTHING_MAX_SECONDS),
            note=f"{repeats}; {count} masks"),
        Row("everything", f"{what}, filters off (every mask reaches NMS)", unfiltered,
            note=f"{once}; {unfiltered_count} masks"),
    ]


def segment_everything(
    pred: Predictor, image: np.ndarray, repeats: Repeats, **options: float
) -> tuple[float, int]:
    """Median seconds of ``MaskGenerator.generate`` and how many masks it returned."""
    from zeroseg.segment import MaskGenerator

    generator = MaskGenerator(pred, points_per_side=EVERYTHING_GRID, **options)
    counts: list[int] = []
    seconds = median_seconds(lambda: counts.append(len(generator.generate(image))), repeats)
    return seconds, counts[-1]


def lite(ctx: Context) -> list[Row]:
    """The embedded default model: its encoder on the photo (``set_image``), and its decoder per prompt.

    Uses the shipped head when present, else a freshly initialised head of the default config
    (same compute; the backbone always has its ImageNet weights).
    """
    try:
        from zeroseg.models.lite import build_lite, build_lite_model
    except ImportError as error:
        return [Row("lite", "lite model", note=f"zeroseg.models.lite is not importable ({error})")]
    from zeroseg.errors import WeightsNotFoundError

    try:
        model, head = build_lite(), "shipped head"
    except WeightsNotFoundError:
        model, head = build_lite_model(), "untrained head (none shipped yet)"
    pred = predictor(model)
    image = photo()
    height, width = image.shape[:2]
    repeats = ctx.repeats(Repeats(2, 10), Repeats(1, 3))
    seconds = median_seconds(lambda: pred.set_image(image), repeats)
    size = model.image_encoder.img_size
    encoder = Row("lite", f"lite encoder, {width}x{height} photo (set_image, {size} input)", seconds,
                  at_most(seconds, LITE_ENCODER_MAX_SECONDS), note=f"{repeats}; {head}")
    decoder = decoder_rows("lite", "lite decoder", model, ctx, LITE_DECODER_MAX_SECONDS, None)
    refined = predictor(model, refine=True)
    refined.set_image(image)
    coords, labels = point_batch(1, width, height)
    seconds, single_repeats = single_prompt_seconds(refined, coords[0], labels[0], ctx)
    what = f"lite decoder + edge refinement + graph cut of its 3 masks: 1 point prompt, {width}x{height}"
    with_refinement = Row("lite", what, seconds, note=f"{single_repeats}; what Predictor(lite).predict costs")
    return [encoder, *decoder, with_refinement]


CASES: dict[str, Callable[[Context], list[Row]]] = {
    "vit_b": functools.partial(image_encoder, "vit_b"),
    "vit_t": functools.partial(image_encoder, "vit_t"),
    "decoder": sam_decoder,
    "everything": everything,
    "lite": lite,
}
