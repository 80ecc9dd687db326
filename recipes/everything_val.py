"""Choose segment-everything filters for the lite model on validation photos no training step saw.

Two sets of photos no training step saw, scored apart:

* ``regions``: 8 MSRC-21 and 4 CamVid *val* images (drawn with seed 0 from ../shared/data); ground truth:
  the connected regions of each class covering at least 1% of the image;
* ``instances``: the coco128 val split (``CocoYoloSegDataset(split="val")``, 32 photos); ground truth:
  its instance masks of at least 32 x 32 pixels (COCO's medium and large objects).

For each ``GRID,IOU,STABILITY[,NMS[,CROP_LAYERS[,CROP_DOWNSCALE]]]`` setting it prints masks per photo, recall (share of ground-truth
masks some mask matches at IoU 0.5 / 0.75), the mean best IoU per ground-truth mask and the share of
masks that match one. ``REFINE=0`` turns the lite preset's edge refinement off; ``CHECKPOINT=FILE``
scores other lite weights (e.g. a training run's ``lite_prompt.safetensors``); ``SETS=regions`` scores one set.

    python recipes/everything_val.py 32,0.4,0.1 32,0.5,0.2 32,0.4,0.1,0.8
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from zeroseg import hub
from zeroseg.segment import MaskGenerator, Predictor
from zeroseg.train.datasets import CocoYoloSegDataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCES = (("msrc21", {255}, 8), ("camvid", {11}, 4))  # (folder, void ids, photos)
MIN_SHARE = 0.01
MIN_AREA = 100
MIN_INSTANCE_AREA = 32 * 32
MAX_MASKS = 100  # the lite preset's max_masks


def regions(label: np.ndarray, void: set[int]) -> list[np.ndarray]:
    """Connected regions of each class, at least MIN_SHARE of the image."""
    found = []
    for value in np.unique(label):
        if value in void:
            continue
        count, components = cv2.connectedComponents((label == value).astype(np.uint8))
        found += [components == k for k in range(1, count) if (components == k).sum() >= MIN_SHARE * label.size]
    return found


Photo = tuple[np.ndarray, list[np.ndarray]]


def region_photos() -> list[Photo]:
    rng = np.random.default_rng(0)
    items = []
    for source, void, count in SOURCES:
        files = sorted((DATA / source / "val" / "images").iterdir())
        for file in [files[i] for i in sorted(rng.choice(len(files), count, replace=False))]:
            label = np.array(Image.open(next((DATA / source / "val" / "labels").glob(file.stem + ".*"))))
            items.append((np.array(Image.open(file).convert("RGB")), regions(label, void)))
    return items


def instance_photos() -> list[Photo]:
    coco = CocoYoloSegDataset(DATA / "coco128_seg", split="val")
    items = []
    for index in range(len(coco)):
        sample = coco[index]
        truth = [i.mask for i in sample.instances if i.mask.sum() >= MIN_INSTANCE_AREA]
        if truth:
            items.append((sample.image, truth))
    return items


def main(settings: list[str]) -> None:
    wanted = os.environ.get("SETS", "regions,instances").split(",")
    sets = {name: read() for name, read in (("regions", region_photos), ("instances", instance_photos)) if name in wanted}
    for name, items in sets.items():
        print(f"{name}: {len(items)} photos, {sum(len(r) for _, r in items)} masks", flush=True)
    checkpoint = os.environ.get("CHECKPOINT")
    model = hub.load_model("lite", checkpoint=checkpoint)
    predictor = Predictor(model, refine_edges=os.environ.get("REFINE", "1") == "1")
    for setting in settings:
        grid, iou, stability, *rest = setting.split(",")
        nms, crops, downscale = (rest + ["0.7", "0", "1"][len(rest):])[:3]
        generator = MaskGenerator(
            predictor, points_per_side=int(grid), pred_iou_thresh=float(iou),
            stability_score_thresh=float(stability), box_nms_thresh=float(nms),
            crop_n_layers=int(crops), crop_n_points_downscale_factor=int(downscale),
            min_mask_region_area=MIN_AREA, output_mode="coco_rle",
        )  # fmt: skip
        for name, items in sets.items():
            score(f"{setting} {name}", generator, items)


def score(what: str, generator: MaskGenerator, items: list[Photo]) -> None:
    """Prints the setting's scores on all its masks, then on the best MAX_MASKS by predicted IoU (the
    lite preset's ``max_masks``, as ``Everything`` keeps them)."""
    start = time.perf_counter()
    results: dict[str, tuple[list, list, list]] = {"all": ([], [], []), f"best {MAX_MASKS}": ([], [], [])}
    for image, truth in items:
        found = [r for r in generator.generate(image) if r["area"] >= MIN_AREA]
        found.sort(key=lambda r: (-r["predicted_iou"], -r["stability_score"]))
        truth_rles = [mask_utils.encode(np.asfortranarray(t.astype(np.uint8))) for t in truth]
        for kept, (best, counts, matching) in zip((found, found[:MAX_MASKS]), results.values()):
            counts.append(len(kept))
            if not kept:
                best += [0.0] * len(truth)
                continue
            masks = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in kept]
            ious = mask_utils.iou(masks, truth_rles, [0] * len(truth_rles))
            best += list(ious.max(0))
            matching.append((ious.max(1) >= 0.5).mean())
    seconds = (time.perf_counter() - start) / len(items)
    for name, (best, counts, matching) in results.items():
        best_iou = np.array(best)
        print(
            f"{what} ({name}): masks/photo {np.mean(counts):.1f} "
            f"recall@0.5 {np.mean(best_iou >= 0.5):.3f} @0.75 {np.mean(best_iou >= 0.75):.3f} "
            f"mean best IoU {best_iou.mean():.3f} matching {np.mean(matching) if matching else 0:.3f} "
            f"({seconds:.1f} s/photo)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["32,0.4,0.1"])
