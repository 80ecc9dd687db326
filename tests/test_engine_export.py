"""Data engine import/export: COCO both ways (lossless round trip), YOLO-seg and PNG masks out."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy.ndimage import binary_fill_holes

from zeroseg.engine import NewAnnotation, Source, Status, Store, export
from zeroseg.engine.export import (
    UNLABELLED,
    export_coco,
    export_png_masks,
    export_yolo,
    import_coco,
    mask_to_polygons,
)
from zeroseg.engine.masks import canonical_rle
from zeroseg.errors import DatasetError, ImageReadError, OutputError
from zeroseg.io import mask_to_rle

SIZES = {"one.png": (48, 32), "two/two.png": (30, 40)}  # file -> (width, height)


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "data"
    for name, (width, height) in SIZES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), "gray").save(folder / name)
    return folder


def _blobs(rng: np.random.Generator, height: int, width: int, holes: bool = False) -> np.ndarray:
    """A random mask of a few rectangles and single pixels (optionally with a hole punched in)."""
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(3):
        y, x = rng.integers(0, height - 4), rng.integers(0, width - 4)
        mask[y : y + rng.integers(2, 12), x : x + rng.integers(2, 12)] = True
    mask[rng.integers(0, height, 3), rng.integers(0, width, 3)] = True
    if holes:
        mask[5:14, 5:14] = True
        mask[8:11, 8:11] = False
    return mask


def _rasterise(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)


def _coco_file(root: Path) -> tuple[Path, dict]:
    """A COCO file with compressed RLE, uncompressed (crowd) RLE and polygon annotations."""
    rng = np.random.default_rng(3)
    (w1, h1), (w2, h2) = SIZES["one.png"], SIZES["two/two.png"]
    rle = mask_to_rle(_blobs(rng, h1, w1))
    runs = _runs(_blobs(rng, h2, w2))
    coco = {
        "images": [
            {"id": 7, "file_name": "one.png", "width": w1, "height": h1},
            {"id": 9, "file_name": "two/two.png", "width": w2, "height": h2},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "segmentation": rle, "area": float(mask_utils.area(
                {"size": rle["size"], "counts": rle["counts"].encode()})), "bbox": [1.0, 2.0, 3.0, 4.0], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 9, "segmentation": [[2.5, 3.1, 20.7, 4.2, 11.3, 25.9],
                [30.0, 1.0, 40.0, 1.0, 40.0, 9.0, 30.0, 9.0]], "area": 231.7, "bbox": [2.5, 1.0, 37.5, 24.9],
             "iscrowd": 0},
            {"id": 3, "image_id": 9, "category_id": 1, "segmentation": {"size": [h2, w2], "counts": runs},
             "area": 120.0, "bbox": [0.0, 0.0, 10.0, 12.0], "iscrowd": 1},
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "human"},
            {"id": 5, "name": "car", "supercategory": "vehicle"},
            {"id": 9, "name": "dog", "supercategory": "animal"},
            {"id": 12, "name": "unused", "supercategory": "none"},
        ],
    }  # fmt: skip
    path = root / "instances.json"
    path.write_text(json.dumps(coco))
    return path, coco


def _runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major runs, starting with background)."""
    flat = mask.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def _by_file(coco: dict) -> dict[str, list[dict]]:
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    out: dict[str, list[dict]] = {name: [] for name in files.values()}
    for ann in sorted(coco["annotations"], key=lambda a: a["id"]):
        out[files[ann["image_id"]]].append({**ann, "category": names[ann["category_id"]]})
    return out


# --- masks --------------------------------------------------------------------------------
def test_canonical_rle_matches_pycocotools():
    rng = np.random.default_rng(0)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        mask = rng.random((height, width)) < [0.0, 0.02, 0.5, 1.0][trial % 4]
        reference = mask_to_rle(mask)
        assert canonical_rle(reference, height, width) == reference
        assert canonical_rle(mask, height, width) == reference
        assert canonical_rle({"size": [height, width], "counts": _runs(mask)}, height, width) == reference


