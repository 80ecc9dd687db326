"""One record, one pipeline, per-model presets: the faces (CLI, demo, engine) agree on the same image."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from zeroseg import hub
from zeroseg.cli import app
from zeroseg.engine import coco
from zeroseg.engine.stages import AutoConfig, annotate_image, load_models
from zeroseg.errors import PromptValueError
from zeroseg.preset import SAM, Preset
from zeroseg.segment.pipeline import Everything
from zeroseg.segment.record import Segment

runner = CliRunner()
SMALL = {"points_per_side": 6, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "min_area": 20}


def scene() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((90, 120, 3), 110, np.uint8) + rng.integers(0, 12, (90, 120, 3), dtype=np.uint8)
    image[10:50, 12:52] = (210, 40, 30)
    yy, xx = np.mgrid[:90, :120]
    image[(yy - 55) ** 2 + (xx - 85) ** 2 < 18**2] = (40, 160, 60)
    return image


# --- Segment -----------------------------------------------------------------------------------
def test_segment_converts_its_mask_lazily_both_ways_and_round_trips():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 7:19] = True
    from_mask = Segment(mask, predicted_iou=0.9, prompt={"points": [[10.0, 7.0, 1.0]]}, label="cat")
    assert from_mask.area == 60 and from_mask.bbox == [7.0, 5.0, 12.0, 5.0]
    from_rle = Segment(from_mask.rle)
    assert from_rle._mask is None  # decoded only when asked
    assert (from_rle.mask == mask).all() and from_rle.area == 60 and from_rle.size == (20, 30)
    again = Segment.from_dict(json.loads(json.dumps(from_mask.to_dict())))
    assert again.to_dict() == from_mask.to_dict()
    sam = from_mask.to_sam_dict()
    assert set(sam) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}
    assert sam["point_coords"] == [[10.0, 7.0]] and (sam["segmentation"] == mask).all()
    assert Segment.from_sam_dict(sam, model_name="m").prompt == {"points": [[10.0, 7.0, 1.0]]}
    with pytest.raises(ValueError, match="H x W"):
        Segment(np.zeros((2, 3, 4), bool))


def test_coco_writer_and_reader_keep_scores():
    mask = np.zeros((20, 30), bool)
    mask[2:9, 3:8] = True
    seg = Segment(mask, predicted_iou=0.8, stability_score=0.7, label="cup", label_score=0.6, model_name="lite")
    doc = coco.document([({"id": 1, "file_name": "a.png", "width": 30, "height": 20}, [seg, Segment(mask)])])
    names = {c["id"]: c["name"] for c in doc["categories"]}
    first, second = doc["annotations"]
    assert first["score"] == 0.8 and first["stability_score"] == 0.7 and first["label_score"] == 0.6
    assert names[first["category_id"]] == "cup" and names[second["category_id"]] == coco.UNLABELLED
    back = coco.segment_of(first, names[first["category_id"]], first["segmentation"])
    assert (back.predicted_iou, back.label, back.label_score, back.model_name) == (0.8, "cup", 0.6, "lite")
    assert (back.mask == mask).all()


# --- presets --------------------------------------------------------------------------------
def test_preset_overrides_and_checks():
    assert SAM.pred_iou_thresh == 0.88 and SAM.stability_score_thresh == 0.95 and SAM.points_per_side == 32
    changed = SAM.override(pred_iou_thresh=0.5, points_per_side=None)
    assert changed.pred_iou_thresh == 0.5 and changed.points_per_side == 32
    with pytest.raises(PromptValueError, match="unknown preset"):
        SAM.override(nope=1)
    with pytest.raises(PromptValueError, match="pred_iou_thresh"):
        Preset(pred_iou_thresh=1.5)
    with pytest.raises(PromptValueError, match="crop_n_layers"):
        Preset(crop_n_layers=-1)
    options = SAM.override(crop_n_layers=1, crop_points_downscale=2).generator_options()
    assert options["crop_n_layers"] == 1 and options["crop_n_points_downscale_factor"] == 2


def test_load_model_stamps_name_version_and_preset():
    model = hub.load_model("default")
    assert model.name == "lite" and model.version and model.preset == hub.get("lite").preset
    assert model.preset != SAM  # the lite model's scores need looser filters than SAM's
    assert model.refine_edges == model.preset.refine_edges and model.graph_cut == model.preset.graph_cut
    assert hub.preset_of(object()) == SAM


def test_models_show_prints_the_preset():
    result = runner.invoke(app, ["models", "show", "lite"])
    assert result.exit_code == 0, result.output
    preset = hub.get("lite").preset
    assert f"pred_iou_thresh: {preset.pred_iou_thresh}" in result.output
    assert f"points_per_side: {preset.points_per_side}" in result.output
    assert runner.invoke(app, ["models", "show", "nope"]).exit_code != 0


# --- one pipeline -----------------------------------------------------------------------------
def _key(seg: Segment) -> tuple:
    return (seg.rle["counts"], seg.bbox, seg.area, seg.predicted_iou, seg.stability_score, seg.label, seg.label_score)


def test_cli_engine_and_demo_give_identical_records(tmp_path):
    from zeroseg import demo

    image = scene()
    Image.fromarray(image).save(tmp_path / "scene.png")
    names = "red square, green disc"

    result = runner.invoke(
        app,
        ["everything", str(tmp_path / "scene.png"), "--out", str(tmp_path / "cli"), "--names", names,
         "--points-per-side", "6", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--min-area", "20"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "cli" / "annotations.json").read_text())
    categories = {c["id"]: c["name"] for c in doc["categories"]}
    cli = [coco.segment_of(a, categories[a["category_id"]], a["segmentation"]) for a in doc["annotations"]]
    assert cli and doc["info"]["model"]["name"] == "lite"

    config = AutoConfig(names=names, **SMALL)
    engine = annotate_image(image, config, load_models(config))
    engine = [Segment(a.mask, bbox=a.bbox, area=a.area, predicted_iou=a.predicted_iou,
                      stability_score=a.stability_score, label=a.label, label_score=a.label_score) for a in engine]

    demo.run(tmp_path / "demo", photos={"scene": image}, **SMALL)
    demo_segments = [Segment.from_dict(d) for d in json.loads((tmp_path / "demo" / "scene.json").read_text())["everything"]]

    assert [_key(s) for s in cli] == [_key(s) for s in engine]
    # the demo names from its own vocabulary, so compare the masks and scores it shares
    assert [_key(s)[:5] for s in demo_segments] == [_key(s)[:5] for s in cli]
    assert {s.label for s in cli} <= {"red square", "green disc", None}


def test_everything_defaults_find_masks_on_a_photo(tmp_path):
    """The default model with no flags gives ten masks or more on a real photo (its preset, not SAM's
    filters), even on the demo's hardest one: a close-up of one cat, whose pieces the model draws softly."""
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    result = runner.invoke(app, ["everything", str(tmp_path / "cat.png"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    annotations = json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
    assert len(annotations) >= 10
    assert all(a["score"] > hub.get("lite").preset.pred_iou_thresh for a in annotations)


def test_pipeline_stamps_provenance_and_sorts():
    model = hub.load_model("lite")
    segments = Everything(model, model.preset.override(**SMALL))(scene())
    assert segments and all(s.model_name == "lite" and s.model_version == model.version for s in segments)
    assert all(s.source == "auto" for s in segments)
    ious = [s.predicted_iou for s in segments]
    assert ious == sorted(ious, reverse=True)
