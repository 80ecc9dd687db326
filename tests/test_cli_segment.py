"""`zeroseg segment` output as a whole: re-runs and write errors, text prompts that match nothing or
something, and unreadable checkpoints, each reported as one line with its own exit code."""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from zeroseg import cli
from zeroseg.errors import CheckpointReadError, NothingFoundError, OutputError
from zeroseg.models.lite.build import DEFAULT_HEAD_WEIGHTS

POINT = ["--point", "173.46,154.55"]


def run(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_sam(goldens_dir: Path) -> list[str]:
    sam = goldens_dir / "sam"
    return ["--config", sam / "sam_tiny_config.json", "--checkpoint", sam / "sam_tiny.pth"]


@pytest.fixture(scope="module")
def image(goldens_dir: Path) -> Path:
    return goldens_dir / "images" / "img_a.png"


# --- re-runs and write errors -------------------------------------------------------------
def test_rerun_replaces_the_earlier_result_whole(tmp_path, tiny_sam, image):
    out = tmp_path / "out"
    assert run("segment", image, *POINT, *tiny_sam, "-o", out).exit_code == 0
    assert {"mask_0.png", "mask_1.png", "mask_2.png"} <= set(snapshot(out))
    (out / "notes.txt").write_text("mine")  # not a result file: kept

    result = run("segment", image, *POINT, "--single", *tiny_sam, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(snapshot(out)) == ["mask_0.png", "notes.txt", "overlay.png", "result.json"]
    assert [m["file"] for m in json.loads((out / "result.json").read_text())["masks"]] == ["mask_0.png"]


def test_disk_full_midway_keeps_the_earlier_result(tmp_path, tiny_sam, image, monkeypatch):
    out = tmp_path / "out"
    assert run("segment", image, *POINT, "--single", *tiny_sam, "-o", out).exit_code == 0
    before = snapshot(out)

    real, calls = cli.save_mask_png, []

    def full_disk(path, mask):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, mask)

    monkeypatch.setattr(cli, "save_mask_png", full_disk)
    result = run("segment", image, *POINT, *tiny_sam, "-o", out)  # three masks this time
    assert result.exit_code == OutputError.exit_code == 40
    assert result.stderr.strip() == (
        f"error: cannot write {out / 'mask_1.png'}: no space left on device (nothing was written)"
    )
    assert snapshot(out) == before  # no new mask, no partial file, the old result as it was

    fresh = tmp_path / "fresh"
    calls.clear()
    assert run("segment", image, *POINT, *tiny_sam, "-o", fresh).exit_code == 40
    assert list(fresh.iterdir()) == []


# --- text prompts -------------------------------------------------------------------------
@pytest.fixture
def picture(tmp_path, scratch_hub):
    """Red top half, green bottom-left, blue bottom-right; the colour-coded fake embedder registered."""
    from test_cli_naming import load_colour_embedder

    scratch_hub("colour", load_colour_embedder)
    pixels = np.zeros((96, 128, 3), np.uint8)
    pixels[:48] = (230, 10, 10)
    pixels[48:, :64] = (10, 230, 10)
    pixels[48:, 64:] = (10, 10, 230)
    path = tmp_path / "picture.png"
    Image.fromarray(pixels).save(path)
    return path


def test_text_that_matches_nothing_is_an_error(picture, tmp_path):
    out = tmp_path / "out"
    result = run("segment", picture, "--text", "yellow", "--names", "red, green, blue", "--embedder", "colour",
                 "-o", out)
    assert result.exit_code == NothingFoundError.exit_code == 24
    assert result.stdout == ""
    assert result.stderr == f"error: no region of {picture} matches 'yellow'; nothing was written\n"
    assert list(out.iterdir()) == []


def test_unmatched_phrases_are_reported_and_matches_say_how_well(picture, tmp_path, monkeypatch):
    import zeroseg.viz

    drawn = {}
    real = zeroseg.viz.overlay

    def spy(image, masks, labels=None, **kwargs):
        drawn["labels"] = labels
        return real(image, masks, labels=labels, **kwargs)

    monkeypatch.setattr(zeroseg.viz, "overlay", spy)
    out = tmp_path / "out"
    result = run("segment", picture, "--text", "blue", "--text", "yellow", "--names", "red, green",
                 "--embedder", "colour", "--single", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stderr == "warning: no region matches 'yellow'\n"
    data = json.loads((out / "result.json").read_text())
    assert data["prompts"]["text"] == ["blue", "yellow"] and data["prompts"]["unmatched"] == ["yellow"]
    [mask] = data["masks"]
    assert mask["label"] == "blue" and 0.9 < mask["label_score"] <= 1.0  # the blue square wins clearly
    assert mask["prompt"] == 0 and mask["prompt_used"]["text"] == "blue" and mask["score"] == mask["predicted_iou"]
    [[x, y, label]] = mask["prompt_used"]["points"]  # the region's peak; a box too unless a peak alone won
    assert 64 <= x < 128 and 48 <= y < 96 and label == 1  # inside the blue square
    x0, y0, x1, y1 = mask["prompt_used"].get("box", (64, 48, 128, 96))
    pad = 8  # the region's box is widened by one grid cell of the embedder (at most 8 pixels here)
    assert 64 - pad <= x0 <= 64 and 128 <= x1 <= 128 + pad and 48 - pad <= y0 <= 48 and 96 <= y1 <= 96 + pad
    assert drawn["labels"] == [f"#0 score {mask['score']:.2f} blue (match {mask['label_score']:.2f})"]
    assert f"blue (match {mask['label_score']:.2f})" in result.stdout


# --- unreadable checkpoints ---------------------------------------------------------------
def _broken(kind: str, folder: Path, name: str) -> Path:
    path = folder / name
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif kind == "truncated zip":
        torch.save({"w": torch.zeros(256)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickled object":
        torch.save({"w": Path("x")}, path)
    return path


KINDS = ["random", "text", "truncated zip", "empty", "pickled object"]
REASONS = {
    "random": "truncated, damaged or not a PyTorch checkpoint",
    "text": "a text file, not a PyTorch checkpoint",
    "truncated zip": "truncated or damaged (its zip archive is incomplete)",
    "empty": "the file is empty",
    "pickled object": "it holds pickled Python objects (pathlib.",
}


def _one_line_error(result, fragment: str, path: Path) -> None:
    assert result.exit_code == CheckpointReadError.exit_code == 36, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read ") and fragment in lines[0], lines
    assert "weights_only" not in lines[0] and "Traceback" not in result.output
    assert len(lines[0]) - len(str(path)) < 150  # PyTorch's own message runs to over a thousand characters


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_sam_checkpoint_is_one_line(kind, tmp_path, goldens_dir, image):
    checkpoint = _broken(kind, tmp_path, "sam.pth")
    result = run("segment", image, *POINT, "--config", goldens_dir / "sam" / "sam_tiny_config.json",
                 "--checkpoint", checkpoint, "-o", tmp_path / "out")
    _one_line_error(result, f"checkpoint file {checkpoint}: {REASONS[kind]}", checkpoint)


@pytest.mark.parametrize("kind", ["random", "text", "empty"])
def test_corrupt_lite_head_is_one_line(kind, tmp_path):
    checkpoint = _broken(kind, tmp_path, "head.safetensors")
    shutil.copy(DEFAULT_HEAD_WEIGHTS.with_suffix(".json"), tmp_path / "head.json")  # a valid sidecar
    picture = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (90, 120, 150)).save(picture)
    result = run("segment", picture, "-p", "10,10", "--checkpoint", checkpoint, "-o", tmp_path / "out")
    fragment = "the file is empty" if kind == "empty" else "not a safetensors file, or truncated"
    _one_line_error(result, f"lite head weights {checkpoint}: {fragment}", checkpoint)
