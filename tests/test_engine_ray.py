"""The automatic stage as a Ray Data job on a local Ray with 2 workers gives the single-process results.

Skipped when Ray cannot start here, unless ZEROSEG_REQUIRE=1 (then that is a failure).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from optional import import_optional, required, unavailable
from PIL import Image

from zeroseg.engine import ImageStatus, Store
from zeroseg.engine.stages import AutoConfig, add_images, auto

import_optional("ray.data", "pip install -e '.[test]'")

from zeroseg.engine.ray_runner import RayError, auto_ray

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own settings

CONFIG = AutoConfig(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_area=20)


def scene(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    image = np.full((80, 112, 3), 110, np.uint8) + rng.integers(0, 12, (80, 112, 3), dtype=np.uint8)
    image[10 + 4 * k : 50, 10:50] = (210, 40, 30)
    yy, xx = np.mgrid[:80, :112]
    image[(yy - 45) ** 2 + (xx - 80 + 3 * k) ** 2 < 15**2] = (40, 160, 60)
    return image


def fields(a) -> tuple:
    provenance = (a.source, a.status, a.model_name, a.model_version, a.author)
    return (a.rle["counts"], a.label, a.label_score, a.predicted_iou, a.stability_score, *provenance)


def results(store: Store) -> dict[str, list[tuple]]:
    return {
        image.path: sorted(map(fields, store.annotations_for(image.id)), key=repr) for image in store.images("toy")
    }


def test_ray_with_two_workers_equals_the_local_run(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(scene(k)).save(folder / f"scene{k}.png")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in every Ray actor: the same float arithmetic
    try:
        with Store.open(tmp_path / "local") as local:
            add_images(local, "toy", [folder])
            assert auto(local, "toy", CONFIG, progress=False).processed == 3
            expected = results(local)
        with Store.open(tmp_path / "ray") as store:
            add_images(store, "toy", [folder])
            assert auto(store, "toy", CONFIG, progress=False, limit=1).processed == 1  # done before: skipped
    finally:
        torch.set_num_threads(threads)

    try:
        summary = auto_ray(str(tmp_path / "ray"), "toy", CONFIG, num_workers=2, progress=False)
    except RayError as err:
        if required():
            raise
        unavailable(f"Ray cannot start here: {err}")
    assert (summary.processed, summary.skipped, summary.failed) == (2, 1, [])
    with Store.open(tmp_path / "ray") as store:
        assert [i.status for i in store.images("toy")] == [ImageStatus.AUTO_DONE] * 3
        got = results(store)
    assert sum(len(v) for v in expected.values()) > 3
    assert got == expected
    assert summary.annotations == sum(len(v) for k, v in expected.items() if k != "scene0.png")
