"""Readers of the extra training sets (zeroseg.train.sources) on tiny hand-made folders of each layout."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io as scipy_io
from PIL import Image

from zeroseg.errors import DatasetError
from zeroseg.train.datasets import PromptMaskDataset
from zeroseg.train.sources import EXTRA_FOLDERS, benchmark_ids, open_extra_source, split_of


def _photo(path: Path, size: tuple[int, int]) -> None:
    """An RGB JPEG of (height, width) ``size``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)


def _benchmarks(data: Path, ids: list[str]) -> None:
    (data / "berkeley" / "images").mkdir(parents=True)
    (data / "grabcut" / "masks").mkdir(parents=True)
    for i in ids:
        (data / "berkeley" / "images" / f"{i}.jpg").write_bytes(b"")
    (data / "grabcut" / "masks" / "llama.png").write_bytes(b"")  # not a BSDS id


def _bsds(root: Path, stem: str, size: tuple[int, int], rotated: bool = False) -> None:
    data = root / "bsds500" / "BSR" / "BSDS500" / "data"
    _photo(data / "images" / "train" / f"{stem}.jpg", size)
    h, w = size[::-1] if rotated else size
    seg = np.ones((h, w), np.uint16)
    seg[: h // 2] = 2  # two regions, top and bottom (of the stored labels)
    seg[0, 0] = 3  # a speck: dropped
    other = seg.copy()  # a second annotator drew the same regions: merged
    cell = np.empty((1, 2), dtype=object)
    for k, s in enumerate((seg, other)):
        cell[0, k] = {"Segmentation": s, "Boundaries": np.zeros_like(s, bool)}
    (data / "groundTruth" / "train").mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(data / "groundTruth" / "train" / f"{stem}.mat", {"groundTruth": cell})


def test_split_is_a_stable_fifth():
    keys = [f"img{i}" for i in range(1000)]
    val = [k for k in keys if split_of(k) == "val"]
    assert 150 < len(val) < 250 and all(split_of(k) == "val" for k in val)


def test_benchmark_ids_come_from_the_benchmark_folders(tmp_path):
    _benchmarks(tmp_path, ["101085", "24077"])
    assert benchmark_ids(tmp_path) == {"101085", "24077"}
    with pytest.raises(DatasetError, match="cannot exclude"):
        benchmark_ids(tmp_path / "missing")


def test_bsds_regions_rotation_salient_objects_and_benchmark_exclusion(tmp_path):
    data, extra = tmp_path / "data", tmp_path / "extra"
    _benchmarks(data, ["100"])
    _bsds(extra, "100", (20, 30))  # a benchmark photo: never read
    _bsds(extra, "200", (20, 30))
    _bsds(extra, "300", (20, 30), rotated=True)  # labels stored as a portrait
    sod = extra / "sod" / "tools" / "GroundTruth" / "SOD"
    sod.mkdir(parents=True)
    salient = np.zeros((20, 30), bool)
    salient[5:15, 5:15] = True
    Image.fromarray(salient).save(sod / "200.png")
    source = open_extra_source("bsds", extra, split="all", data=data)
    assert [p.stem for p in source.image_paths] == ["200", "300"]
    by_stem = {path.stem: objects for path, objects in source.objects(min_area=5)}
    names = [name for name, _ in by_stem["200"]]
    assert names == ["region", "region", "salient object"]  # annotators merged, speck dropped
    assert all(mask.shape == (20, 30) for _, mask in by_stem["200"] + by_stem["300"])
    top = by_stem["200"][1][1] if by_stem["200"][1][1][0, 5] else by_stem["200"][0][1]
    assert top[:10, 1:].all() and not top[10:].any() and not top[0, 0]
    # the portrait labels' top half is the stored photo's right half after the quarter turn
    region = next(m for _, m in by_stem["300"] if m[5, -1])
    assert region[1:, 15:].all() and not region[:, :15].any() and not region[0, -1]  # the speck
    assert np.array_equal(by_stem["200"][2][1], salient)
    with pytest.raises(DatasetError, match="cannot exclude"):
        open_extra_source("bsds", extra, data=tmp_path / "nowhere")


def test_binary_mask_sources_resize_masks_of_the_same_aspect(tmp_path):
    horse = tmp_path / "weizmann_horse" / "weizmann_horse_db"
    _photo(horse / "rgb" / "horse001.jpg", (40, 60))
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, :] = 255
    (horse / "figure_ground").mkdir()
    Image.fromarray(mask).save(horse / "figure_ground" / "horse001.jpg", quality=100)
    human = tmp_path / "human_seg"
    _photo(human / "Training_Images" / "1.jpg", (40, 60))
    _photo(human / "Training_Images" / "2.jpg", (40, 60))  # no mask: skipped
    (human / "Ground_Truth").mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(human / "Ground_Truth" / "1.png")  # wrong aspect
    [(path, objects)] = list(open_extra_source("horse", tmp_path, split="all").objects(10))
    assert path.name == "horse001.jpg" and objects[0][0] == "horse"
    assert objects[0][1].shape == (40, 60) and objects[0][1][10:30].all() and not objects[0][1][:9].any()
    source = open_extra_source("human", tmp_path, split="all")
    assert len(source) == 1
    with pytest.raises(DatasetError, match="the photo is"):
        list(source.objects(10))