def test_polygons_rasterise_back_to_the_mask_except_holes():
    rng = np.random.default_rng(1)
    for trial in range(20):
        mask = _blobs(rng, 37, 53, holes=trial % 2 == 1)
        polygons = mask_to_polygons(mask)
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
        assert np.array_equal(_rasterise(polygons, 37, 53), binary_fill_holes(mask))
    assert mask_to_polygons(np.zeros((4, 4), dtype=bool)) == []


# --- COCO ---------------------------------------------------------------------------------
def test_coco_round_trip_is_lossless(store, root, tmp_path):
    path, original = _coco_file(root)
    done = import_coco(store, path, "ds", author="importer")
    added = done.added
    assert len(added) == 3 and {a.author for a in added} == {"importer"} and done.skipped == 0
    assert {a.source for a in added} == {Source.MANUAL}  # a file from elsewhere: no scores, drawn by people
    assert all(a.predicted_iou is a.label_score is a.model_name is None for a in added)
    assert store.get_dataset("ds").root == root.resolve()
    out = export_coco(store, "ds", tmp_path / "out" / "export.json")
    exported = json.loads(out.read_text())

    assert [(c["id"], c["name"], c["supercategory"]) for c in exported["categories"]] == [
        (c["id"], c["name"], c["supercategory"]) for c in original["categories"]
    ]
    key = lambda image: (image["file_name"], image["width"], image["height"])
    assert sorted(map(key, exported["images"])) == sorted(map(key, original["images"]))
    reference = COCO(str(path))
    before, after = _by_file(original), _by_file(exported)
    for file_name, anns in before.items():
        assert len(after[file_name]) == len(anns)
        for old, new in zip(anns, after[file_name]):
            for field in ("category", "bbox", "area", "iscrowd"):
                assert new[field] == old[field], field
            expected = reference.annToRLE(reference.anns[old["id"]])  # pycocotools' own reading
            counts = expected["counts"]
            assert new["segmentation"] == {
                "size": list(expected["size"]),
                "counts": counts if isinstance(counts, str) else counts.decode(),
            }
    assert exported["annotations"][0]["segmentation"] == original["annotations"][0]["segmentation"]  # exact

    # a second round trip changes nothing but ids
    import_coco(store, out, "again", root=root)
    again = json.loads(export_coco(store, "again", tmp_path / "again.json").read_text())
    strip = lambda anns: [{k: v for k, v in a.items() if k not in ("id", "image_id")} for a in anns]
    assert strip(again["annotations"]) == strip(exported["annotations"])
    assert again["categories"] == exported["categories"]


def test_coco_round_trip_keeps_scores_and_provenance(store, root, tmp_path):
    store.create_dataset("ds", root, categories=[{"id": 4, "name": "cup"}])
    one, two = store.add_images("ds")
    rng = np.random.default_rng(8)
    made = store.add_annotations([
        NewAnnotation(one.id, _blobs(rng, one.height, one.width), label="cup", label_score=0.75, predicted_iou=0.875,
                      stability_score=0.96875, source=Source.AUTO, model_name="lite", model_version="2"),
        NewAnnotation(one.id, _blobs(rng, one.height, one.width), predicted_iou=0.5, source=Source.ASSISTED,
                      model_name="vit_b"),
        NewAnnotation(two.id, _blobs(rng, two.height, two.width), label="saucer"),
    ])  # fmt: skip
    path = export_coco(store, "ds", tmp_path / "scores.json")
    exported = json.loads(path.read_text())
    first = next(a for a in exported["annotations"] if a["id"] == made[0].id)
    assert {k: first[k] for k in ("score", "stability_score", "label_score", "source", "model_name", "model_version")} == {
        "score": 0.875, "stability_score": 0.96875, "label_score": 0.75, "source": "auto", "model_name": "lite",
        "model_version": "2"}  # fmt: skip
    manual = next(a for a in exported["annotations"] if a["id"] == made[2].id)
    assert manual["source"] == "manual" and "score" not in manual and "label_score" not in manual
    # the dataset's category keeps its id, the new labels get the next ones in name order
    assert [(c["id"], c["name"]) for c in exported["categories"]] == [(4, "cup"), (5, UNLABELLED), (6, "saucer")]

    done = import_coco(store, path, "copy", root=root)
    assert len(done.added) == 3 and done.skipped == 0
    fields = ("rle", "bbox", "area", "iscrowd", "label", "label_score", "predicted_iou", "stability_score",
              "source", "model_name", "model_version")  # fmt: skip
    for old, new in zip(made, done.added):
        assert {f: getattr(new, f) for f in fields} == {f: getattr(old, f) for f in fields}
    assert done.added[1].label is None  # "object" reads back as no label
    again = json.loads(export_coco(store, "copy", tmp_path / "again.json").read_text())
    strip = lambda anns: [{k: v for k, v in a.items() if k not in ("id", "image_id")} for a in anns]  # noqa: E731
    assert strip(again["annotations"]) == strip(exported["annotations"])


