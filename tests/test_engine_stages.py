"""The data engine's stages: add, auto (filters, naming, resume), propose, retrain, and the CLI.

Images are small synthetic scenes (a red square and a blue disc on grey) and the grid is 8 x 8, so
the embedded lite model runs in well under a second per image. Naming uses a colour embedder whose
right answers are known: each pixel's embedding is its RGB direction, "red" / "green" / "blue" are
the axes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from zeroseg import hub
from zeroseg.engine import ImageStatus, NewAnnotation, Source, Status, Store, stages
from zeroseg.engine.cli import app as engine_app
from zeroseg.engine.stages import (
    AutoConfig,
    AutoModels,
    add_images,
    annotate_image,
    auto,
    load_models,
    propose,
)
from zeroseg.errors import DatasetError, NotFoundError
from zeroseg.io import rle_to_mask
from zeroseg.models.vl import DenseEmbedding
from zeroseg.segment import Namer
from zeroseg.segment.pipeline import Everything

# Loose filters so that the toy scenes give several masks; the tests tighten them where they test them.
SMALL = AutoConfig(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_area=20)
COLOURS = ("red", "green", "blue")
RED, BLUE = (220, 30, 30), (30, 40, 220)


# --- fixtures -----------------------------------------------------------------------------
class ColourText:
    name, dim = "colour", 3

    def encode(self, names):
        return torch.stack([F.one_hot(torch.tensor(COLOURS.index(n)), 3).float() for n in names])


class ColourEmbedder:
    """Per 8x8 cell: the unit direction of its mean RGB."""

    name = "colour"
    text_encoder = ColourText()

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        h, w = image.shape[:2]
        pixels = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None]
        grid = F.adaptive_avg_pool2d(pixels, (max(1, h // 8), max(1, w // 8)))[0]
        return DenseEmbedding(F.normalize(grid, dim=0), (h, w))

    def background(self):
        return None


def colour_embedder(checkpoint=None) -> ColourEmbedder:
    return ColourEmbedder()


@pytest.fixture
def colour_names(scratch_hub):
    """Make the embedder name "colour" (and "lite", which propose uses) load the colour embedder."""
    for name in ("colour", "lite"):
        scratch_hub(name, colour_embedder)


def scene(shift: int) -> np.ndarray:
    rng = np.random.default_rng(shift)
    image = np.full((96, 128, 3), 120, np.uint8) + rng.integers(0, 10, (96, 128, 3), dtype=np.uint8)
    image[20 + 5 * shift : 60, 15:55] = RED
    yy, xx = np.mgrid[:96, :128]
    image[(yy - 50) ** 2 + (xx - 95 - shift) ** 2 < 18**2] = BLUE
    return image


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for k in range(3):
        Image.fromarray(scene(k)).save(folder / f"scene{k}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def models() -> AutoModels:
    return load_models(SMALL)


@pytest.fixture
def store(tmp_path) -> Store:
    with Store.open(tmp_path / "db") as s:
        yield s


def by_image(store: Store, dataset: str) -> dict[str, list[tuple]]:
    """Each image's annotations as comparable tuples, order-independent."""
    def fields(a) -> tuple:
        return (a.rle["counts"], a.label, a.predicted_iou, a.stability_score, a.source, a.status)

    images = store.images(dataset)
    return {image.path: sorted(map(fields, store.annotations_for(image.id)), key=repr) for image in images}


# --- add ----------------------------------------------------------------------------------
def test_add_images_from_a_folder_and_again(store, image_dir):
    records = add_images(store, "toy", [image_dir])
    assert [r.path for r in records] == ["scene0.png", "scene1.png", "scene2.png"]
    assert store.get_dataset("toy").root == image_dir.resolve()
    assert all(r.status is ImageStatus.NEW and (r.height, r.width) == (96, 128) for r in records)
    again = add_images(store, "toy", [image_dir / "scene1.png"])
    assert again[0].id == records[1].id and len(store.images("toy")) == 3


