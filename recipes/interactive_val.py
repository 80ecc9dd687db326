"""Write a click-evaluation folder of held-out objects, for choosing interactive settings.

GrabCut and Berkeley are the benchmarks, so settings are chosen on objects no training step reads
instead: the *val* split of every training source. From the shared data: COCO128's val quarter
(instances), MSRC-21 and CamVid val (connected components of object classes, as in training). With an
extra data folder (``recipes/get_lite_data.sh``) also the val images of BSDS500 (regions and salient
objects), Clothing Co-Parsing (people and garments), Weizmann horses, the human-segmentation set, the
feral cats and Oxford-IIIT pets. Objects are drawn with a fixed seed among those covering at least
:data:`MIN_SHARE` of their image, at most :data:`PER_SOURCE` per source. The folder has the layout
``zeroseg eval interactive --dataset`` takes (``index.csv`` with ``image,mask``).

    python recipes/interactive_val.py runs/interactive_val [EXTRA_DATA_DIR]
    zeroseg eval interactive --dataset runs/interactive_val --model lite

``SOURCES=a,b`` keeps those sources only and ``MOST=N`` replaces every cap (e.g. ``SOURCES=coco128 MOST=1000``:
every COCO128 val instance of at least 1% of its photo, a larger COCO-style set to judge small changes on).
``SMALL=1`` writes the objects under the share instead (at least :data:`MIN_PIXELS`; ``SOURCES=coco128 MOST=1000
SMALL=1``: the 92 small COCO128 val instances). ``SOURCES=coco MOST=1000`` writes the val part of the COCO 2017
subsets (:data:`ON_REQUEST`: never in the default set).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.train.datasets import PromptMaskDataset

# source -> (most objects, least share of the image)
SHARED = {"coco128": (50, 0.01), "msrc21": (30, 0.05), "camvid": (25, 0.01)}
EXTRA = {
    "bsds": (30, 0.03),
    "ccp": (20, 0.01),
    "horse": (12, 0.01),
    "human": (12, 0.01),
    "feral_cat": (12, 0.01),
    "pets": (12, 0.01),
}
# only when SOURCES names them (the default set stays the one the lite model's settings were chosen on)
ON_REQUEST = {"coco": (50, 0.01)}  # the hash-split val part of the COCO 2017 subsets' train2017 photos
PER_SOURCE = {name: most for name, (most, _) in {**SHARED, **EXTRA, **ON_REQUEST}.items()}
MIN_SHARE = {name: share for name, (_, share) in {**SHARED, **EXTRA, **ON_REQUEST}.items()}
MIN_PIXELS = 100  # the smallest object of a SMALL=1 set


def main(out: Path, extra: Path | None = None) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    rows = []
    sources = list(SHARED) + (list(EXTRA) if extra is not None else [])
    wanted = os.environ.get("SOURCES")
    if wanted:
        sources = [s for s in sources + list(ON_REQUEST) if s in wanted.split(",")]
    for source in sources:
        objects = PromptMaskDataset(sources=(source,), split="val", extra_root=extra)
        if os.environ.get("SMALL"):  # the small objects instead: under the share, at least MIN_PIXELS
            large = [i for i in range(len(objects)) if objects.objects[i].mask.mean() < MIN_SHARE[source]
                     and objects.objects[i].mask.sum() >= MIN_PIXELS]  # fmt: skip
        else:
            large = [i for i in range(len(objects)) if objects.objects[i].mask.mean() >= MIN_SHARE[source]]
        size = min(int(os.environ.get("MOST", PER_SOURCE[source])), len(large))
        chosen = sorted(np.random.default_rng(0).choice(large, size=size, replace=False))
        for i in chosen:
            sample, name = objects[i], f"{source}_{i}"
            Image.fromarray(sample.image).save(out / "images" / f"{name}.png")
            Image.fromarray(sample.mask.astype(np.uint8) * 255).save(out / "masks" / f"{name}.png")
            rows.append(f"images/{name}.png,masks/{name}.png")
        print(f"{source}: {len(chosen)} of {len(large)} val objects", flush=True)
    (out / "index.csv").write_text("image,mask\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(rows)} objects in {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "runs/interactive_val"), Path(args[1]) if len(args) > 1 else None)