def test_coco_import_checks_the_scores(store, root, tmp_path):
    path, coco = _coco_file(root)
    coco["annotations"][0].update(score=0.9, source="auto", model_name="lite", point_coords="junk")
    coco["annotations"][1].update(source="somebody")  # unknown to the store: the import's own source
    path.write_text(json.dumps(coco))
    first, second, _ = import_coco(store, path, "ds").added
    assert (first.predicted_iou, first.source, first.model_name) == (0.9, Source.AUTO, "lite")
    assert second.source == Source.MANUAL
    for key, value in (("score", "high"), ("label_score", float("nan")), ("model_version", 3)):
        bad = json.loads(json.dumps(coco))
        bad["annotations"][0][key] = value
        path.write_text(json.dumps(bad))
        with pytest.raises(DatasetError, match=f"annotation 1: '{key}' must be"):
            import_coco(store, path, "other")


def test_coco_polygon_export(store, root, tmp_path):
    store.create_dataset("ds", root)
    one, two = store.add_images("ds")
    rng = np.random.default_rng(5)
    masks = [_blobs(rng, one.height, one.width, holes=True), _blobs(rng, one.height, one.width)]
    store.add_annotations([NewAnnotation(one.id, m, label="cell") for m in masks])
    crowd = store.add_annotation(NewAnnotation(two.id, _blobs(rng, two.height, two.width), iscrowd=True))
    path = export_coco(store, "ds", tmp_path / "poly.json", polygons=True)
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[one.id]))
    for ann, mask in zip(anns, masks):
        assert isinstance(ann["segmentation"], list)
        assert np.array_equal(coco.annToMask(ann).astype(bool), binary_fill_holes(mask))
    assert coco.anns[crowd.id]["segmentation"] == crowd.rle  # crowd regions stay RLE
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert names[coco.anns[crowd.id]["category_id"]] == UNLABELLED


def test_exports_take_accepted_live_annotations_by_default(store, root, tmp_path):
    store.create_dataset("ds", root)
    image = store.add_images("ds")[0]
    mask = np.zeros((image.height, image.width), dtype=bool)
    mask[2:6, 3:9] = True
    kept, proposed, deleted = store.add_annotations(
        [NewAnnotation(image.id, mask, label=name, status=status) for name, status in
         (("a", Status.ACCEPTED), ("b", Status.PROPOSED), ("c", Status.ACCEPTED))]
    )  # fmt: skip
    store.delete_annotation(deleted.id)
    coco = json.loads(export_coco(store, "ds", tmp_path / "a.json").read_text())
    assert [a["id"] for a in coco["annotations"]] == [kept.id]
    assert [c["name"] for c in coco["categories"]] == ["a"]
    both = json.loads(export_coco(store, "ds", tmp_path / "b.json", status=None).read_text())
    assert sorted(a["id"] for a in both["annotations"]) == [kept.id, proposed.id]


def test_coco_export_is_checked_and_atomic(store, root, tmp_path, monkeypatch):
    path, _ = _coco_file(root)
    import_coco(store, path, "ds")
    target = tmp_path / "out.json"
    monkeypatch.setattr(export, "_segmentation", lambda ann, polygons: {"size": ann.rle["size"], "counts": "0"})
    with pytest.raises(OutputError, match="pycocotools"):
        export_coco(store, "ds", target)
    assert list(tmp_path.glob("*out*")) == []  # no file, no temporary left behind
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError):
        export_yolo(store, "ds", tmp_path / "file" / "yolo")


