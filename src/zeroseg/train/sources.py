"""Readers of the extra labelled sets for the lite head: public GitHub copies of segmentation datasets.

Each source is a folder under an *extra data* root (``recipes/get_lite_data.sh`` extracts them there;
it is never part of the repository). :func:`open_extra_source` lists one source's images and
:meth:`ExtraSource.objects` yields ``(image path, [(class name, bool mask)])`` per image, the form of
``datasets._source_objects``, so :class:`~zeroseg.train.datasets.PromptMaskDataset` trains on them like
on ``../shared/data``.

Splits: an image is *val* when the CRC-32 of its key (file stem, or the group of an augmented copy) is
divisible by :data:`VAL_EVERY`; every other image is *train*. The rule needs no list, is stable when
files are added, and puts a BSDS photo in the same split for its region and its salient-object masks.

BSDS photos that the GrabCut or Berkeley benchmarks use are never read (:func:`benchmark_ids`).
"""
from __future__ import annotations

import contextlib
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from zeroseg.errors import DatasetError
from zeroseg.io import polygon_to_mask

VAL_EVERY = 5
"""One image in :data:`VAL_EVERY` (by key hash) is the val split of every extra source."""

EXTRA_FOLDERS: dict[str, tuple[str, ...]] = {
    "bsds": ("bsds500",),  # + "sod" (salient objects of the same photos), when present
    "ccp": ("ccp",),
    "horse": ("weizmann_horse",),
    "human": ("human_seg",),
    "feral_cat": ("feral_cat",),
    "pets": ("pets_sample", "pets_simon"),
    "coco": ("coco_mini", "coco_tiny"),  # their train2017 photos only: val2017 is validation (recipes/coco_val.py)
}
"""Extra source name -> folders under the extra data root (the layout ``recipes/get_lite_data.sh`` writes)."""

BSDS_MIN_SHARE = 0.005
"""BSDS regions smaller than this share of the photo are dropped: annotators split texture into specks."""

BSDS_DUPLICATE_IOU = 0.8
"""Regions of different BSDS annotators overlapping at least this much are one object."""

ASPECT_TOLERANCE = 0.02
"""A mask stored at another size than its photo is resized when the aspect ratios agree this well."""

Objects = list[tuple[str, np.ndarray]]


def split_of(key: str) -> str:
    """``"val"`` or ``"train"``: the split of an image key (deterministic, see the module docstring)."""
    return "val" if zlib.crc32(key.encode("utf-8")) % VAL_EVERY == 0 else "train"


def benchmark_ids(data: Path) -> frozenset[str]:
    """Numeric file stems under ``data/grabcut`` and ``data/berkeley``: BSDS photo ids of the benchmarks.

    Raises when neither folder exists, since then the exclusion could not be checked.
    """
    folders = [data / name for name in ("grabcut", "berkeley") if (data / name).is_dir()]
    if not folders:
        raise DatasetError(f"{data} has neither grabcut/ nor berkeley/: cannot exclude their BSDS photos")
    return frozenset(p.stem for folder in folders for p in folder.rglob("*") if p.is_file() and p.stem.isdigit())


@dataclass(frozen=True)
class ExtraItem:
    key: str  # split key (file stem or group)
    image: Path
    read: Callable[[int], Objects]  # min_area -> objects


class ExtraSource:
    """One extra source's images of one split; ``classes`` (id -> name) lists the class names it uses."""

    def __init__(self, name: str, items: list[ExtraItem], classes: Iterable[str]) -> None:
        self.name = name
        self.items = items
        self.classes = dict(enumerate(sorted(set(classes))))
        self.image_paths = [item.image for item in items]

    def __len__(self) -> int:
        return len(self.items)

    def objects(self, min_area: int) -> Iterator[tuple[Path, Objects]]:
        """``(image path, [(class name, mask)])`` per image, objects of at least ``min_area`` pixels."""
        for item in self.items:
            yield item.image, [(n, m) for n, m in item.read(min_area) if m.sum() >= min_area]


