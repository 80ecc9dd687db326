"""How often segment-everything's segments get the right name, wholes and parts, on validation photos.

What a person sees in ``zeroseg everything --names``: every segment of a photo named among the
dataset's whole vocabulary by the default model and namer. Each segment is scored against the
ground truth it belongs to: a **whole** overlaps a ground-truth mask with IoU >= 0.5 (right: that
mask's class); a **part** has at least 80% of its pixels inside one ground-truth mask but IoU < 0.5
(right: that mask's class, a cat's eye is "cat"); other segments (several things, unlabelled ground)
are not scored. Printed with the namer's context for parts on and off (``name_segments(context=...)``,
:func:`zeroseg.segment.vocabulary_namer.in_context`), from one segment-everything pass per photo.

Datasets as ``zeroseg eval naming`` reads them (their val split): ``coco128`` (instances) or ``msrc21``
(class regions). ``LIMIT=N`` scores the first N photos.

    python recipes/everything_naming.py coco128 msrc21
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
from tqdm import tqdm

from zeroseg import hub
from zeroseg.eval.naming import load_naming_dataset
from zeroseg.models.text import clean_names
from zeroseg.segment.pipeline import Everything, namer_for

WHOLE_IOU = 0.5
PART_INSIDE = 0.8


def truths(masks: np.ndarray, gt: np.ndarray, classes: list[str]) -> list[tuple[str, str] | None]:
    """For each segment: ("whole" or "part", the right name), or None when it is not scored."""
    seg = masks.reshape(len(masks), -1).astype(np.float32)
    ref = gt.reshape(len(gt), -1).astype(np.float32)
    shared = seg @ ref.T
    area = seg.sum(1)
    iou = shared / (area[:, None] + ref.sum(1)[None] - shared + 1e-9)
    inside = shared / (area[:, None] + 1e-9)
    out: list[tuple[str, str] | None] = []
    for i in range(len(masks)):
        if iou[i].max() >= WHOLE_IOU:
            out.append(("whole", classes[int(iou[i].argmax())]))
        elif inside[i].max() >= PART_INSIDE:
            out.append(("part", classes[int(inside[i].argmax())]))
        else:
            out.append(None)
    return out


def score(dataset_name: str, limit: int | None) -> dict[str, dict[str, list[int]]]:
    dataset = load_naming_dataset(dataset_name, limit=limit)
    names = clean_names(dataset.classes)
    model = hub.load_model("lite")
    settings = hub.preset_of(model)
    namer = namer_for(names, settings)
    everything = Everything(model, settings)
    counts = {mode: {"whole": [0, 0], "part": [0, 0]} for mode in ("context", "alone")}
    for index in tqdm(range(len(dataset)), desc=dataset_name, unit="photo"):
        sample = dataset[index]
        segments = everything(sample.image)
        if not segments or not len(sample.masks):
            continue
        masks = np.stack([s.mask for s in segments])
        decided = {}
        for mode in ("context", "alone"):  # the product's own call; the namer's caches make the second cheap
            namer.name_segments(sample.image, segments, context=mode == "context")
            decided[mode] = [s.label for s in segments]
        truth_of = truths(masks, sample.masks, [clean_names([c])[0] for c in sample.class_names])
        for mode, named in decided.items():
            for name, truth in zip(named, truth_of):
                if truth is not None:
                    counts[mode][truth[0]][0] += int(name == truth[1])
                    counts[mode][truth[0]][1] += 1
    return counts


def main(argv: list[str]) -> None:
    limit = int(os.environ["LIMIT"]) if os.environ.get("LIMIT") else None
    print("| dataset | parts named in context | wholes right | parts right | all right |")
    print("|---|---|---|---|---|")
    for dataset_name in argv or ["coco128"]:
        start = time.time()
        for mode, counts in score(dataset_name, limit).items():
            (wr, wn), (pr, pn) = counts["whole"], counts["part"]
            cells = [f"{100 * r / max(n, 1):.1f}% of {n}" for r, n in ((wr, wn), (pr, pn), (wr + pr, wn + pn))]
            print(f"| {dataset_name} | {'yes' if mode == 'context' else 'no'} | " + " | ".join(cells) + " |")
        print(f"({dataset_name}: {time.time() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