def test_add_images_dataset_root_and_errors(store, image_dir, tmp_path):
    records = add_images(store, "two", [image_dir / "scene0.png", image_dir / "scene2.png"])
    assert store.get_dataset("two").root == image_dir.resolve() and len(records) == 2
    with pytest.raises(DatasetError, match="no such file"):
        add_images(store, "two", [image_dir / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        add_images(store, "empty", [tmp_path / "empty"])
    with pytest.raises(DatasetError, match="outside the dataset root"):
        add_images(store, "two", [tmp_path / "db" / "zeroseg.db"])


# --- annotate_image -----------------------------------------------------------------------
def test_annotate_image_is_deterministic_and_records_provenance(models):
    image = scene(0)
    first = annotate_image(image, SMALL, models, image_id=7)
    second = annotate_image(image, SMALL, models, image_id=7)
    assert len(first) >= 3
    assert [(a.mask["counts"], a.predicted_iou) for a in first] == [(a.mask["counts"], a.predicted_iou) for a in second]
    assert all(a.image_id == 7 and a.source is Source.AUTO and a.status is Status.ACCEPTED for a in first)
    assert all(a.model_name == "lite" and a.model_version and a.label is None for a in first)
    ious = [a.predicted_iou for a in first]
    assert ious == sorted(ious, reverse=True)


def test_quality_filters(models):
    image = scene(1)
    loose = annotate_image(image, SMALL, models)
    strict_config = dataclasses.replace(SMALL, pred_iou_thresh=0.5, stability_score_thresh=0.5, min_area=500)
    strict = annotate_image(image, strict_config, load_models(strict_config))
    assert 0 < len(strict) < len(loose)
    for a in strict:
        assert a.predicted_iou > 0.5 and a.stability_score >= 0.5 and rle_to_mask(a.mask).sum() >= 500
    capped_config = dataclasses.replace(SMALL, max_masks=2)
    capped = annotate_image(image, capped_config, load_models(capped_config))
    assert [a.mask["counts"] for a in capped] == [a.mask["counts"] for a in loose[:2]]


def test_annotate_image_names_masks(models):
    config = dataclasses.replace(SMALL, names=("red", "green", "blue"), background_threshold=0.5)
    pipeline = models.pipeline
    named = AutoModels(Everything(pipeline.predictor, pipeline.settings, Namer(ColourEmbedder(), config.names, background_threshold=0.5)))
    image = scene(0)
    red = (image == RED).all(-1)
    blue = (image == BLUE).all(-1)
    checked = 0
    for a in annotate_image(image, config, named):
        mask = rle_to_mask(a.mask)
        share = {"red": (mask & red).sum() / mask.sum(), "blue": (mask & blue).sum() / mask.sum()}
        if (a.label is None) != (a.label_score is None):
            pytest.fail("a label and its score go together")
        dominant = [name for name, s in share.items() if s > 0.5]
        if dominant:
            assert a.label == dominant[0] and a.label_score > 0.5
            checked += 1
    assert checked >= 1


def test_auto_config_checks_and_cleans():
    assert AutoConfig(names="sky, grass ,sky").names == ("sky", "grass")
    with pytest.raises(ValueError, match="pred_iou_thresh"):
        AutoConfig(pred_iou_thresh=1.5)


def test_auto_config_defaults_are_the_models_preset():
    preset = hub.get("lite").preset
    assert AutoConfig().settings(preset) == preset  # the stage keeps no numbers of its own
    assert AutoConfig(pred_iou_thresh=0.3).settings(preset) == preset.override(pred_iou_thresh=0.3)


# --- auto ---------------------------------------------------------------------------------
def test_auto_resumes_after_a_kill_and_skips_done_images(store, image_dir, models, tmp_path, monkeypatch):
    add_images(store, "toy", [image_dir])
    first = auto(store, "toy", SMALL, progress=False, limit=1, models=models)
    assert (first.processed, first.skipped) == (1, 0) and first.annotations > 0
    statuses = [i.status for i in store.images("toy")]
    assert statuses == [ImageStatus.AUTO_DONE, ImageStatus.NEW, ImageStatus.NEW]

    real = stages.annotate_image
    calls = []

    def killed_on_second_image(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between two images
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "annotate_image", killed_on_second_image)
    with pytest.raises(KeyboardInterrupt):
        auto(store, "toy", SMALL, progress=False, models=models)
    images = store.images("toy")
    assert [i.status for i in images] == [ImageStatus.AUTO_DONE, ImageStatus.AUTO_DONE, ImageStatus.NEW]
    assert store.annotations_for(images[2].id) == []
    monkeypatch.setattr(stages, "annotate_image", real)

    resumed = auto(store, "toy", SMALL, progress=False, models=models)
    assert (resumed.processed, resumed.skipped, resumed.failed) == (1, 2, [])
    assert auto(store, "toy", SMALL, progress=False, models=models).processed == 0

    with Store.open(tmp_path / "clean") as clean:  # one uninterrupted run gives the same masks
        add_images(clean, "toy", [image_dir])
        assert auto(clean, "toy", SMALL, progress=False, models=models).processed == 3
        assert by_image(clean, "toy") == by_image(store, "toy")
    assert all(a.author == stages.AUTHOR for a in store.annotations_for(images[0].id))


def test_auto_skips_reviewed_images_and_reports_unreadable_ones(store, image_dir, models, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("scene0.png", "scene1.png"):
        (folder / name).write_bytes((image_dir / name).read_bytes())
    records = add_images(store, "toy", [folder])
    store.set_image_status(records[0].id, ImageStatus.REVIEWED)
    (folder / "scene1.png").write_bytes(b"broken")
    summary = auto(store, "toy", SMALL, progress=False, models=models)
    assert (summary.processed, summary.skipped) == (0, 1)
    assert summary.failed and summary.failed[0][0] == "scene1.png"
    assert store.get_image(records[1].id).status is ImageStatus.NEW
    with pytest.raises(NotFoundError):
        auto(store, "nope", SMALL, progress=False, models=models)


# --- propose ------------------------------------------------------------------------------
def test_propose_stores_proposals_once(store, image_dir, models):
    (record,) = add_images(store, "toy", [image_dir / "scene0.png"])
    names = ["red", "blue"]
    namer = Namer(ColourEmbedder(), names)

    def pipeline(min_score: float) -> Everything:
        settings = models.pipeline.settings.override(pred_iou_thresh=min_score)
        return Everything(models.pipeline.predictor, settings, namer)

    best = propose(store, record.id, pipeline(0.9))
    assert best
    for p in best:
        assert p.status is Status.PROPOSED and p.source is Source.AUTO and p.author == "auto"
        assert p.predicted_iou > 0.9 and p.model_name == "lite"
    assert store.get_image(record.id).status is ImageStatus.NEW  # proposals do not finish an image
    store.update_annotation(best[0].id, status=Status.REJECTED)

    more = propose(store, record.id, pipeline(0.0))  # a lower bar adds only what is new
    assert more and not {p.rle["counts"] for p in more} & {p.rle["counts"] for p in best}
    assert any(p.label in names for p in more)
    assert propose(store, record.id, pipeline(0.0)) == []
    assert len(store.annotations_for(record.id)) == len(best) + len(more)


# --- retrain ------------------------------------------------------------------------------
def test_retrain_makes_a_version_the_hub_finds(store, image_dir, tmp_path, monkeypatch):
    from zeroseg.engine.train import head_weights, retrain
    from zeroseg.models.lite.build import DEFAULT_HEAD_WEIGHTS

    monkeypatch.setenv(hub.HOME_ENV, str(tmp_path / "home"))
    records = add_images(store, "My Toys", [image_dir])
    with pytest.raises(DatasetError, match="no accepted masks"):
        retrain(store, "My Toys", steps=1, progress=False)
    masks = [(scene(k) == RED).all(-1) for k in range(3)] + [(scene(k) == BLUE).all(-1) for k in range(3)]
    ids = [r.id for r in records] * 2
    store.add_annotations([NewAnnotation(image_id=i, mask=m, label="toy") for i, m in zip(ids, masks)])

    weights = retrain(store, "My Toys", steps=2, seed=0, progress=False)
    assert weights == tmp_path / "home" / "models" / "lite-my-toys-v1.safetensors"
    sidecar = json.loads(weights.with_suffix(".json").read_text())
    assert sidecar["training"]["engine"]["objects"] == 6 and sidecar["training"]["steps"] == 2
    assert sidecar["training"]["data"]["dataset"] == "My Toys"

    model = hub.load_model("lite-my-toys-v1")
    tuned, shipped = load_file(str(weights)), load_file(str(DEFAULT_HEAD_WEIGHTS))
    state = model.state_dict()
    assert all(torch.equal(state[k], tuned[k]) for k in tuned)
    assert any(not torch.equal(tuned[k], shipped[k]) for k in tuned)

    assert head_weights("lite-my-toys-v1") == weights  # a version is a base for the next one
    assert hub.next_version("My Toys") == 2 and hub.trained_path("lite-my-toys-v1") == weights

    later = (  # a later process finds the version in $ZEROSEG_HOME/models, without the engine
        "import sys; from zeroseg import hub; hub.load_model('lite-my-toys-v1'); "
        "assert not [m for m in sys.modules if m.startswith('zeroseg.engine')]"
    )
    env = {**os.environ, hub.HOME_ENV: str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", later], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "zeroseg", "models"], capture_output=True, text=True, env=env, check=False
    )
    assert listed.returncode == 0 and "lite-my-toys-v1" in listed.stdout, listed.stderr


# --- CLI ----------------------------------------------------------------------------------
@pytest.fixture
def cli():
    from zeroseg.cli import _Group

    root = typer.Typer(cls=_Group, rich_markup_mode=None)
    root.add_typer(engine_app, name="engine")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(root, ["engine", *args])
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_cli_add_auto_export_import(cli, image_dir, tmp_path, colour_names):
    db = str(tmp_path / "db")
    small = ["--points-per-side", "8", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--min-area", "20"]
    out = cli("add", str(image_dir / "scene0.png"), str(image_dir / "scene1.png"), "--dataset", "toy", "--db", db)
    assert "2 image(s) given, 2 not yet annotated" in out
    out = cli("auto", "toy", *small, "--names", "red, blue", "--embedder", "colour", "--no-progress", "--db", db)
    assert "annotated 2 image(s)" in out
    assert "annotated 0 image(s)" in cli("auto", "toy", *small, "--no-progress", "--db", db)
    with Store.open(db) as store:
        stored = sum(len(store.annotations_for(i.id)) for i in store.images("toy"))
        labels = {a.label for i in store.images("toy") for a in store.annotations_for(i.id)}
    assert stored > 0 and labels & {"red", "blue"}
    assert "toy: 2 image(s) (0 new, 2 auto_done, 0 in_progress, 0 annotated, 0 reviewed, 0 rejected)" in cli("list", "--db", db)

    coco = tmp_path / "toy.json"
    cli("export", "toy", str(coco), "--db", db)
    assert len(json.loads(coco.read_text())["annotations"]) == stored
    cli("export", "toy", str(tmp_path / "poly.json"), "--format", "coco-polygons", "--db", db)
    cli("export", "toy", str(tmp_path / "yolo"), "--format", "yolo", "--db", db)
    assert len(list((tmp_path / "yolo" / "labels").glob("*.txt"))) == 2
    cli("export", "toy", str(tmp_path / "png"), "--format", "png", "--status", "all", "--db", db)
    assert (tmp_path / "png" / "instances" / "scene0.png").is_file()

    out = cli("import", str(coco), "--dataset", "copy", "--root", str(image_dir), "--db", db)
    assert f"imported {stored} mask(s) into copy (2 image(s))" in out

    error = cli("auto", "missing", "--no-progress", "--db", db, code=NotFoundError.exit_code)
    assert "error: no dataset called 'missing'" in error
    cli("export", "toy", str(tmp_path / "x.json"), "--status", "maybe", "--db", db, code=2)


def test_auto_dtype_reaches_the_hub():
    """engine auto --dtype is the hub's dtype: bfloat16 is for the Hugging Face models, refused for lite."""
    from zeroseg.errors import ConfigError

    with pytest.raises(ConfigError, match="float32 only"):
        load_models(AutoConfig(dtype="bfloat16"))


def test_compile_is_passed_to_the_model_loader(monkeypatch):
    """``AutoConfig(compile=True)`` asks the hub for a compiled model; the packaged lite model says it has none."""
    from zeroseg.errors import ConfigError

    with pytest.raises(ConfigError, match="compile is for the Hugging Face models"):
        load_models(AutoConfig(compile=True))
    asked = {}

    def fake_load(name, device="cpu", dtype=None, compile=False):
        asked.update(name=name, dtype=dtype, compile=compile)
        raise RuntimeError("stop here")

    monkeypatch.setattr(hub, "load_model", fake_load)
    with pytest.raises(RuntimeError, match="stop here"):
        load_models(AutoConfig(model="sam2.1_hiera_tiny", dtype="bfloat16", compile=True))
    assert asked == {"name": "sam2.1_hiera_tiny", "dtype": "bfloat16", "compile": True}