def test_coco_import_errors(store, root, tmp_path):
    _, coco = _coco_file(root)

    def attempt(change, error=DatasetError, match=None):
        data = json.loads(json.dumps(coco))
        change(data)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data))
        with pytest.raises(error, match=match):
            import_coco(store, bad, "ds", root=root)

    attempt(lambda d: d["annotations"][0]["segmentation"].update(counts="52"), match="annotation 1: RLE runs")
    attempt(lambda d: d["annotations"][1].update(segmentation=[[1, 2, "x", 4, 5, 6]]), match="polygon")
    attempt(lambda d: d["annotations"][1].update(segmentation=None), match="no segmentation")
    attempt(lambda d: d["annotations"][1].update(bbox="abcd"), match="bbox")
    attempt(lambda d: d["annotations"][1].update(area="big"), match="area")
    attempt(lambda d: d["annotations"][0].update(category_id=77), match="no category")
    attempt(lambda d: d["annotations"][0].update(image_id=77), match="no image")
    attempt(lambda d: d["images"][0].pop("width"), match="width")
    attempt(lambda d: d.pop("images"), match="'images'")
    attempt(lambda d: d["categories"].append({"id": "x", "name": "y"}), match="categories")
    with pytest.raises(KeyError):  # nothing above created the dataset
        {d.name: d for d in store.datasets()}["ds"]
    attempt(lambda d: d["images"][0].update(width=47), match="does not fit a 47x32 image")
    attempt(lambda d: d.update(annotations=[]) or d["images"][0].update(width=47), match="47x32 in the file")
    attempt(lambda d: d["images"][0].update(file_name="missing.png"), ImageReadError, "not found")
    assert all(not store.annotations_for(i.id, include_deleted=True) for i in store.images("ds"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DatasetError, match="cannot read"):
        import_coco(store, tmp_path / "broken.json", "ds")


def test_importing_the_same_file_twice_adds_it_once(store, root):
    path, _ = _coco_file(root)
    count = lambda: sum(len(store.annotations_for(i.id)) for i in store.images("ds"))  # noqa: E731
    first = import_coco(store, path, "ds")
    assert (len(first.added), first.skipped, len(first.images), count()) == (3, 0, 2, 3)
    second = import_coco(store, path, "ds")
    assert (second.added, second.skipped, count()) == ([], 3, 3)
    assert all(len(store.history(image_id=i.id)) == len(store.annotations_for(i.id)) for i in store.images("ds"))

    store.delete_annotation(first.added[0].id)  # a deleted mask comes back; a relabelled one is new
    store.update_annotation(first.added[1].id, label="cat")
    third = import_coco(store, path, "ds")
    assert sorted(a.label for a in third.added) == ["car", "dog"] and third.skipped == 1 and count() == 4


def test_importing_a_huge_declared_image_is_refused_before_any_mask_work(store, root, tmp_path):
    path, coco = _coco_file(root)
    coco["images"][0].update(width=10**6, height=10**6)
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="too large"):
        import_coco(store, path, "ds")


# --- YOLO-seg and PNG ---------------------------------------------------------------------
def _two_images_with_masks(store, root):
    store.create_dataset("ds", root)
    one, two = store.add_images("ds")
    big = np.zeros((one.height, one.width), dtype=bool)
    big[4:20, 4:30] = True
    small = np.zeros_like(big)
    small[8:12, 10:14] = True
    split = np.zeros((one.height, one.width), dtype=bool)
    split[25:28, 2:5] = split[25:30, 40:46] = True
    anns = store.add_annotations(
        [NewAnnotation(one.id, big, label="table"), NewAnnotation(one.id, small, label="cup"),
         NewAnnotation(one.id, split)]
    )  # fmt: skip
    return one, two, anns


def test_yolo_export(store, root, tmp_path):
    one, _, anns = _two_images_with_masks(store, root)
    out = export_yolo(store, "ds", tmp_path / "yolo")
    names = (out / "classes.txt").read_text().splitlines()
    assert names == ["cup", UNLABELLED, "table"]  # new labels in name order
    assert (out / "labels" / "two" / "two.txt").read_text() == ""  # an image without masks
    lines = (out / "labels" / "one.txt").read_text().splitlines()
    assert [names[int(line.split()[0])] for line in lines] == ["table", "cup", UNLABELLED, UNLABELLED]
    for line, ann in zip(lines, [anns[0], anns[1], anns[2], anns[2]]):
        values = np.array(line.split()[1:], dtype=np.float64)
        assert values.min() >= 0.0 and values.max() <= 1.0
        polygon = (values.reshape(-1, 2) * [one.width, one.height]).ravel().tolist()
        assert not (_rasterise([polygon], one.height, one.width) & ~ann.mask()).any()
    pieces = [(np.array(l.split()[1:], dtype=float).reshape(-1, 2) * [one.width, one.height]).ravel().tolist()
              for l in lines[2:]]  # fmt: skip
    assert np.array_equal(_rasterise(pieces, one.height, one.width), anns[2].mask())  # both pieces


