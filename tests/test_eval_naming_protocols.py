"""The user's and the zero-shot protocols of `eval naming` / `eval text-prompt`, and ImageNet coverage,
on tiny hand-made data (fakes from test_eval_zero_shot: each pixel's colour says which name it reads as)."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from zeroseg.eval.cli import app
from zeroseg.eval.naming import MaskFolderNaming, YoloSegNaming, evaluate_naming, evaluate_text_prompt_hits
from zeroseg.models.lite.imagenet import COVER_COSINE, imagenet_coverage
from zeroseg.segment.record import Segment

from test_eval_zero_shot import FakeNamer, load_fake_embedder, naming_image, write_mask_folder


def test_imagenet_coverage_by_wordnet_and_by_text():
    covered = imagenet_coverage(["cat", "traffic light", "cow", "skis", "tv", "grass"])
    assert "tiger cat" in covered["cat"] and covered["traffic light"] == ["traffic light"]
    assert covered["cow"] == ["ox"] and covered["skis"] == ["ski"]  # kinds and plurals
    assert covered["tv"] == [] and covered["grass"] == []
    names = torch.eye(3)[:2]  # "tv" on the first axis, "grass" on the second
    classes = torch.zeros(1000, 3)
    classes[851] = torch.tensor([1.0, 0.0, 0.0])  # television
    classes[0] = torch.tensor([0.0, COVER_COSINE - 0.01, (1 - (COVER_COSINE - 0.01) ** 2) ** 0.5])
    by_text = imagenet_coverage(["tv", "grass"], names, classes)
    assert by_text == {"tv": ["television"], "grass": []}  # tench is just below the cosine needed


def test_naming_reports_imagenet_groups(tmp_path: Path):
    data = MaskFolderNaming(write_mask_folder(tmp_path / "folder"))  # cow, sheep (read as grass), grass
    results = evaluate_naming(FakeNamer, data, ["cow"], progress=False)
    assert results["imagenet_covered"]["sheep"] == ["ram"] and results["imagenet_covered"]["cow"] == ["ox"]
    assert results["imagenet_covered"]["grass"] == []
    assert results["imagenet_acc"] == 50.0 and results["not_imagenet_acc"] == 100.0  # cow + sheep / grass
    assert results["accuracy"] == pytest.approx(200 / 3)


def test_naming_reports_the_names_the_head_never_trained_on(tmp_path: Path):
    from test_eval_zero_shot import FakeEmbedder

    data = MaskFolderNaming(write_mask_folder(tmp_path / "folder"))  # cow, sheep (read as grass), grass
    embedder = FakeEmbedder()
    assert evaluate_naming(embedder, data, ["cow"], progress=False)["untrained_acc"] is None  # no trained names
    embedder.seen = ("grass",)
    results = evaluate_naming(embedder, data, ["cow"], progress=False)
    assert results["untrained_acc"] == 50.0  # cow right, sheep wrong; grass was trained


def write_yolo_images(root: Path, n: int = 5) -> Path:
    """A YOLO-seg folder of n images, each with one 'cow' square; image k's square is k pixels wide + 4."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.tsv").write_text("class_idx\tname\n0\tcow\n1\tsheep\n")
    for k in range(n):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "images" / f"{k}.png")
        side = (k + 4) / 20
        (root / "labels" / f"{k}.txt").write_text(f"0 0 0 {side} 0 {side} {side} 0 {side}\n")
    return root


def test_yolo_naming_splits(tmp_path: Path):
    root = write_yolo_images(tmp_path / "yolo")
    assert len(YoloSegNaming(root)) == 5
    assert [s.name for s in (YoloSegNaming(root, split="val")[i] for i in range(2))] == ["0", "4"]
    assert len(YoloSegNaming(root, split="train")) == 3


def fake_text_to_masks(answers: dict[str, list[np.ndarray]]):
    def text_to_masks(image, phrase, predictor, namer):
        return [Segment(m) for m in answers.get(phrase, [])]
    return text_to_masks


