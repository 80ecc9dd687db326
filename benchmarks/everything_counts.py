"""``zeroseg everything`` as a new user runs it: the default model and preset, no flags, on the demo photos
and five coco128 photos. Issue 14's bar is at least 10 plausible masks per photo; the rows give each photo's
count and time (the overlays are what to look at: ``--save DIR`` writes them).

    python -m benchmarks.everything_counts [--save DIR]
    python -m benchmarks.run --only everything_counts
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.cases import Context
from benchmarks.report import Machine, Row, Target, print_table, wide_console
from zeroseg import hub
from zeroseg.data import data_root
from zeroseg.demo import sample_photos
from zeroseg.io import load_image, save_png
from zeroseg.segment.pipeline import Everything
from zeroseg.viz import overlay

COCO = ("coco128_seg", "images", "train2017")  # under the shared data folder (zeroseg.data.data_root)
COCO_PHOTOS = slice(100, 105)  # five photos of the sorted folder, fixed so runs compare
MIN_MASKS = 10  # issue 14


def photos() -> dict[str, np.ndarray]:
    """The demo photos (scikit-image's coffee, chelsea, astronaut) and the five coco128 photos."""
    found = sample_photos()
    for path in sorted(data_root().joinpath(*COCO).glob("*.jpg"))[COCO_PHOTOS]:
        found[path.stem] = load_image(path)
    return found


def run(save: Path | None = None) -> list[Row]:
    model = hub.load_model(hub.DEFAULT_MODEL)
    everything = Everything(model)
    rows = []
    for name, image in photos().items():
        start = time.perf_counter()
        segments = everything(image)
        seconds = time.perf_counter() - start
        count = len(segments)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            save_png(save / f"{name}.png", overlay(image, [s.mask for s in segments]))
        what = f"everything, default model and preset, {name} ({image.shape[1]}x{image.shape[0]})"
        rows.append(Row("everything_counts", what, seconds, Target(f">= {MIN_MASKS} masks", count >= MIN_MASKS),
                        ratio=f"{count} masks", note="one run, image encoding included"))
    return rows


def case(ctx: Context) -> list[Row]:
    return run()


CASES = {"everything_counts": case}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write each photo's overlay here")
    args = parser.parse_args(argv)
    rows = run(args.save)
    print_table(rows, Machine.current(), wide_console())
    return 0 if all(r.target is None or r.target.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
