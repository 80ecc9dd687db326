"""Zero-shot evaluation: IoU metrics, zsl/gzsl, calibrated stacking, naming readers and the CLI, on hand-made data.

A fake embedder encodes its answer in the image: at each pixel, red is the index of the name its features point
to, green a second name and blue (percent) the weight of that second name; the fake text encoder gives each name
a one-hot vector. So cosine scores are known exactly, e.g. (red=cow, green=grass, blue=75) scores cow 0.8,
grass 0.6.
"""
from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from zeroseg.errors import DatasetError
from zeroseg.eval.cli import app
from zeroseg.eval.naming import (
    CocoJsonNaming,
    MaskFolderNaming,
    SemanticRegionNaming,
    YoloSegNaming,
    evaluate_naming,
    evaluate_text_prompts,
    load_naming_dataset,
    union_of_masks,
)
from zeroseg.eval.zero_shot import (
    class_ious,
    confusion_matrix,
    evaluate_semantic,
    harmonic_mean,
    open_semantic_dataset,
    rasterize_instances,
    summarize,
    zero_shot_split,
)
from zeroseg.models.vl.base import DenseEmbedder, DenseEmbedding
from zeroseg.train.datasets import VOID, Instance, SemanticDataset
from zeroseg.segment.naming import DEFAULT_MASK_CALIBRATION

MSRC_CLASSES = (
    "building grass tree cow horse sheep sky mountain aeroplane water face car bicycle flower sign bird book "
    "chair road cat dog body boat"
).split()
NAMES = [*MSRC_CLASSES, "person", "zebra"]  # every name the fake text encoder knows
GRASS, COW, HORSE, SHEEP, SKY = (MSRC_CLASSES.index(n) for n in ("grass", "cow", "horse", "sheep", "sky"))
SETTING_KEYS = {"miou", "seen_miou", "unseen_miou", "hmean", "per_class_iou"}


# --- fakes --------------------------------------------------------------------------------
class FakeTextEncoder:
    name = "fake"
    dim = len(NAMES)

    def encode(self, names: Sequence[str]) -> torch.Tensor:
        return F.one_hot(torch.tensor([NAMES.index(n) for n in names], dtype=torch.long), self.dim).float()


class FakeEmbedder:
    """Features = one-hot(red) + blue/100 * one-hot(green), normalised (see the module docstring)."""

    name = "fake"

    def __init__(self, calibration: float | None = None) -> None:
        self.text_encoder = FakeTextEncoder()
        if calibration is not None:
            self.calibration = calibration

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        image = torch.from_numpy(np.array(image)).long()
        first, second = (F.one_hot(image[..., c], len(NAMES)).float() for c in (0, 1))
        features = first + image[..., 2:3].float() / 100 * second
        return DenseEmbedding(F.normalize(features, dim=-1).permute(2, 0, 1), tuple(image.shape[:2]))

    def background(self) -> torch.Tensor | None:
        return None


def load_fake_embedder(checkpoint: str | None = None) -> FakeEmbedder:
    """Registered with the hub by the CLI tests."""
    return FakeEmbedder()


class FakeNamer:
    """Cosine scores minus `calibration` on seen names: a namer whose answers the tests compute by hand."""

    def __init__(self, vocabulary: Sequence[str], seen: Sequence[str] = (), calibration: float = 0.0) -> None:
        self.embedder = FakeEmbedder()
        self.vocabulary = list(vocabulary)
        self.text = self.embedder.text_encoder.encode(self.vocabulary)
        self.bias = torch.tensor([calibration if n in seen else 0.0 for n in self.vocabulary])

    def pixel_logits(self, image: np.ndarray) -> torch.Tensor:
        features = self.embedder.embed(image).features
        return torch.einsum("kd,dhw->khw", self.text, features) - self.bias[:, None, None]

    def name_masks(self, image: np.ndarray, masks: np.ndarray) -> list[tuple[str | None, float]]:
        logits = self.pixel_logits(image)
        results = []
        for mask in masks:
            scores = logits[:, torch.as_tensor(mask)].mean(1)
            results.append((self.vocabulary[int(scores.argmax())], float(scores.max())))
        return results


def pixels(first: int, second: int = 0, weight: int = 0) -> list[int]:
    return [first, second, weight]