def open_extra_source(
    name: str, root: Path | str, split: str = "train", limit: int | None = None, data: Path | None = None
) -> ExtraSource:
    """Open extra source ``name`` under ``root`` for ``split`` (``train``, ``val`` or ``all``).

    ``data`` is the shared data folder whose benchmarks the BSDS source must avoid (default
    ``zeroseg.data.data_root()``). ``limit`` keeps that many images of the split spread evenly over
    its sorted keys (the first ones would be one pet breed, one clothing shoot).
    """
    if name not in EXTRA_FOLDERS:
        raise DatasetError(f"unknown extra source {name!r}; known: {sorted(EXTRA_FOLDERS)}")
    if split not in ("train", "val", "all"):
        raise DatasetError(f"unknown split {split!r}; use 'train', 'val' or 'all'")
    root = Path(root)
    folders = [root / f for f in EXTRA_FOLDERS[name] if (root / f).is_dir()]
    if not folders:
        raise DatasetError(f"extra source {name!r}: none of {list(EXTRA_FOLDERS[name])} under {root}")
    if name == "bsds":
        if data is None:
            from zeroseg.data import data_root

            data = data_root()
        items, classes = _bsds(folders[0], root / "sod", benchmark_ids(Path(data)))
    else:
        items, classes = _READERS[name](folders)
    if not items:
        raise DatasetError(f"extra source {name!r} under {root} has no labelled images")
    items = sorted(items, key=lambda item: item.key)
    if split != "all":
        items = [item for item in items if split_of(item.key) == split]
    if limit is not None and limit < len(items):
        items = [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
    return ExtraSource(name, items, classes)


# --- per-source readers -----------------------------------------------------------------------------
def _bsds(folder: Path, sod: Path, excluded: frozenset[str]) -> tuple[list[ExtraItem], list[str]]:
    """BSDS500 regions of every annotator (near-duplicates merged) + the SOD salient-object mask."""
    data = folder / "BSR" / "BSDS500" / "data"
    if not data.is_dir():
        data = folder  # a folder holding images/ and groundTruth/ directly
    items = []
    for image in sorted((data / "images").rglob("*.jpg")):
        if image.stem in excluded:
            continue
        truth = data / "groundTruth" / image.parent.name / f"{image.stem}.mat"
        if not truth.is_file():
            continue
        salient = sod / "tools" / "GroundTruth" / "SOD" / f"{image.stem}.png"
        if not salient.is_file():
            salient = sod / f"{image.stem}.png"
        items.append(ExtraItem(image.stem, image, _bsds_reader(image, truth, salient)))
    return items, ["region", "salient object"]


def _bsds_reader(image: Path, truth: Path, salient: Path) -> Callable[[int], Objects]:
    def read(min_area: int) -> Objects:
        from scipy.io import loadmat  # BSDS ground truth is MATLAB files

        size = _image_size(image)
        try:
            annotations = loadmat(truth)["groundTruth"][0]
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"cannot read BSDS ground truth {truth}: {e}") from e
        regions: list[np.ndarray] = []
        for annotation in annotations:
            labels = _fit(np.asarray(annotation["Segmentation"][0, 0]), size, truth, rotate_only=True)
            for label in np.unique(labels):
                mask = labels == label
                if mask.mean() < BSDS_MIN_SHARE or mask.sum() < min_area:
                    continue
                if not any(_iou(mask, kept) >= BSDS_DUPLICATE_IOU for kept in regions):
                    regions.append(mask)
        objects: Objects = [("region", m) for m in regions]
        if salient.is_file():
            objects.append(("salient object", _fit(_read_gray(salient) > 0, size, salient, rotate_only=True)))
        return objects

    return read


def _ccp(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """Clothing Co-Parsing: the person (every labelled pixel) and each garment's connected components."""
    folder = folders[0]
    from scipy.io import loadmat

    try:
        names = [str(entry[0]) for entry in loadmat(folder / "label_list.mat")["label_list"][0]]
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"cannot read {folder / 'label_list.mat'}: {e}") from e
    items = []
    for truth in sorted((folder / "annotations" / "pixel-level").glob("*.mat")):
        image = folder / "photos" / f"{truth.stem}.jpg"
        if image.is_file():
            items.append(ExtraItem(truth.stem, image, _ccp_reader(image, truth, names)))
    return items, ["person", *names[1:]]


