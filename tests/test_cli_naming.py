"""The naming faces of the CLI: label-pixels, everything --names, segment --text, on a colour-coded fake embedder.

The fake embedder's pixel embedding is the pixel's unit RGB colour and its text encoder maps colour names to
the same space, so the right answer of every command is known from the picture alone.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from zeroseg.cli import app
from zeroseg.io import rle_to_mask
from zeroseg.models.vl.base import DenseEmbedding

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


class ColourText:
    """Each known colour is its RGB direction; any other name is a fourth axis that no pixel has."""

    name, dim = "colour", 4

    def encode(self, names):
        return torch.tensor([(*COLOURS[n], 0.0) if n in COLOURS else (0.0, 0.0, 0.0, 1.0) for n in names])


class ColourEmbedder:
    name, text_encoder, temperature = "colour", ColourText(), 0.05

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        grid = torch.from_numpy(np.asarray(image, dtype=np.float32)[::4, ::4]).permute(2, 0, 1) + 1.0
        grid = torch.cat([grid, torch.zeros_like(grid[:1])])
        return DenseEmbedding(F.normalize(grid, dim=0), image_size=tuple(image.shape[:2]))

    def background(self):
        return None


def load_colour_embedder(checkpoint=None) -> ColourEmbedder:
    return ColourEmbedder()


@pytest.fixture
def picture(tmp_path, scratch_hub):
    """A 96x128 image: red top half, green bottom-left, blue bottom-right square; fake embedder registered."""
    scratch_hub("colour", load_colour_embedder)
    image = np.zeros((96, 128, 3), np.uint8)
    image[:48] = (230, 10, 10)
    image[48:, :64] = (10, 230, 10)
    image[48:, 64:] = (10, 10, 230)
    path = tmp_path / "picture.png"
    Image.fromarray(image).save(path)
    return path


def run(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_label_pixels_writes_labels_legend_and_counts(picture, tmp_path):
    out = tmp_path / "out"
    run("label-pixels", picture, "--names", "red, green, blue", "--embedder", "colour", "--no-segments", "--out", out)
    labels = np.asarray(Image.open(out / "labels.png"))
    assert labels.shape == (96, 128)
    assert (labels[:40] == 1).mean() > 0.95 and (labels[56:, :56] == 2).mean() > 0.95
    assert (labels[56:, 72:] == 3).mean() > 0.95
    result = json.loads((out / "result.json").read_text())
    assert result["labels_png"]["1"] == "red" and result["pixels"]["red"] > result["pixels"]["green"]
    assert Image.open(out / "overlay.png").width > 128  # the legend panel


class SeenRedEmbedder(ColourEmbedder):
    """Trained on 'red' with a large pixel gamma: calibrated stacking moves red pixels to another name."""

    seen, calibration = ("red",), 2.0


def test_label_pixels_calibrates_pixels_unless_told(tmp_path, scratch_hub, picture):
    scratch_hub("seen-red", lambda checkpoint=None: SeenRedEmbedder())
    red_share = {}
    for flag in ("--calibrate", "--no-calibrate"):
        out = tmp_path / flag
        run("label-pixels", picture, "--names", "red, green, blue", "--embedder", "seen-red", flag, "--no-segments",
            "--out", out)
        red_share[flag] = (np.asarray(Image.open(out / "labels.png"))[:40] == 1).mean()
    default = tmp_path / "default"
    run("label-pixels", picture, "--names", "red, green, blue", "--embedder", "seen-red", "--no-segments", "--out", default)
    assert red_share["--no-calibrate"] > 0.95 and red_share["--calibrate"] < 0.05
    assert (np.asarray(Image.open(default / "labels.png"))[:40] == 1).mean() < 0.05  # calibrated by default


def test_label_pixels_names_pixels_with_the_photos_segments_by_default(picture, tmp_path, monkeypatch):
    from zeroseg.segment import pipeline

    seen = []
    top = np.zeros((1, 96, 128), bool)
    top[0, :48] = True
    monkeypatch.setattr(pipeline, "proposals", lambda image, predictor, progress=False: seen.append(predictor.model.name) or ([], top))
    run("label-pixels", picture, "--names", "red, green, blue", "--embedder", "colour", "--out", tmp_path / "a")
    run("label-pixels", picture, "--names", "red, green, blue", "--embedder", "colour", "--no-segments", "--out", tmp_path / "b")
    assert seen == ["lite"]  # the default model's segments, once; none with --no-segments
    a, b = (np.asarray(Image.open(tmp_path / f / "labels.png")) for f in "ab")
    assert (a[:40] == 1).all() and (a == b).mean() > 0.95


def test_everything_names_every_mask(picture, tmp_path):
    out = tmp_path / "out"
    run("everything", picture, "--names", "red, green, blue", "--embedder", "colour", "--points-per-side", "16",
        "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--out", out)
    coco = json.loads((out / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert set(names.values()) == {"object", "red", "green", "blue"}
    assert coco["annotations"]
    truth = np.zeros((96, 128), int)
    truth[48:, :64], truth[48:, 64:] = 1, 2
    checked = 0
    for ann in coco["annotations"]:
        mask = rle_to_mask(ann["segmentation"])
        share = np.bincount(truth[mask], minlength=3) / mask.sum()
        if share.max() > 0.9:  # a mask mostly inside one colour must be named after it
            assert names[ann["category_id"]] == ["red", "green", "blue"][share.argmax()]
            assert 0 < ann["label_score"] <= 1
            checked += 1
    assert checked


def test_segment_text_prompt_finds_the_region(picture, tmp_path):
    out = tmp_path / "out"
    run("segment", picture, "--text", "blue", "--names", "red, green", "--embedder", "colour", "--single", "--out", out)
    result = json.loads((out / "result.json").read_text())
    assert result["prompts"]["text"] == ["blue"]
    [mask] = result["masks"]
    assert mask["label"] == "blue"
    x, y, w, h = mask["bbox"]
    assert x + w / 2 > 64 and y + h / 2 > 48


def test_names_option_must_not_be_empty(picture, tmp_path):
    result = CliRunner().invoke(app, ["label-pixels", str(picture), "--names", " , ", "--embedder", "colour",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "--names needs at least one name" in result.output


def test_segment_needs_a_prompt(picture, tmp_path):
    result = CliRunner().invoke(app, ["segment", str(picture), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "--text" in result.output
