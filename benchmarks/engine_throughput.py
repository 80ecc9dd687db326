"""Throughput of the data engine's automatic stage with the embedded default, in images per minute.

    python -m benchmarks.engine_throughput [--images 20] [--workers 2] [--points-per-side 16]

Runs the automatic stage (default :class:`AutoConfig`: lite model, 16 x 16 grid, its quality
filters, no naming) over the first N COCO128 photos of the shared data (read where they are; only a
temporary database is written):

- one process with torch's default threads, first with glibc's default allocator settings, then as
  ``zeroseg engine auto`` runs it (:func:`~zeroseg.runtime.reuse_freed_memory`);
- one process with one torch thread;
- a Ray Data job with N workers of one torch thread each (the default), and of two.

Each run starts from an empty database and includes loading the models; the Ray rows exclude starting
Ray itself, which is reported on its own. The last column checks that every run stored exactly the
masks of the one-thread run. Prints a markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks.report import Machine
from zeroseg.data import data_root
from zeroseg.engine import Store
from zeroseg.engine.stages import AutoConfig, AutoSummary, add_images, auto
from zeroseg.runtime import reuse_freed_memory

COCO_IMAGES = ("coco128_seg", "images", "train2017")


@dataclasses.dataclass
class Run:
    what: str
    summary: AutoSummary
    masks: dict[str, list[str]]  # per image path: sorted RLE strings
    load: tuple[float, float]  # 1-minute load average when the run started and ended
    same: str = ""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="number of COCO128 photos (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    parser.add_argument("--points-per-side", type=int, default=AutoConfig.points_per_side)
    return parser.parse_args(argv)


def photos(count: int) -> list[Path]:
    folder = data_root().joinpath(*COCO_IMAGES)
    files = sorted(folder.glob("*.jpg"))[:count]
    if len(files) < count:
        raise SystemExit(f"only {len(files)} photos in {folder}, asked for {count}")
    return files


def measure(what: str, files: list[Path], work: Path, run: Callable[[str], AutoSummary]) -> Run:
    """Add ``files`` to a fresh database in ``work`` and time ``run(database folder)`` over them."""
    db = work / "".join(c if c.isalnum() else "_" for c in what)
    with Store.open(db) as store:
        add_images(store, "bench", files)
    load_before = os.getloadavg()[0]
    summary = run(str(db))
    with Store.open(db) as store:
        masks = {
            image.path: sorted(a.rle["counts"] for a in store.annotations_for(image.id))
            for image in store.images("bench")
        }
    print(f"{what}: {summary}", flush=True)
    return Run(what, summary, masks, (load_before, os.getloadavg()[0]))


def local(config: AutoConfig, threads: int) -> Callable[[str], AutoSummary]:
    def run(db: str) -> AutoSummary:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with Store.open(db) as store:
                return auto(store, "bench", config, progress=False)
        finally:
            torch.set_num_threads(before)

    return run


def on_ray(config: AutoConfig, workers: int, threads: int) -> Callable[[str], AutoSummary]:
    from zeroseg.engine.ray_runner import auto_ray

    return lambda db: auto_ray(db, "bench", config, num_workers=workers, threads_per_worker=threads, progress=False)


def table(runs: list[Run], machine: Machine, ray_start: float, config: AutoConfig, images: int) -> str:
    setup = (
        f"`engine auto` throughput: {images} COCO128 photos (640 px wide), default AutoConfig "
        f"(lite, {config.points_per_side}x{config.points_per_side} grid, pred_iou > {config.pred_iou_thresh}, "
        f"stability >= {config.stability_score_thresh}, min_area {config.min_area}, no naming); "
        f"{machine.cpu}, {machine.cores} cores, torch {machine.torch_version}, {machine.date}."
    )
    lines = [
        setup,
        "",
        "| run | images/min | s/image | masks | load at start, end | masks equal the 1-thread run |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = run.summary
        lines.append(
            f"| {run.what} | {s.images_per_minute:.1f} | {s.seconds / max(s.processed, 1):.2f} | {s.annotations} "
            f"| {run.load[0]:.1f}, {run.load[1]:.1f} | {run.same} |"
        )
    lines += ["", f"Starting the local Ray (not counted above): {ray_start:.1f} s. Every row includes model loading."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = dataclasses.replace(AutoConfig(), points_per_side=args.points_per_side)
    files = photos(args.images)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="zeroseg-bench-") as tmp:
        work = Path(tmp)
        threads = torch.get_num_threads()
        measure("warm-up", files[:1], work, local(config, threads))  # first imports, lazy inits
        runs = [measure(f"1 process, {threads} threads, default allocator", files, work, local(config, threads))]
        reuse_freed_memory()
        runs += [
            measure(f"1 process, {threads} threads (`zeroseg engine auto`)", files, work, local(config, threads)),
            measure("1 process, 1 thread", files, work, local(config, 1)),
        ]
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        try:
            for per_worker in (1, 2):
                what = f"Ray, {args.workers} workers x {per_worker} thread{'s' if per_worker > 1 else ''}"
                runs.append(measure(what, files, work, on_ray(config, args.workers, per_worker)))
        finally:
            ray.shutdown()
    reference = runs[2].masks
    for run in runs:
        run.same = "yes" if run.masks == reference else "no"
    print()
    print(table(runs, Machine.current(), ray_start, config, len(files)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