# --- hand-made data -----------------------------------------------------------------------
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 4x10 image and its MSRC class map.

    columns 0-2 cow   (features cow 0.8, grass 0.6)   -> gzsl cow,   zsl cow
    columns 3-4 sheep (features grass 0.8, sheep 0.6) -> gzsl grass, zsl sheep; calibration 0.3 -> sheep
    columns 5-7 grass (features grass)                -> grass
    column  8   void  (features sky)                  -> ignored: sky is absent from GT and counted predictions
    column  9   horse (features sheep)                -> dropped class: ignored
    """
    label = np.array([COW] * 3 + [SHEEP] * 2 + [GRASS] * 3 + [VOID, HORSE])
    colour = [pixels(COW, GRASS, 75)] * 3 + [pixels(GRASS, SHEEP, 75)] * 2 + [pixels(GRASS)] * 3
    colour += [pixels(SKY), pixels(SHEEP)]
    image = np.tile(np.array(colour, dtype=np.uint8)[None], (4, 1, 1))
    return image, np.tile(label[None], (4, 1))


def write_msrc_folder(root: Path, n_images: int = 1) -> Path:
    """An msrc21-like folder (real class table, tiny images of :func:`scene`) with a val split."""
    for kind in ("images", "labels"):
        (root / "val" / kind).mkdir(parents=True)
    rows = [f"{i}\t{name}" for i, name in enumerate(MSRC_CLASSES)]
    (root / "classes.tsv").write_text("label_id\tname\n" + "\n".join(rows) + "\n255\tvoid\n")
    image, label = scene()
    for k in range(n_images):
        Image.fromarray(image).save(root / "val" / "images" / f"{k}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "val" / "labels" / f"{k}.png")
    return root


@pytest.fixture
def msrc(tmp_path: Path) -> SemanticDataset:
    return SemanticDataset(write_msrc_folder(tmp_path / "msrc21"), "val")


def square(shape: tuple[int, int], y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def naming_image() -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """A 20x20 image with three named squares: the cow and grass ones read right, the sheep one reads grass."""
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[...] = pixels(NAMES.index("zebra"))
    objects = [("cow", square((20, 20), 0, 0, 5)), ("sheep", square((20, 20), 10, 10, 6)),
               ("grass", square((20, 20), 0, 12, 4))]
    image[objects[0][1]] = pixels(COW)
    image[objects[1][1]] = pixels(GRASS, SHEEP, 75)
    image[objects[2][1]] = pixels(GRASS)
    return image, objects


# --- metrics ------------------------------------------------------------------------------
def test_confusion_matrix_ignores_void_and_unknown_ids() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 255, -1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])
    cm = confusion_matrix(gt, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    assert cm.sum() == 6  # the void (255) and -1 pixels are not counted
    with pytest.raises(ValueError):
        confusion_matrix(gt, pred[:, :2], 3)


def test_iou_metrics_on_known_maps() -> None:
    # per row: class 0 predicted on its 2 px and on the 2 of class 1 -> 2/4; class 1 never predicted -> 0;
    # class 2 exact -> 1; class 3 predicted on void pixels only: absent from GT and prediction -> excluded.
    gt = np.array([[0, 0, 1, 1, 2, 2, VOID, VOID]] * 4)
    pred = np.array([[0, 0, 0, 0, 2, 2, 3, 3]] * 4)
    cm = confusion_matrix(gt, pred, 4)
    ious = class_ious(cm)
    np.testing.assert_allclose(ious[:3], [0.5, 0.0, 1.0])
    assert np.isnan(ious[3])  # predicted only on void pixels: absent
    result = summarize(cm, ["a", "b", "c", "d"], unseen=["b", "c"])
    assert result["miou"] == pytest.approx(50.0)
    assert result["seen_miou"] == pytest.approx(50.0)  # "d" does not count
    assert result["unseen_miou"] == pytest.approx(50.0)
    assert result["hmean"] == pytest.approx(50.0)
    assert result["per_class_iou"] == {"a": 50.0, "b": 0.0, "c": 100.0, "d": None}


def test_harmonic_mean_and_undefined_groups() -> None:
    assert harmonic_mean(60.0, 50.0) == pytest.approx(6000 / 110)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(80.0, 0.0) == 0.0
    only_unseen = summarize(np.eye(2, dtype=np.int64), ["x", "y"], unseen=["x", "y"])
    assert only_unseen["seen_miou"] is None and only_unseen["hmean"] is None and only_unseen["miou"] == 100.0


# --- zsl / gzsl ---------------------------------------------------------------------------
def test_zsl_and_gzsl_known_answers(msrc: SemanticDataset) -> None:
    results = evaluate_semantic(FakeNamer, msrc, ["cow", "sheep"], dropped=["horse", "mountain"], progress=False)
    assert set(results) == {"zsl", "gzsl"}
    zsl, gzsl = results["zsl"], results["gzsl"]
    assert SETTING_KEYS <= set(zsl) and SETTING_KEYS <= set(gzsl)
    # zsl: only cow and sheep are names and only their pixels count: both right.
    assert zsl["per_class_iou"] == {"cow": 100.0, "sheep": 100.0}
    assert zsl["miou"] == zsl["unseen_miou"] == 100.0 and zsl["seen_miou"] is None and zsl["hmean"] is None
    # gzsl: sheep pixels are called grass -> cow 100, sheep 0, grass 12/20; sky only on void: excluded.
    assert gzsl["per_class_iou"]["cow"] == 100.0
    assert gzsl["per_class_iou"]["sheep"] == 0.0
    assert gzsl["per_class_iou"]["grass"] == pytest.approx(60.0)
    assert gzsl["per_class_iou"]["sky"] is None
    assert "horse" not in gzsl["per_class_iou"] and "mountain" not in gzsl["per_class_iou"]
    assert gzsl["seen_miou"] == pytest.approx(60.0)
    assert gzsl["unseen_miou"] == pytest.approx(50.0)
    assert gzsl["miou"] == pytest.approx(160 / 3)
    assert gzsl["hmean"] == pytest.approx(6000 / 110)
    assert gzsl["calibration"] == 0.0
    with pytest.raises(DatasetError, match="horse"):  # a dropped class cannot be unseen
        evaluate_semantic(FakeNamer, msrc, ["cow", "horse"], dropped=["horse"], progress=False)


def test_calibrated_stacking_recovers_unseen_pixels(msrc: SemanticDataset) -> None:
    calibrated = evaluate_semantic(FakeNamer, msrc, ["cow", "sheep"], 0.3, ["horse", "mountain"], progress=False)
    gzsl = calibrated["gzsl"]
    assert gzsl["calibration"] == 0.3
    assert gzsl["per_class_iou"]["sheep"] == 100.0 and gzsl["per_class_iou"]["grass"] == 100.0
    assert gzsl["hmean"] == pytest.approx(100.0)
    assert calibrated["zsl"]["miou"] == 100.0  # calibration never touches the zsl vocabulary
    # too strong: grass pixels (1.0 - 1.5 < 0) are now called cow (0.0).
    over = evaluate_semantic(FakeNamer, msrc, ["cow", "sheep"], 1.5, ["horse", "mountain"], progress=False)
    assert over["gzsl"]["per_class_iou"]["grass"] == 0.0 and over["gzsl"]["seen_miou"] == 0.0


def test_calibration_defaults_to_the_embedders(msrc: SemanticDataset, monkeypatch) -> None:
    built: list[float] = []

    def factory(vocabulary, seen=(), calibration=0.0):
        built.append(calibration)
        return FakeNamer(vocabulary, seen, calibration)

    factory.calibration = 0.3  # type: ignore[attr-defined]
    assert evaluate_semantic(factory, msrc, ["cow", "sheep"], progress=False)["gzsl"]["calibration"] == 0.3
    evaluate_semantic(factory, msrc, ["cow", "sheep"], calibration=0.1, progress=False)
    assert built == [0.3, 0.1]


def test_real_namer_matches_the_known_answers(msrc: SemanticDataset) -> None:
    embedder = FakeEmbedder(calibration=0.0)
    assert isinstance(embedder, DenseEmbedder)
    plain = evaluate_semantic(embedder, msrc, ["cow", "sheep"], dropped=["horse", "mountain"], progress=False)
    assert plain["zsl"]["miou"] == 100.0
    assert plain["gzsl"]["per_class_iou"]["sheep"] == 0.0
    assert plain["gzsl"]["hmean"] == pytest.approx(6000 / 110)
    stacked = evaluate_semantic(embedder, msrc, ["cow", "sheep"], 50.0, ["horse", "mountain"], progress=False)
    assert stacked["gzsl"]["unseen_miou"] > plain["gzsl"]["unseen_miou"]


# --- datasets and splits ------------------------------------------------------------------
def test_zero_shot_split_defaults_and_errors(tmp_path: Path) -> None:
    names = MSRC_CLASSES
    assert zero_shot_split("msrc21", names) == (["cow", "sheep", "cat", "boat", "bicycle"], ["horse", "mountain"])
    assert zero_shot_split(tmp_path / "msrc21", names, unseen="cow, dog") == (["cow", "dog"], ["horse", "mountain"])
    assert zero_shot_split(tmp_path / "mine", names, unseen="cow") == (["cow"], [])
    with pytest.raises(DatasetError, match="no zero-shot split"):
        zero_shot_split(tmp_path / "mine", names)
    with pytest.raises(DatasetError, match="unicorn"):
        zero_shot_split("msrc21", names, unseen=["unicorn"])
    with pytest.raises(DatasetError, match="both unseen and dropped"):
        zero_shot_split("msrc21", names, unseen=["horse"])


def write_yolo_folder(root: Path) -> Path:
    """coco128_seg's layout: a 20x20 image with the objects of :func:`naming_image` as square polygons."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.tsv").write_text("class_idx\tname\n0\tcow\n1\tsheep\n2\tgrass\n3\tzebra\n")
    image, objects = naming_image()
    Image.fromarray(image).save(root / "images" / "train" / "a.png")
    lines = []
    for name, mask in objects:
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min() / 20, ys.min() / 20, (xs.max() + 1) / 20, (ys.max() + 1) / 20
        lines.append(f"{['cow', 'sheep', 'grass'].index(name)} {x0} {y0} {x1} {y0} {x1} {y1} {x0} {y1}")
    (root / "labels" / "train" / "a.txt").write_text("\n".join(lines) + "\n")
    return root