def test_pets_trimaps_breeds_and_duplicates(tmp_path):
    for folder, stem in (("pets_sample", "Bengal_1"), ("pets_sample", "beagle_2"), ("pets_simon/data", "Bengal_1")):
        base = tmp_path / folder
        _photo(base / "images" / f"{stem}.jpg", (10, 10))
        trimap = np.full((10, 10), 2, np.uint8)
        trimap[2:8, 2:8] = 3
        trimap[3:7, 3:7] = 1
        (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{stem}.png")
    objects = dict((p.stem, o) for p, o in open_extra_source("pets", tmp_path, split="all").objects(1))
    assert sorted(objects) == ["Bengal_1", "beagle_2"]
    assert objects["Bengal_1"][0][0] == "cat" and objects["beagle_2"][0][0] == "dog"
    assert objects["Bengal_1"][0][1].sum() == 36  # pet and border


def test_feral_cats_keep_one_copy_per_photo(tmp_path):
    base = tmp_path / "feral_cat" / "export"
    copies = (("train", "group0001_png.rf.aa"), ("train", "group0001_png.rf.bb"), ("valid", "group0002_jpg.rf.cc"))
    for split, name in copies:
        _photo(base / split / "images" / f"{name}.jpg", (64, 64))
        (base / split / "labels").mkdir(parents=True, exist_ok=True)
        (base / split / "labels" / f"{name}.txt").write_text("0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n")
    source = open_extra_source("feral_cat", tmp_path, split="all")
    assert [p.name for p in source.image_paths] == ["group0001_png.rf.aa.jpg", "group0002_jpg.rf.cc.jpg"]
    [(_, objects)] = list(source.objects(1))[:1]
    assert objects[0][0] == "cat" and objects[0][1].sum() == 32 * 32


def test_ccp_person_and_garments(tmp_path):
    ccp = tmp_path / "ccp"
    _photo(ccp / "photos" / "0001.jpg", (20, 10))
    labels = np.zeros((20, 10), np.uint8)
    labels[2:10, 2:8] = 2  # a bag
    labels[12:18, 2:8] = 2  # another bag, apart
    labels[10:12, 2:8] = 1
    (ccp / "annotations" / "pixel-level").mkdir(parents=True)
    scipy_io.savemat(ccp / "annotations" / "pixel-level" / "0001.mat", {"groundtruth": labels})
    names = np.empty((1, 3), dtype=object)
    names[0] = [np.array(["null"]), np.array(["accessories"]), np.array(["bag"])]
    scipy_io.savemat(ccp / "label_list.mat", {"label_list": names})
    [(_, objects)] = list(open_extra_source("ccp", tmp_path, split="all").objects(5))
    assert [name for name, _ in objects] == ["person", "accessories", "bag", "bag"]
    assert objects[0][1].sum() == 6 * 16


def _coco_subset(folder: Path, split: str, photos: dict[str, list[tuple[int, list[float], int]]]) -> None:
    """A COCO 2017 subset's layout: ``annotations/instances_<split>2017.json`` + ``<split>2017/`` photos of
    20 x 20; ``photos`` maps a file stem to its annotations (category id, square polygon, iscrowd)."""
    images, annotations = [], []
    for image_id, (stem, objects) in enumerate(sorted(photos.items()), start=1):
        _photo(folder / f"{split}2017" / f"{stem}.jpg", (20, 20))
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": 20, "width": 20})
        for category, (x0, y0, x1, y1), crowd in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "iscrowd": crowd,
                                "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0]})
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    (folder / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))


