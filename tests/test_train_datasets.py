"""Training data readers: real data in ../shared/data plus small hand-made datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from optional import unavailable
from PIL import Image

from zeroseg.data import data_root
from zeroseg.errors import DatasetError
from zeroseg.io import polygon_to_mask
from zeroseg.train.datasets import (
    OBJECT_CLASSES,
    VOID,
    CocoYoloSegDataset,
    PromptMaskDataset,
    SemanticDataset,
    object_masks_from_semantic,
    read_classes,
)

REPO = Path(__file__).resolve().parents[1]


def _write_semantic(root: Path, label: np.ndarray, classes: str) -> None:
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    (root / "classes.tsv").write_text(classes)
    h, w = label.shape
    Image.fromarray(np.full((h, w, 3), 7, np.uint8)).save(root / "train" / "images" / "a.png")
    Image.fromarray(label.astype(np.uint8)).save(root / "train" / "labels" / "a.png")


def _write_yolo(root: Path, lines: str, size: tuple[int, int] = (100, 50)) -> None:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.tsv").write_text("idx\tname\n0\tcat\n1\tdog\n")
    Image.new("L", size).save(root / "images" / "train" / "x.jpg")  # grey: read as RGB
    Image.new("RGB", size).save(root / "images" / "train" / "unlabelled.jpg")
    (root / "labels" / "train" / "x.txt").write_text(lines)


# --- data_root / read_classes ---------------------------------------------------------------
def test_data_root_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEG_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv("ZEROSEG_DATA", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="ZEROSEG_DATA"):
        data_root()
    monkeypatch.delenv("ZEROSEG_DATA")
    default = REPO.parent / "shared" / "data"
    if not default.is_dir():
        unavailable(f"no shared data beside the repo at {default}")
    assert data_root() == default


def test_read_classes_real_tables(data_dir):
    msrc = read_classes(data_dir / "msrc21" / "classes.tsv")
    assert len(msrc) == 24 and msrc[0] == "building" and msrc[22] == "boat" and msrc[255] == "void"
    assert read_classes(data_dir / "camvid" / "classes.tsv")[11] == "void"
    coco = read_classes(data_dir / "coco128_seg" / "classes.tsv")  # name is the third column
    assert len(coco) == 80 and coco[0] == "person" and coco[9] == "traffic light" and coco[79] == "toothbrush"


def test_read_classes_rejects_malformed(tmp_path):
    path = tmp_path / "classes.tsv"
    for text in ("id\tlabel\n0\ta\n", "id\tname\nx\ta\n", "id\tname\n0\ta\n0\tb\n"):
        path.write_text(text)
        with pytest.raises(DatasetError):
            read_classes(path)
    with pytest.raises(DatasetError):
        read_classes(tmp_path / "missing.tsv")


# --- SemanticDataset ------------------------------------------------------------------------
def test_msrc21_samples(data_dir):
    ds = SemanticDataset(data_dir / "msrc21", "train", limit=3)
    assert len(ds) == 3 and ds.void_id == 255
    assert len(ds.classes) == 23 and ds.classes[4] == "horse" and VOID not in ds.classes
    for i in range(len(ds)):
        sample = ds[i]
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3 and sample.image.shape[2] == 3
        assert sample.label.dtype == np.int64 and sample.label.shape == sample.image.shape[:2]
        assert set(np.unique(sample.label)) <= set(ds.classes) | {VOID}
        assert sample.name == ds.image_paths[i].stem and (ds.image_paths[i].parent.parent / "labels").is_dir()
    assert len(SemanticDataset(data_dir / "msrc21", "val")) == 52


def test_camvid_void_is_mapped_to_255(data_dir):
    ds = SemanticDataset(data_dir / "camvid", "train", limit=2)
    assert ds.void_id == 11 and len(ds.classes) == 11 and ds.classes[8] == "car"
    sample = ds[1]
    assert sample.image.shape == (360, 480, 3) and sample.label.shape == (360, 480)
    raw = np.array(Image.open(ds.label_paths[1]))
    assert (raw == 11).any(), "pick a frame with void pixels"
    np.testing.assert_array_equal(sample.label == VOID, raw == 11)
    np.testing.assert_array_equal(sample.label[raw != 11], raw[raw != 11])
    assert sample.label.max() == VOID and sample.label[raw != 11].max() <= 10


def test_semantic_void_from_table_and_bad_ids(tmp_path):
    label = np.array([[0, 1, 7], [7, 1, 0]])
    _write_semantic(tmp_path / "ok", label, "id\tname\n0\ta\n1\tb\n7\tVoid\n")
    ds = SemanticDataset(tmp_path / "ok")
    assert ds.void_id == 7 and ds.classes == {0: "a", 1: "b"}
    np.testing.assert_array_equal(ds[0].label, [[0, 1, VOID], [VOID, 1, 0]])
    _write_semantic(tmp_path / "bad", np.array([[0, 3]]), "id\tname\n0\ta\n1\tb\n")
    with pytest.raises(DatasetError, match=r"\[3\]"):
        SemanticDataset(tmp_path / "bad")[0]
    with pytest.raises(DatasetError, match="no split"):
        SemanticDataset(tmp_path / "ok", "test")


# --- COCO / YOLO-seg ------------------------------------------------------------------------
def test_polygon_square_area():
    mask = polygon_to_mask(np.array([[20, 10], [60, 10], [60, 30], [20, 30]]), 50, 100)
    assert mask.dtype == bool and mask.shape == (50, 100) and mask.sum() == 40 * 20
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 29, 20, 59)
    triangle = polygon_to_mask(np.array([[10, 10], [90, 10], [50, 90]]), 100, 100)
    assert triangle.sum() == pytest.approx(80 * 80 / 2, rel=0.02)
    with pytest.raises(DatasetError):
        polygon_to_mask(np.array([[0, 0], [5, 5]]), 10, 10)


def test_yolo_polygons_are_scaled_to_pixels(tmp_path):
    _write_yolo(tmp_path, "1 0.2 0.2 0.6 0.2 0.6 0.6 0.2 0.6\n\n0 0 0 0.1 0 0.1 0.1\n")
    ds = CocoYoloSegDataset(tmp_path)
    assert [p.name for p in ds.image_paths] == ["x.jpg"]  # the unlabelled image is skipped
    sample = ds[0]
    assert sample.image.shape == (50, 100, 3) and sample.name == "x"
    dog, cat = sample.instances
    assert (dog.class_id, dog.class_name, cat.class_name) == (1, "dog", "cat")
    assert dog.mask.shape == (50, 100) and dog.mask.sum() == 40 * 20  # x 20..60, y 10..30
    assert cat.mask.sum() == pytest.approx(10 * 5 / 2, abs=3)  # right triangle, 10 x 5 px
    (tmp_path / "labels" / "train" / "x.txt").write_text("5 0.1 0.1 0.2 0.2 0.3 0.1\n")
    with pytest.raises(DatasetError, match="class 5"):
        ds.read_instances(0)


def test_coco128_samples(data_dir):
    full = CocoYoloSegDataset(data_dir / "coco128_seg")
    names = {p.stem for p in full.image_paths}
    assert len(full) == 126 and "000000000250" not in names and "000000000508" not in names
    ds = CocoYoloSegDataset(data_dir / "coco128_seg", limit=2)
    sample = ds[0]
    lines = [line for line in ds.label_paths[0].read_text().splitlines() if line.strip()]
    assert sample.name == "000000000009" and len(sample.instances) == len(lines)
    assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
    for inst in sample.instances:
        assert inst.mask.dtype == bool and inst.mask.shape == sample.image.shape[:2] and inst.mask.any()
        assert inst.class_name == ds.classes[inst.class_id]
    assert {i.class_name for i in sample.instances} <= {"bowl", "broccoli", "orange"}


def test_coco128_val_split_is_held_out(data_dir):
    """A fixed quarter of coco128 is validation: disjoint from train, and the training objects skip it."""
    train = CocoYoloSegDataset(data_dir / "coco128_seg", split="train")
    val = CocoYoloSegDataset(data_dir / "coco128_seg", split="val")
    assert len(val) == 32 and len(train) == 94 and not set(train.image_paths) & set(val.image_paths)
    assert val.image_paths[0].stem == "000000000009"
    objects = PromptMaskDataset(sources=("coco128",), root=data_dir, limit=3)
    assert set(objects.images.paths) <= set(train.image_paths)


# --- object masks ---------------------------------------------------------------------------
def test_object_masks_from_semantic():
    label = np.zeros((8, 8), np.int64)
    label[0:3, 0:3] = 1  # 9 px
    label[3:5, 3:5] = 1  # 4 px, touches the first only diagonally: same 8-connected object
    label[6:8, 6:8] = 1  # 4 px, separate
    label[0:2, 6:8] = 2  # 4 px
    label[7, 0] = 2  # 1 px: too small
    label[5, 5] = VOID
    objects = object_masks_from_semantic(label, [2, 1, 3], min_area=4)
    assert [(c, int(m.sum())) for c, m in objects] == [(2, 4), (1, 13), (1, 4)]
    assert all(m.dtype == bool and m.shape == label.shape for _, m in objects)
    assert objects[1][1][4, 4] and not objects[1][1][6, 6]
    assert len(object_masks_from_semantic(label, [1, 2], min_area=1)) == 4


# --- PromptMaskDataset ----------------------------------------------------------------------
def test_prompt_mask_dataset_flattens_sources(data_dir):
    ds = PromptMaskDataset(limit=2, min_area=100, root=data_dir)
    assert set(ds.sources) == {o.source for o in ds.objects} == {"coco128", "camvid", "msrc21"}
    assert ds.images._cache == {}  # nothing decoded yet
    assert sorted({o.image_index for o in ds.objects}) == list(range(len(ds.images))) and len(ds.images) <= 6
    vocab = {
        "coco128": set(read_classes(data_dir / "coco128_seg" / "classes.tsv").values()),
        "camvid": set(OBJECT_CLASSES["camvid"]),
        "msrc21": set(OBJECT_CLASSES["msrc21"]),
    }
    for k in range(len(ds)):
        item = ds[k]
        assert item.class_name in vocab[item.source]
        assert item.mask.dtype == bool and item.mask.shape == item.image.shape[:2] and item.mask.sum() >= 100
    assert len(ds.images._cache) == len(ds.images)
    assert ds.images[0] is ds.images[0] and not ds.images[0].flags.writeable
    camvid = [o for o in ds.objects if o.source == "camvid"]
    assert ds.images[camvid[0].image_index].shape == (360, 480, 3)


def test_exclude_classes(data_dir):
    kept = PromptMaskDataset(sources=("camvid",), limit=3, root=data_dir)
    names = [o.class_name for o in kept.objects]
    assert "car" in names and "pedestrian" in names
    dropped = PromptMaskDataset(sources=("camvid",), limit=3, exclude_classes=("Car", "pedestrian"), root=data_dir)
    assert [o.class_name for o in dropped.objects] == [n for n in names if n not in ("car", "pedestrian")]
    with pytest.raises(DatasetError, match="not classes"):
        PromptMaskDataset(sources=("camvid",), limit=1, exclude_classes=("cow",), root=data_dir)


def test_evaluation_sets_are_refused(data_dir, tmp_path):
    for name in ("grabcut", "berkeley", "GrabCut"):
        with pytest.raises(DatasetError, match="evaluation"):
            PromptMaskDataset(sources=(name,), root=data_dir)
    with pytest.raises(DatasetError, match="evaluation"):
        SemanticDataset(data_dir / "grabcut")
    with pytest.raises(DatasetError, match="evaluation"):
        CocoYoloSegDataset(data_dir / "berkeley")
    copy = tmp_path / "berkeley" / "camvid"
    _write_semantic(copy, np.zeros((2, 2)), "id\tname\n0\ta\n")
    with pytest.raises(DatasetError, match="evaluation"):
        SemanticDataset(copy)
    with pytest.raises(DatasetError, match="unknown source"):
        PromptMaskDataset(sources=("voc",), root=data_dir)
    with pytest.raises(DatasetError, match="unknown split"):
        CocoYoloSegDataset(data_dir / "coco128_seg", split="test")