def test_text_prompt_hits_and_false_positives(tmp_path: Path):
    data = MaskFolderNaming(write_mask_folder(tmp_path / "folder"))  # cow, sheep, grass + an empty cow mask
    _, objects = naming_image()
    cow, sheep = objects[0][1], objects[1][1]
    half_sheep = sheep.copy()
    half_sheep[13:] = False  # IoU 0.5 with the sheep
    quarter = sheep.copy()
    quarter[12:] = False  # IoU 1/3
    answers = {"cow": [np.zeros_like(cow), cow], "sheep": [quarter, half_sheep], "grass": []}
    results = evaluate_text_prompt_hits(None, FakeNamer, data, ["cow"], progress=False,
                                        text_to_masks=fake_text_to_masks(answers), vocabulary="all")
    assert results["n_instances"] == 3 and results["n_prompts"] == 3 and results["n_absent_prompts"] == 0
    assert results["hit_rate"] == pytest.approx(200 / 3)  # cow (second mask), sheep (second mask)
    assert results["first_hit_rate"] == 0.0 and results["empty_rate"] == pytest.approx(100 / 3)
    assert results["unseen_hit_rate"] == 100.0 and results["seen_hit_rate"] == 50.0
    assert results["fp_rate"] is None
    typed = {f"a {name}": found for name, found in answers.items()}  # prompted as a user types them
    same = evaluate_text_prompt_hits(None, FakeNamer, data, ["cow"], progress=False, phrase="a {}",
                                     text_to_masks=fake_text_to_masks(typed), vocabulary="all")
    assert same["hit_rate"] == results["hit_rate"] and same["phrase"] == "a {}"
    with pytest.raises(Exception, match="template"):
        evaluate_text_prompt_hits(None, FakeNamer, data, progress=False, phrase="a cow")


def test_text_prompts_for_absent_classes(tmp_path: Path):
    folder = write_mask_folder(tmp_path / "folder")
    (folder / "classes.tsv").write_text("id\tname\n0\tcow\n1\tsheep\n2\tgrass\n3\tzebra\n4\tperson\n")
    data = MaskFolderNaming(folder)
    answers = {"zebra": [np.ones((20, 20), bool)]}
    results = evaluate_text_prompt_hits(None, FakeNamer, data, progress=False,
                                        text_to_masks=fake_text_to_masks(answers), vocabulary="all")
    assert results["n_absent_prompts"] == 2 and results["fp_rate"] == 50.0  # zebra returns a mask, person not
    assert results["per_class"]["zebra"]["false_positives"] == 1
    one = evaluate_text_prompt_hits(None, FakeNamer, data, progress=False, absent_per_image=1,
                                    text_to_masks=fake_text_to_masks(answers), vocabulary="all")
    assert one["n_absent_prompts"] == 1
    with pytest.raises(Exception, match="vocabulary"):
        evaluate_text_prompt_hits(None, FakeNamer, data, progress=False, vocabulary="some")


@pytest.fixture
def fake_embedder(scratch_hub) -> str:
    scratch_hub("fake", load_fake_embedder)
    return "fake"


def test_cli_naming_protocols(tmp_path: Path, fake_embedder: str):
    folder = write_mask_folder(tmp_path / "objects")
    out = tmp_path / "naming.json"
    base = ["naming", "--dataset", str(folder), "--model", fake_embedder, "--unseen", "cow,sheep", "--json", str(out)]
    result = CliRunner().invoke(app, [*base, "--protocol", "user"])
    assert result.exit_code == 0, result.output
    user = json.loads(out.read_text())
    assert user["protocol"] == "user" and user["calibrated"] is False and "accuracy" in user
    assert "ImageNet-1k" in result.output and "sheep" in result.output
    result = CliRunner().invoke(app, [*base, "--protocol", "zero-shot", "--calibration", "0.3"])
    assert result.exit_code == 0, result.output
    strict = json.loads(out.read_text())
    assert strict["protocol"] == "zero-shot" and strict["calibrated"] is True and strict["unseen_acc"] == 100.0
    assert strict["classifier"] is False
    result = CliRunner().invoke(app, [*base, "--protocol", "nope"])
    assert result.exit_code != 0 and "protocol" in result.output


def test_cli_naming_user_protocol_needs_no_split(tmp_path: Path, fake_embedder: str):
    folder = write_mask_folder(tmp_path / "objects")  # a folder with no zero-shot split
    result = CliRunner().invoke(app, ["naming", "--dataset", str(folder), "--model", fake_embedder])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["naming", "--dataset", str(folder), "--model", fake_embedder,
                                      "--protocol", "zero-shot"])
    assert result.exit_code != 0 and "no zero-shot split" in result.output


def test_cli_text_prompt_user_protocol(tmp_path: Path, fake_embedder: str, monkeypatch):
    folder = write_mask_folder(tmp_path / "objects")
    _, objects = naming_image()
    module = types.ModuleType("zeroseg.segment.text_prompt")
    module.text_to_masks = fake_text_to_masks({"cow": [objects[0][1]]})  # type: ignore[attr-defined]
    module.DEFAULT_VERIFY = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zeroseg.segment.text_prompt", module)
    out = tmp_path / "text.json"
    result = CliRunner().invoke(app, ["text-prompt", "--dataset", str(folder), "--model", fake_embedder,
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["protocol"] == "user" and saved["hit_rate"] == pytest.approx(100 / 3)
    assert saved["n_instances"] == 3 and saved["vocabulary"] == "all" and saved["verify"] is True