def test_instances_as_a_semantic_map(tmp_path: Path) -> None:
    below = Instance(0, "cow", square((6, 6), 0, 0, 4))
    above = Instance(1, "sheep", square((6, 6), 2, 2, 3))
    label = rasterize_instances([below, above], (6, 6))
    assert (label[2:5, 2:5] == 1).all() and (label[0, 0:4] == 0).all() and label[5, 5] == VOID
    data = open_semantic_dataset(write_yolo_folder(tmp_path / "yolo"), split="val")
    sample = data[0]
    assert data.classes[3] == "zebra" and sample.label.shape == (20, 20)
    assert (sample.label == 0).sum() == 25 and (sample.label == 1).sum() == 36 and (sample.label == 2).sum() == 16
    assert (sample.label == VOID).sum() == 400 - 77
    with pytest.raises(DatasetError, match="not a semantic dataset"):
        open_semantic_dataset(tmp_path / "nothing")


# --- naming -------------------------------------------------------------------------------
def write_coco_json(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    image, objects = naming_image()
    Image.fromarray(image).save(root / "images" / "a.png")
    categories = [{"id": 7, "name": "cow"}, {"id": 3, "name": "sheep"}, {"id": 9, "name": "grass"},
                  {"id": 1, "name": "zebra"}]
    ids = {c["name"]: c["id"] for c in categories}
    annotations = []
    for k, (name, mask) in enumerate(objects):
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        annotations.append({
            "id": k + 1, "image_id": 5, "category_id": ids[name], "iscrowd": 0, "area": float(mask.sum()),
            "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        })
    annotations.append({**annotations[0], "id": 9, "iscrowd": 1})  # a crowd region: left out
    coco = {"images": [{"id": 5, "file_name": "a.png", "height": 20, "width": 20},
                       {"id": 6, "file_name": "empty.png", "height": 20, "width": 20}],
            "annotations": annotations, "categories": categories}
    path = root / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def write_mask_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image, objects = naming_image()
    Image.fromarray(image).save(root / "images" / "a.png")
    rows = ["image,mask,class_name"]
    for k, (name, mask) in enumerate(objects):
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"a_{k}.png")
        rows.append(f"images/a.png,masks/a_{k}.png,{name}")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "masks" / "empty.png")
    rows.append("images/a.png,masks/empty.png,cow")  # an empty mask: skipped by the evaluation
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("layout", ["yolo", "coco", "folder"])
def test_naming_readers(tmp_path: Path, layout: str) -> None:
    if layout == "yolo":
        data = load_naming_dataset(write_yolo_folder(tmp_path / "yolo"))
        assert isinstance(data, YoloSegNaming) and data.classes == ["cow", "sheep", "grass", "zebra"]
    elif layout == "coco":
        data = load_naming_dataset(write_coco_json(tmp_path / "coco"))
        assert isinstance(data, CocoJsonNaming) and data.classes == ["zebra", "sheep", "cow", "grass"]  # by id
    else:
        data = load_naming_dataset(write_mask_folder(tmp_path / "folder"))
        assert isinstance(data, MaskFolderNaming) and data.classes == ["cow", "sheep", "grass"]
    assert len(data) == 1
    sample = data[0]
    _, objects = naming_image()
    expected = objects + [("cow", np.zeros((20, 20), bool))] if layout == "folder" else objects
    assert sample.class_names == [name for name, _ in expected]
    assert sample.masks.dtype == bool and sample.masks.shape == (len(expected), 20, 20)
    np.testing.assert_array_equal(sample.masks, np.stack([mask for _, mask in expected]))


def test_naming_reader_errors(tmp_path: Path) -> None:
    folder = write_mask_folder(tmp_path / "folder")
    (folder / "classes.tsv").write_text("id\tname\n0\tcow\n1\tgrass\n")
    with pytest.raises(DatasetError, match="sheep"):
        MaskFolderNaming(folder)
    (folder / "index.csv").write_text("image,mask\nimages/a.png,masks/a_0.png\n")
    with pytest.raises(DatasetError, match="class_name"):
        MaskFolderNaming(folder)
    with pytest.raises(DatasetError, match="not a naming dataset"):
        load_naming_dataset(tmp_path)
    with pytest.raises(DatasetError, match="image folder"):
        load_naming_dataset(write_coco_json(tmp_path / "coco"), images=tmp_path / "missing")


def test_naming_accuracy_seen_and_unseen(tmp_path: Path) -> None:
    data = MaskFolderNaming(write_mask_folder(tmp_path / "folder"))
    results = evaluate_naming(FakeNamer, data, ["cow", "sheep"], progress=False)
    assert results["seen_acc"] == 100.0 and results["unseen_acc"] == 50.0  # the sheep reads as grass
    assert results["hmean"] == pytest.approx(200 / 3)
    assert results["n_masks"] == 3  # the empty mask is skipped
    assert results["per_class"]["sheep"] == {"correct": 0, "total": 1, "seen": False}
    assert results["per_class"]["cow"] == {"correct": 1, "total": 1, "seen": False}
    calibrated = evaluate_naming(FakeNamer, data, ["cow", "sheep"], calibration=0.3, progress=False)
    assert calibrated["unseen_acc"] == 100.0 and calibrated["calibration"] == 0.3


def regions_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 20x40 MSRC class map: two separate cows (100 px each), a horse (dropped), void, a 9-pixel sheep
    speck and one grass region around them; the image reads each pixel as its class."""
    label = np.full((20, 40), GRASS)
    label[:10, :10] = COW
    label[10:, 30:] = COW
    label[:10, 30:] = HORSE
    label[10:, :10] = VOID
    label[:3, 15:18] = SHEEP
    image = np.zeros((20, 40, 3), np.uint8)
    image[..., 0] = np.where(label == VOID, SKY, label)
    return image, label


def write_regions_folder(root: Path) -> Path:
    write_msrc_folder(root)
    image, label = regions_scene()
    Image.fromarray(image).save(root / "val" / "images" / "0.png")
    Image.fromarray(label.astype(np.uint8)).save(root / "val" / "labels" / "0.png")
    return root


def test_class_maps_cut_into_named_regions(tmp_path: Path) -> None:
    data = load_naming_dataset(write_regions_folder(tmp_path / "msrc21"))  # dropped: horse, mountain
    assert isinstance(data, SemanticRegionNaming) and data.dropped == ["horse", "mountain"]
    assert "horse" not in data.classes and len(data.classes) == 21
    sample = data[0]
    assert sample.class_names == ["grass", "cow", "cow"]  # the sheep speck is under DEFAULT_MIN_AREA
    _, label = regions_scene()
    assert [int(m.sum()) for m in sample.masks] == [int((label == GRASS).sum()), 100, 100]
    assert sample.masks[1][:10, :10].all() and sample.masks[2][10:, 30:].all()
    assert SemanticRegionNaming(data.semantic, ["horse"], min_area=9)[0].class_names == ["grass", "cow", "cow", "sheep"]
    with pytest.raises(DatasetError, match="zebra"):
        load_naming_dataset(tmp_path / "msrc21", dropped=["zebra"])
    with pytest.raises(DatasetError, match="class maps only"):
        load_naming_dataset(write_mask_folder(tmp_path / "folder"), dropped=["cow"])


def test_naming_takes_the_products_namer_unless_calibration_is_asked(tmp_path: Path) -> None:
    data = MaskFolderNaming(write_mask_folder(tmp_path / "folder"))
    embedder = FakeEmbedder(calibration=0.3)
    plain = evaluate_naming(embedder, data, ["cow", "sheep"], progress=False)
    # the product's small mask gamma, which only lowers names the embedder was trained on (none here)
    assert plain["calibrated"] is False and plain["calibration"] == DEFAULT_MASK_CALIBRATION
    assert plain["accuracy"] == pytest.approx(200 / 3) and plain["unseen_acc"] == 50.0  # the sheep reads grass
    calibrated = evaluate_naming(embedder, data, ["cow", "sheep"], calibrate=True, progress=False)
    assert calibrated["calibrated"] is True and calibrated["calibration"] == 0.3  # the embedder's own gamma
    assert calibrated["accuracy"] == 100.0 and calibrated["unseen_acc"] == 100.0


# --- text prompts -------------------------------------------------------------------------
def test_union_of_masks_accepts_arrays_and_records() -> None:
    from zeroseg.io import mask_to_rle
    from zeroseg.segment.record import Segment

    a, b = square((6, 6), 0, 0, 2), square((6, 6), 3, 3, 2)
    assert union_of_masks(np.stack([a, b]), (6, 6)).sum() == 8
    assert union_of_masks(np.zeros((0, 6, 6), bool), (6, 6)).sum() == 0
    assert union_of_masks([{"segmentation": a}, {"segmentation": mask_to_rle(b)}], (6, 6)).sum() == 8
    assert union_of_masks([Segment(a), Segment(mask_to_rle(b))], (6, 6)).sum() == 8


def test_text_prompts_seen_and_unseen(msrc: SemanticDataset, monkeypatch) -> None:
    calls: list[str] = []

    def text_to_masks(image, phrase, predictor, namer, verify=True, points_per_region=0):
        """Fake segmenter: the pixels where `phrase` wins among the namer's names."""
        calls.append(phrase)
        return (namer.pixel_logits(image).argmax(0) == namer.vocabulary.index(phrase)).numpy()[None]

    module = types.ModuleType("zeroseg.segment.text_prompt")
    module.text_to_masks = text_to_masks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zeroseg.segment.text_prompt", module)
    results = evaluate_text_prompts(None, FakeNamer, msrc, ["cow", "sheep"], dropped=["horse", "mountain"],
                                    progress=False)
    assert sorted(calls) == ["cow", "grass", "sheep"]  # the classes present (horse is dropped)
    # cow: exact; sheep: only predicted on the (ignored) horse column -> 0; grass: 12 / 20.
    assert results["per_class"]["cow"] == {"miou": 100.0, "count": 1, "seen": False}
    assert results["per_class"]["sheep"]["miou"] == 0.0
    assert results["per_class"]["grass"]["miou"] == pytest.approx(60.0)
    assert results["seen_miou"] == pytest.approx(60.0) and results["unseen_miou"] == 50.0
    assert results["hmean"] == pytest.approx(6000 / 110) and results["n_prompts"] == 3


# --- CLI ----------------------------------------------------------------------------------
@pytest.fixture
def fake_embedder(scratch_hub) -> str:
    scratch_hub("fake", load_fake_embedder)
    return "fake"


def test_cli_zero_shot_on_an_msrc_folder(tmp_path: Path, fake_embedder: str) -> None:
    folder = write_msrc_folder(tmp_path / "msrc21", n_images=2)
    out = tmp_path / "results.json"
    args = ["zero-shot", "--dataset", str(folder), "--model", fake_embedder, "--unseen", "cow,sheep",
            "--limit", "1", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "gzsl" in result.output and "unseen" in result.output and "sheep" in result.output
    saved = json.loads(out.read_text())
    assert saved["n_images"] == 1 and saved["dropped"] == ["horse", "mountain"]  # from the folder name
    assert set(saved["zsl"]) == SETTING_KEYS and set(saved["gzsl"]) == SETTING_KEYS | {"calibration"}
    assert saved["zsl"]["miou"] == 100.0 and saved["gzsl"]["hmean"] == pytest.approx(6000 / 110)


def test_cli_zero_shot_protocols(tmp_path: Path, fake_embedder: str, monkeypatch) -> None:
    """--protocol zero-shot (default) scores the dense head alone; user names pixels as label-pixels does:
    the product's namer (ImageNet classifier mixed in) and the default model's proposals."""
    import zeroseg.eval.cli as eval_cli
    from zeroseg.segment import naming
    from zeroseg.segment import pipeline

    namers: list[Any] = []
    real = naming.load_namer

    def spy(*args: Any, **options: Any) -> Any:
        namers.append(real(*args, **options))
        return namers[-1]

    segmenter = object()
    asked: list[Any] = []
    monkeypatch.setattr(naming, "load_namer", spy)
    monkeypatch.setattr(eval_cli, "_segmenter", lambda: segmenter)
    monkeypatch.setattr(pipeline, "proposals", lambda image, predictor: asked.append(predictor) or ([], np.zeros((0, *image.shape[:2]), bool)))
    folder = write_msrc_folder(tmp_path / "msrc21", n_images=1)
    base = ["zero-shot", "--dataset", str(folder), "--model", fake_embedder, "--unseen", "cow,sheep"]
    for protocol in ([], ["--protocol", "user"]):
        out = tmp_path / "results.json"
        result = CliRunner().invoke(app, [*base, *protocol, "--json", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["protocol"] == (protocol[-1] if protocol else "zero-shot")
        assert len(namers) == len(protocol) // 2 and asked == [segmenter] * (len(protocol) // 2)
    result = CliRunner().invoke(app, [*base, "--protocol", "mine"])
    assert result.exit_code != 0 and "--protocol" in result.output


def test_cli_zero_shot_default_split_and_errors(tmp_path: Path, fake_embedder: str) -> None:
    folder = write_msrc_folder(tmp_path / "msrc21")
    result = CliRunner().invoke(app, ["zero-shot", "--dataset", str(folder), "--model", fake_embedder])
    assert result.exit_code == 0, result.output  # unseen cow, sheep, cat, boat, bicycle from ZERO_SHOT_SPLITS
    other = write_msrc_folder(tmp_path / "mine")
    result = CliRunner().invoke(app, ["zero-shot", "--dataset", str(other), "--model", fake_embedder])
    assert result.exit_code == DatasetError.exit_code and "no zero-shot split" in result.output
    result = CliRunner().invoke(app, ["zero-shot", "--dataset", str(other), "--model", "nope", "--unseen", "cow"])
    assert result.exit_code != 0 and "nope" in result.output


def test_cli_naming_json_keys(tmp_path: Path, fake_embedder: str) -> None:
    folder = write_mask_folder(tmp_path / "objects")
    out = tmp_path / "naming.json"
    args = ["naming", "--dataset", str(folder), "--model", fake_embedder, "--unseen", "cow,sheep", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert {"accuracy", "seen_acc", "unseen_acc", "hmean", "calibrated", "calibration"} <= set(saved)
    assert saved["seen_acc"] == 100.0 and saved["unseen_acc"] == 50.0 and saved["accuracy"] == pytest.approx(200 / 3)
    assert saved["calibrated"] is False and saved["calibration"] == DEFAULT_MASK_CALIBRATION
    result = CliRunner().invoke(app, [*args, "--calibrate", "--calibration", "0.3"])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["calibrated"] is True and saved["accuracy"] == 100.0 and saved["unseen_acc"] == 100.0
    result = CliRunner().invoke(app, [*args, "--no-calibrate", "--calibration", "0.3"])
    assert result.exit_code == 0 and json.loads(out.read_text())["calibrated"] is False


def test_cli_naming_of_msrc_regions(tmp_path: Path, fake_embedder: str) -> None:
    folder = write_regions_folder(tmp_path / "msrc21")
    out = tmp_path / "naming.json"
    result = CliRunner().invoke(app, ["naming", "--dataset", str(folder), "--model", fake_embedder, "--json", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["n_masks"] == 3 and saved["accuracy"] == 100.0 and saved["dropped"] == ["horse", "mountain"]
    assert saved["unseen"] == ["cow", "sheep", "cat", "boat", "bicycle"]
    assert saved["per_class"]["cow"] == {"correct": 2, "total": 2, "seen": False}