def test_coco_subsets_read_train2017_once_without_crowds(tmp_path):
    _coco_subset(tmp_path / "coco_mini", "train", {"a": [(18, [2, 2, 12, 12], 0), (1, [0, 0, 20, 20], 1)],
                                                    "b": [(1, [0, 0, 20, 20], 1)]})  # crowds only: no object
    _coco_subset(tmp_path / "coco_mini", "val", {"v": [(1, [0, 0, 5, 5], 0)]})  # validation: never read
    _coco_subset(tmp_path / "coco_tiny", "train", {"a": [(1, [0, 0, 5, 5], 0)], "c": [(1, [0, 0, 10, 20], 0)]})
    source = open_extra_source("coco", tmp_path, split="all")
    objects = {p.stem: o for p, o in source.objects(1)}
    assert sorted(objects) == ["a", "c"]  # "a" from the first folder only
    assert [name for name, _ in objects["a"]] == ["dog"] and objects["a"][0][1].sum() == 100
    assert objects["c"][0][0] == "person" and objects["c"][0][1].shape == (20, 20)
    assert sorted(source.classes.values()) == ["dog", "person"]


def test_splits_partition_and_limit_spreads(tmp_path):
    horse = tmp_path / "weizmann_horse" / "weizmann_horse_db"
    (horse / "figure_ground").mkdir(parents=True)
    for i in range(40):
        _photo(horse / "rgb" / f"horse{i:03d}.jpg", (8, 8))
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(horse / "figure_ground" / f"horse{i:03d}.jpg")
    train = {p.stem for p in open_extra_source("horse", tmp_path, "train").image_paths}
    val = {p.stem for p in open_extra_source("horse", tmp_path, "val").image_paths}
    assert val and not train & val and len(train | val) == 40
    assert all(split_of(stem) == "val" for stem in val)
    limited = [p.stem for p in open_extra_source("horse", tmp_path, "train", limit=3).image_paths]
    ordered = sorted(train)
    assert limited == [ordered[0], ordered[round((len(ordered) - 1) / 2)], ordered[-1]]


def test_prompt_mask_dataset_reads_extra_sources(tmp_path):
    human = tmp_path / "human_seg"
    (human / "Ground_Truth").mkdir(parents=True)
    for i in range(12):
        _photo(human / "Training_Images" / f"{i}.jpg", (16, 16))
        mask = np.zeros((16, 16), np.uint8)
        mask[4:12, 4:12] = 255
        Image.fromarray(mask).save(human / "Ground_Truth" / f"{i}.png")
    ds = PromptMaskDataset(sources=("human",), split="val", extra_root=tmp_path, min_area=10)
    assert len(ds) == sum(split_of(str(i)) == "val" for i in range(12)) > 0
    assert ds[0].source == "human" and ds[0].class_name == "person" and ds[0].mask.sum() == 64
    with pytest.raises(DatasetError, match="extra data folder"):
        PromptMaskDataset(sources=("human",))
    with pytest.raises(DatasetError, match="unknown source"):
        PromptMaskDataset(sources=("nope",), extra_root=tmp_path)
    with pytest.raises(DatasetError, match="none of"):
        open_extra_source("pets", tmp_path)
    assert set(EXTRA_FOLDERS) == {"bsds", "ccp", "horse", "human", "feral_cat", "pets", "coco"}