def _ccp_reader(image: Path, truth: Path, names: list[str]) -> Callable[[int], Objects]:
    def read(min_area: int) -> Objects:
        from scipy.io import loadmat

        try:
            labels = np.asarray(loadmat(truth)["groundtruth"])
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"cannot read CCP annotation {truth}: {e}") from e
        labels = _fit(labels, _image_size(image), truth, rotate_only=True)
        objects: Objects = [("person", labels != 0)]
        for label in np.unique(labels):
            if label == 0 or label >= len(names):
                continue
            objects += [(names[label], m) for m in _components(labels == label, min_area)]
        return objects

    return read


def _horse(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """Weizmann horses: ``rgb/horseNNN.jpg`` + ``figure_ground/horseNNN.jpg`` (a smaller JPEG mask)."""
    db = folders[0] / "weizmann_horse_db" if (folders[0] / "weizmann_horse_db").is_dir() else folders[0]
    return _paired(db / "rgb", db / "figure_ground", "horse", ".jpg"), ["horse"]


def _human(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """Human-Segmentation-Dataset: ``Training_Images/N.jpg`` + ``Ground_Truth/N.png`` person masks."""
    return _paired(folders[0] / "Training_Images", folders[0] / "Ground_Truth", "person", ".png"), ["person"]


def _paired(images: Path, masks: Path, class_name: str, mask_suffix: str) -> list[ExtraItem]:
    items = []
    for image in _images(images):
        mask = masks / f"{image.stem}{mask_suffix}"
        if mask.is_file():
            items.append(ExtraItem(image.stem, image, _binary_reader(image, mask, class_name)))
    return items


def _binary_reader(image: Path, mask: Path, class_name: str) -> Callable[[int], Objects]:
    def read(min_area: int) -> Objects:
        return [(class_name, _fit(_read_gray(mask) >= 128, _image_size(image), mask))]

    return read


def _pets(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """Oxford-IIIT Pet images with trimaps (1 pet, 2 background, 3 border: the pet is 1 and 3).

    Breeds spelled with a capital are cats, the others dogs (the dataset's convention). An image in
    several copies is read once.
    """
    items: dict[str, ExtraItem] = {}
    for folder in folders:
        base = folder / "data" if (folder / "data" / "images").is_dir() else folder
        trimap_dirs = [d for d in (base / "trimaps", base / "annotations" / "trimaps") if d.is_dir()]
        for image in _images(base / "images"):
            trimap = next((d / f"{image.stem}.png" for d in trimap_dirs if (d / f"{image.stem}.png").is_file()), None)
            if trimap is not None and image.stem not in items:
                name = "cat" if image.stem[:1].isupper() else "dog"
                items[image.stem] = ExtraItem(image.stem, image, _trimap_reader(image, trimap, name))
    return list(items.values()), ["cat", "dog"]


def _trimap_reader(image: Path, trimap: Path, class_name: str) -> Callable[[int], Objects]:
    def read(min_area: int) -> Objects:
        values = _read_gray(trimap)
        return [(class_name, _fit((values == 1) | (values == 3), _image_size(image), trimap))]

    return read


def _feral_cat(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """Roboflow feral-cat export (YOLO-seg polygons, 640x640): one image per source photo.

    The export holds up to 3 augmented copies of each photo (exposure, noise) named
    ``groupNNNN_<ext>.rf.<hash>.jpg``; the first copy (sorted) of each group is kept, whatever its split.
    """
    items: dict[str, ExtraItem] = {}
    for image in sorted(folders[0].rglob("*.jpg"), key=lambda p: p.name):
        label = image.parent.parent / image.parent.name.replace("images", "labels", 1) / f"{image.stem}.txt"
        group = image.name.split("_", 1)[0]
        if not label.is_file() or group in items:
            continue

        def read(min_area: int, image: Path = image, label: Path = label) -> Objects:
            width, height = _image_size(image)[::-1]
            objects: Objects = []
            for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    coords = np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2)
                except ValueError:
                    raise DatasetError(f"{label}:{number}: expected 'class x1 y1 x2 y2 ...'") from None
                if len(coords) >= 3:
                    objects.append(("cat", polygon_to_mask(coords * (width, height), height, width)))
            return objects

        items[group] = ExtraItem(group, image, read)
    return list(items.values()), ["cat"]


class CocoJson:
    """A COCO instances JSON and its image folder, read with pycocotools; crowd regions are left out (they
    are not one object), and so are photos with no other object."""

    def __init__(self, annotations: Path | str, images: Path | str) -> None:
        from pycocotools.coco import COCO

        self.images = Path(images)
        if not self.images.is_dir():
            raise DatasetError(f"image folder {self.images} not found")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
                self.coco = COCO(str(annotations))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"cannot read COCO annotations {annotations}: {e}") from e
        categories = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        self.classes = [c["name"] for c in categories]
        self._names = {c["id"]: c["name"] for c in categories}
        self.image_ids = [i for i in sorted(self.coco.getImgIds()) if self._annotations(i)]

    def _annotations(self, image_id: int) -> list[dict[str, Any]]:
        return self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=False))

    def image_path(self, image_id: int) -> Path:
        return self.images / self.coco.loadImgs([image_id])[0]["file_name"]

    def objects(self, image_id: int) -> Objects:
        """``[(class name, bool mask)]`` of one photo's objects, at the size its annotations give."""
        annotations = self._annotations(image_id)
        return [(self._names[a["category_id"]], self.coco.annToMask(a).astype(bool)) for a in annotations]


