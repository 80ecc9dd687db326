"""Write a click-evaluation folder of held-out objects, for choosing interactive settings.

GrabCut and Berkeley are the benchmarks, so settings (e.g. the graph cut's band) are chosen on
objects the lite head never saw instead: MSRC-21 and CamVid *val* objects (connected components of
object classes, as in training), 50 of each, MSRC ones covering at least 5% of their image and CamVid
ones 1% (its objects are small). The folder has the layout ``zeroseg eval interactive --dataset``
takes (``index.csv`` with ``image,mask``).

    python recipes/interactive_val.py runs/interactive_val
    zeroseg eval interactive --dataset runs/interactive_val --model lite
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.train.datasets import PromptMaskDataset

PER_SOURCE = 50
MIN_SHARE = {"msrc21": 0.05, "camvid": 0.01}


def main(out: Path) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    rows = []
    for source, min_share in MIN_SHARE.items():
        objects = PromptMaskDataset(sources=(source,), split="val")
        large = [i for i in range(len(objects)) if objects[i].mask.mean() >= min_share]
        chosen = sorted(np.random.default_rng(0).choice(large, size=min(PER_SOURCE, len(large)), replace=False))
        for i in chosen:
            sample, name = objects[i], f"{source}_{i}"
            Image.fromarray(sample.image).save(out / "images" / f"{name}.png")
            Image.fromarray(sample.mask.astype(np.uint8) * 255).save(out / "masks" / f"{name}.png")
            rows.append(f"images/{name}.png,masks/{name}.png")
    (out / "index.csv").write_text("image,mask\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(rows)} objects in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/interactive_val"))