def test_png_export(store, root, tmp_path):
    one, _, anns = _two_images_with_masks(store, root)
    out = export_png_masks(store, "ds", tmp_path / "png")
    names = (out / "classes.txt").read_text().splitlines()
    assert names == ["background", "cup", UNLABELLED, "table"]
    semantic = np.asarray(Image.open(out / "semantic" / "one.png"))
    instances = np.asarray(Image.open(out / "instances" / "one.png"))
    assert semantic.shape == instances.shape == (one.height, one.width)
    assert semantic.dtype == instances.dtype == np.uint8
    expected_semantic = np.zeros_like(semantic)
    expected_instances = np.zeros_like(instances)
    for k, (ann, name) in enumerate(zip(anns, ["table", "cup", UNLABELLED])):  # no overlap but cup on table
        expected_semantic[ann.mask()] = names.index(name)
        expected_instances[ann.mask()] = k + 1
    assert np.array_equal(semantic, expected_semantic)  # the small cup stays on top of the table
    assert np.array_equal(instances, expected_instances)
    assert not np.asarray(Image.open(out / "semantic" / "two" / "two.png")).any()


def test_outputs_of_two_images_must_not_collide(store, root, tmp_path):
    Image.new("RGB", (48, 32)).save(root / "one.jpg")
    store.create_dataset("ds", root)
    store.add_images("ds")
    with pytest.raises(OutputError, match="one.png"):
        export_png_masks(store, "ds", tmp_path / "png")


# --- real data ----------------------------------------------------------------------------
def test_round_trip_on_coco128_polygons(data_dir, tmp_path):
    """Real COCO polygons (coco128-seg, YOLO format) -> COCO file -> store -> COCO RLE / polygons."""
    source = data_dir / "coco128_seg"
    with (source / "classes.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    categories = [{"id": int(r["coco_category_id"]), "name": r["name"], "supercategory": ""} for r in rows]
    images, annotations = [], []
    for label_file in sorted((source / "labels" / "train2017").glob("*.txt"))[:4]:
        file_name = f"train2017/{label_file.stem}.jpg"
        width, height = Image.open(source / "images" / file_name).size
        images.append({"id": len(images) + 1, "file_name": file_name, "width": width, "height": height})
        for line in label_file.read_text().splitlines():
            cls, *coords = line.split()
            xy = np.array(coords, dtype=np.float64).reshape(-1, 2) * [width, height]
            annotations.append({"id": len(annotations) + 1, "image_id": len(images), "iscrowd": 0,
                                "category_id": categories[int(cls)]["id"], "segmentation": [xy.ravel().tolist()],
                                "bbox": [0.0, 0.0, 1.0, 1.0], "area": 1.0})  # fmt: skip
    coco_path = tmp_path / "coco128.json"
    coco_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        import_coco(store, coco_path, "coco128", root=source / "images")
        rle_out = COCO(str(export_coco(store, "coco128", tmp_path / "rle.json")))
        poly_out = COCO(str(export_coco(store, "coco128", tmp_path / "poly.json", polygons=True)))
    reference = COCO(str(coco_path))
    assert len(rle_out.anns) == len(poly_out.anns) == len(reference.anns) > 10
    for ref, rle, poly in zip(reference.anns.values(), rle_out.anns.values(), poly_out.anns.values()):
        truth = reference.annToMask(ref).astype(bool)
        assert np.array_equal(rle_out.annToMask(rle).astype(bool), truth)
        assert np.array_equal(poly_out.annToMask(poly).astype(bool), binary_fill_holes(truth))
        assert rle_out.cats[rle["category_id"]]["name"] == reference.cats[ref["category_id"]]["name"]