def _coco(folders: list[Path]) -> tuple[list[ExtraItem], list[str]]:
    """COCO 2017 subsets: ``annotations/instances_train2017.json`` + ``train2017/`` of each folder (their
    val2017 photos are never read here); a photo in two folders is read once."""
    items: dict[str, ExtraItem] = {}
    classes: list[str] = []
    for folder in folders:
        coco = CocoJson(folder / "annotations" / "instances_train2017.json", folder / "train2017")
        classes += coco.classes
        for image_id in coco.image_ids:
            path = coco.image_path(image_id)
            if path.stem not in items and path.is_file():
                items[path.stem] = ExtraItem(path.stem, path, lambda min_area, c=coco, i=image_id: c.objects(i))
    return list(items.values()), classes


_READERS: dict[str, Callable[[list[Path]], tuple[list[ExtraItem], list[str]]]] = {
    "ccp": _ccp,
    "horse": _horse,
    "human": _human,
    "feral_cat": _feral_cat,
    "pets": _pets,
    "coco": _coco,
}


# --- helpers ------------------------------------------------------------------------------------------
def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header."""
    try:
        with Image.open(path) as file:
            return file.size[1], file.size[0]
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e


def _read_gray(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as file:
            values = np.array(file)
    except OSError as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e
    if values.dtype == bool:
        return values.astype(np.uint8) * 255
    return values[..., 0] if values.ndim == 3 else values


def _fit(values: np.ndarray, size: tuple[int, int], path: Path, rotate_only: bool = False) -> np.ndarray:
    """A label or mask array brought to the photo's (height, width).

    Stored transposed (BSDS keeps some portrait photos rotated a quarter turn against their labels): the
    labels are turned to the photo. Stored smaller with the same aspect ratio: a mask is resized
    (nearest for labels, area-weighted then thresholded for masks).
    """
    if values.shape == size:
        return values
    if values.shape == size[::-1]:
        return np.ascontiguousarray(np.rot90(values, -1))
    h, w = values.shape
    if rotate_only or abs((w / h) / (size[1] / size[0]) - 1) > ASPECT_TOLERANCE:
        raise DatasetError(f"{path}: labels are {values.shape}, the photo is {size}")
    if values.dtype == bool:
        resized = cv2.resize(values.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        return resized >= 0.5
    return cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _components(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [components == k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_area]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0
