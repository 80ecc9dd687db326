"""Readers of the labelled data in ``../shared/data`` that the training recipes use.

Three training sources, each a folder under :func:`data_root`:

* ``msrc21`` and ``camvid``: per-pixel class maps (``split/images``, ``split/labels``, ``classes.tsv``),
  read by :class:`SemanticDataset`; :func:`object_masks_from_semantic` cuts them into object masks.
* ``coco128_seg``: instance polygons in YOLO-seg text files, read by :class:`CocoYoloSegDataset`.

:class:`PromptMaskDataset` flattens all of them into one list of object masks for training a promptable
mask model. ``grabcut`` and ``berkeley`` are evaluation sets: every reader here refuses them.
The extra sets of :mod:`zeroseg.train.sources` (BSDS500, Clothing Co-Parsing, pets, ...) join it as more
sources when an extra data folder is given.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from zeroseg.data import data_root
from zeroseg.errors import DatasetError
from zeroseg.io import mask_to_rle, polygon_to_mask, rle_to_mask
from zeroseg.train.sources import EXTRA_FOLDERS, ExtraSource, open_extra_source

VOID = 255
"""Label value of unlabelled pixels in every :class:`SemanticSample` (whatever the file uses)."""

VOID_NAMES = frozenset({"void", "ignore", "unlabelled", "unlabeled"})
"""Class names in ``classes.tsv`` that mark unlabelled pixels."""

EVALUATION_SETS = frozenset({"grabcut", "berkeley"})
"""Data folders kept for evaluation only; training must never read them."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

DEFAULT_MIN_AREA = 100
"""Objects smaller than this many pixels are dropped: too small to prompt or to learn from."""

COCO_VAL_EVERY = 4
"""Every 4th labelled image of a YOLO-seg folder (``coco128_seg``) is its val split, never trained on."""

SOURCE_FOLDERS = {"coco128": "coco128_seg", "camvid": "camvid", "msrc21": "msrc21"}
"""Training source name -> folder under the data root."""

OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    # CamVid: the bounded 'things' only. Sky, road, pavement, building and tree are street-wide stuff
    # whose connected components are mostly one region per frame; fence is a see-through barrier whose
    # components are fragments of whatever shows through, so it is left out too.
    "camvid": ("pole", "sign", "car", "pedestrian", "bicyclist"),
    # MSRC-21: all 21 usual classes (horse and mountain are dropped, as in the standard protocol). The
    # stuff classes (building, grass, tree, sky, water, road) are kept on purpose: in these object-centric
    # photos they are large coherent regions that teach the model big masks, while CamVid and COCO give
    # it small things.
    "msrc21": (
        "building", "grass", "tree", "cow", "sheep", "sky", "aeroplane", "water", "face", "car", "bicycle",
        "flower", "sign", "bird", "book", "chair", "road", "cat", "dog", "body", "boat",
    ),
}
"""Default classes cut into objects per semantic source (COCO instances are all objects already)."""


def read_classes(path: Path | str) -> dict[int, str]:
    """Read a ``classes.tsv`` (header row, id in the first column, a ``name`` column) as id -> name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DatasetError(f"cannot read class table {path}: {e}") from e
    rows = [line.split("\t") for line in lines if line.strip()]
    if not rows or "name" not in rows[0]:
        raise DatasetError(f"{path}: the header row must have a 'name' column")
    name_column = rows[0].index("name")
    classes: dict[int, str] = {}
    for line_number, row in enumerate(rows[1:], start=2):
        try:
            class_id, name = int(row[0]), row[name_column].strip()
        except (ValueError, IndexError):
            raise DatasetError(f"{path}:{line_number}: malformed row {row!r}") from None
        if not name or class_id in classes:
            raise DatasetError(f"{path}:{line_number}: empty name or repeated id {class_id}")
        classes[class_id] = name
    return classes


def object_masks_from_semantic(
    label: np.ndarray, class_ids: Iterable[int], min_area: int = DEFAULT_MIN_AREA
) -> list[tuple[int, np.ndarray]]:
    """Cut a class map into objects: 8-connected components of each class, at least ``min_area`` pixels.

    Touching instances of one class (two adjacent cars) become one object; void pixels separate objects.
    Returns ``(class_id, bool HxW mask)`` pairs, ordered by the given classes then by component.
    """
    objects = []
    for class_id in class_ids:
        binary = (label == class_id).astype(np.uint8)
        if not binary.any():
            continue
        count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        objects += [
            (class_id, components == k) for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_area
        ]
    return objects


@dataclass(frozen=True)
class SemanticSample:
    image: np.ndarray  # uint8 HxWx3 RGB
    label: np.ndarray  # int64 HxW class ids, VOID where unlabelled
    name: str


@dataclass(frozen=True)
class Instance:
    class_id: int
    class_name: str
    mask: np.ndarray  # bool HxW


@dataclass(frozen=True)
class InstanceSample:
    image: np.ndarray  # uint8 HxWx3 RGB
    instances: list[Instance]
    name: str


class SemanticDataset:
    """Images with per-pixel class maps: ``root/split/images/*``, ``root/split/labels/<stem>.png``.

    Label files hold 8-bit class ids from ``root/classes.tsv``; the row named like 'void' marks unlabelled
    pixels, which samples report as :data:`VOID`. ``classes`` maps id -> name without the void row.
    ``limit`` keeps the first images (sorted by name).
    """

    def __init__(self, root: Path | str, split: str = "train", limit: int | None = None) -> None:
        self.root = _training_root(root)
        table = read_classes(self.root / "classes.tsv")
        void_ids = [i for i, name in table.items() if name.lower() in VOID_NAMES]
        if len(void_ids) > 1:
            raise DatasetError(f"{self.root / 'classes.tsv'}: several void rows {void_ids}")
        self.void_id: int | None = void_ids[0] if void_ids else None
        self.classes = {i: name for i, name in table.items() if i != self.void_id}
        if not all(0 <= i < VOID for i in self.classes):
            raise DatasetError(f"{self.root / 'classes.tsv'}: class ids must lie in [0, {VOID})")
        self._lut = np.full(256, -1, dtype=np.int64)  # file value -> sample value, -1 = not a class
        self._lut[list(self.classes)] = list(self.classes)
        if self.void_id is not None:
            self._lut[self.void_id] = VOID
        split_dir = self.root / split
        if not split_dir.is_dir():
            splits = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise DatasetError(f"{self.root} has no split {split!r} (has {splits})")
        self.image_paths = _list_images(split_dir / "images")[:limit]
        self.label_paths = [split_dir / "labels" / f"{p.stem}.png" for p in self.image_paths]
        missing = [p.name for p in self.label_paths if not p.is_file()]
        if missing:
            raise DatasetError(f"{split_dir}: no label for {len(missing)} images, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> SemanticSample:
        image, label = _read_rgb(self.image_paths[index]), self.read_label(index)
        if image.shape[:2] != label.shape:
            raise DatasetError(f"{self.label_paths[index]}: label {label.shape} vs image {image.shape[:2]}")
        return SemanticSample(image=image, label=label, name=self.image_paths[index].stem)

    def read_label(self, index: int) -> np.ndarray:
        """The int64 HxW class map of one image (void as :data:`VOID`) without decoding the image."""
        path = self.label_paths[index]
        try:
            with Image.open(path) as file:
                raw = np.array(file)
        except OSError as e:
            raise DatasetError(f"cannot read label {path}: {e}") from e
        if raw.ndim != 2 or raw.dtype != np.uint8:
            raise DatasetError(f"{path}: expected an 8-bit class map, got {raw.dtype} {raw.shape}")
        label = self._lut[raw]
        if (label < 0).any():
            raise DatasetError(f"{path}: ids {np.unique(raw[label < 0]).tolist()} are not in classes.tsv")
        return label


class CocoYoloSegDataset:
    """Instance polygons in YOLO-seg format: ``root/images/**/<stem>.jpg`` + ``root/labels/**/<stem>.txt``.

    Each label line is ``class_idx x1 y1 x2 y2 ...`` with coordinates normalised to [0, 1] and
    ``class_idx`` a row of ``root/classes.tsv``. Images without a label file are skipped. Polygons are
    rasterised the COCO way (:func:`zeroseg.io.polygon_to_mask`).

    ``split`` picks a fixed part of the labelled images, in sorted order: ``"val"`` every
    :data:`COCO_VAL_EVERY`-th one (index 0, N, 2N, ...), ``"train"`` the rest, ``"all"`` both. No training
    step may read the val part: it is the validation set settings are tuned on.
    """

    def __init__(self, root: Path | str, limit: int | None = None, split: str = "all") -> None:
        if split not in ("all", "train", "val"):
            raise DatasetError(f"unknown split {split!r} of {root}; use 'train', 'val' or 'all'")
        self.root = _training_root(root)
        self.classes = read_classes(self.root / "classes.tsv")
        images_dir, labels_dir = self.root / "images", self.root / "labels"
        pairs = [
            (image, (labels_dir / image.relative_to(images_dir)).with_suffix(".txt"))
            for image in _list_images(images_dir, recursive=True)
        ]
        pairs = [(image, label) for image, label in pairs if label.is_file()]
        if split != "all":
            pairs = [pair for i, pair in enumerate(pairs) if (i % COCO_VAL_EVERY == 0) == (split == "val")]
        pairs = pairs[:limit]
        self.image_paths = [image for image, _ in pairs]
        self.label_paths = [label for _, label in pairs]

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> InstanceSample:
        path = self.image_paths[index]
        return InstanceSample(image=_read_rgb(path), instances=self.read_instances(index), name=path.stem)

    def read_instances(self, index: int) -> list[Instance]:
        """The instances of one image, rasterised at its size, without decoding the image."""
        path = self.label_paths[index]
        try:
            with Image.open(self.image_paths[index]) as file:  # reads the header only
                width, height = file.size
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise DatasetError(f"cannot read {self.image_paths[index]} / {path}: {e}") from e
        instances = []
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                class_id, *coords = line.split()
                class_id, polygon = int(class_id), np.array(coords, dtype=np.float64).reshape(-1, 2)
            except ValueError:
                raise DatasetError(f"{path}:{line_number}: expected 'class x1 y1 x2 y2 ...'") from None
            if class_id not in self.classes:
                raise DatasetError(f"{path}:{line_number}: class {class_id} is not in classes.tsv")
            mask = polygon_to_mask(polygon * (width, height), height, width)
            instances.append(Instance(class_id=class_id, class_name=self.classes[class_id], mask=mask))
        return instances


class LazyImages(Sequence[np.ndarray]):
    """Images by index, decoded on first access and then kept (as read-only arrays, to guard the cache)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]  # no slices
        index = range(len(self.paths))[index]
        if index not in self._cache:
            image = _read_rgb(self.paths[index])
            image.flags.writeable = False
            self._cache[index] = image
        return self._cache[index]

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` decoded without keeping it (one pass over every image)."""
        return self._cache[index] if index in self._cache else _read_rgb(self.paths[index])


@dataclass(frozen=True)
class PromptObject:
    """One object of :class:`PromptMaskDataset`: which image, what it is, and its mask (kept as COCO RLE)."""

    image_index: int
    source: str
    class_name: str
    rle: dict[str, Any] = field(repr=False)

    @property
    def mask(self) -> np.ndarray:
        """The bool HxW mask, decoded from the RLE."""
        return rle_to_mask(self.rle)


@dataclass(frozen=True)
class PromptSample:
    image_index: int
    image: np.ndarray  # uint8 HxWx3 RGB, read-only (shared cache)
    mask: np.ndarray  # bool HxW
    class_name: str
    source: str


class PromptMaskDataset:
    """Every object mask of the training sources as one flat list, for training a promptable mask model.

    ``images`` holds each image that has at least one object (decoded once, on first use) and ``objects``
    each object (image index, source, class name, mask); a trainer can embed every image once and then
    iterate over objects. Objects come from COCO instances and from connected components of the
    :data:`OBJECT_CLASSES` of the semantic sources, keeping those of at least ``min_area`` pixels.
    ``exclude_classes`` drops objects by class name (as each source spells it, e.g. 'person', 'pedestrian'
    and 'body' are three names), which is how unseen classes are held out for zero-shot training.
    ``limit`` keeps the first images of each source. ``grabcut`` and ``berkeley`` are refused.
    Sources named in :data:`~zeroseg.train.sources.EXTRA_FOLDERS` are read from ``extra_root`` (their
    ``split`` is the hash rule of :mod:`zeroseg.train.sources`); ``extra_limit`` caps each of them
    at that many images, spread evenly (``limit`` applies too).
    """

    def __init__(
        self,
        sources: Sequence[str] = ("coco128", "camvid", "msrc21"),
        split: str = "train",
        min_area: int = DEFAULT_MIN_AREA,
        exclude_classes: Iterable[str] = (),
        limit: int | None = None,
        root: Path | str | None = None,
        extra_root: Path | str | None = None,
        extra_limit: int | None = None,
    ) -> None:
        if isinstance(sources, str):
            raise DatasetError("sources must be a sequence of source names, not one string")
        for source in sources:
            if source.lower() in EVALUATION_SETS:
                raise DatasetError(f"{source!r} is an evaluation set and must never be used for training")
            if source in EXTRA_FOLDERS and extra_root is None:
                raise DatasetError(f"source {source!r} is an extra set: give the extra data folder (extra_root)")
            if source not in SOURCE_FOLDERS and source not in EXTRA_FOLDERS:
                known = sorted(SOURCE_FOLDERS) + sorted(EXTRA_FOLDERS)
                raise DatasetError(f"unknown source {source!r}; known: {known}")
        root = data_root() if root is None else Path(root)
        readers = {
            source: _open_source(source, root, split, limit, extra_root, extra_limit) for source in sources
        }
        excluded = {name.lower() for name in exclude_classes}
        known = {name.lower() for reader in readers.values() for name in reader.classes.values()}
        if excluded - known:
            raise DatasetError(f"exclude_classes {sorted(excluded - known)} are not classes of {sources}")
        self.sources = tuple(sources)
        self.objects: list[PromptObject] = []
        image_paths: list[Path] = []
        for source, reader in readers.items():
            for path, objects in _source_objects(source, reader, min_area):
                kept = [(name, mask) for name, mask in objects if name.lower() not in excluded]
                if kept:
                    self.objects += [
                        PromptObject(len(image_paths), source, name, mask_to_rle(mask)) for name, mask in kept
                    ]
                    image_paths.append(path)
        self.images = LazyImages(image_paths)

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> PromptSample:
        obj = self.objects[index]
        return PromptSample(
            image_index=obj.image_index,
            image=self.images[obj.image_index],
            mask=obj.mask,
            class_name=obj.class_name,
            source=obj.source,
        )


def _open_source(
    source: str,
    data: Path,
    split: str,
    limit: int | None,
    extra_root: Path | str | None = None,
    extra_limit: int | None = None,
) -> SemanticDataset | CocoYoloSegDataset | ExtraSource:
    if source in EXTRA_FOLDERS:
        assert extra_root is not None  # checked by the caller
        caps = [n for n in (limit, extra_limit) if n is not None]
        return open_extra_source(source, extra_root, split, min(caps) if caps else None, data=data)
    folder = data / SOURCE_FOLDERS[source]
    if source == "coco128":
        return CocoYoloSegDataset(folder, limit=limit, split=split)
    return SemanticDataset(folder, split, limit=limit)


def _source_objects(
    source: str, reader: SemanticDataset | CocoYoloSegDataset | ExtraSource, min_area: int
) -> Iterable[tuple[Path, list[tuple[str, np.ndarray]]]]:
    """(image path, [(class name, mask)]) for each image of one source, objects of ``min_area`` or more."""
    if isinstance(reader, ExtraSource):
        yield from reader.objects(min_area)
        return
    if isinstance(reader, CocoYoloSegDataset):
        for index, path in enumerate(reader.image_paths):
            instances = reader.read_instances(index)
            yield path, [(i.class_name, i.mask) for i in instances if i.mask.sum() >= min_area]
        return
    name_to_id = {name: class_id for class_id, name in reader.classes.items()}
    missing = [name for name in OBJECT_CLASSES[source] if name not in name_to_id]
    if missing:
        raise DatasetError(f"{reader.root / 'classes.tsv'} lacks object classes {missing}")
    class_ids = [name_to_id[name] for name in OBJECT_CLASSES[source]]
    for index, path in enumerate(reader.image_paths):
        objects = object_masks_from_semantic(reader.read_label(index), class_ids, min_area)
        yield path, [(reader.classes[class_id], mask) for class_id, mask in objects]


def _training_root(root: Path | str) -> Path:
    """Check a dataset folder exists and is not an evaluation set (by any folder name on its path)."""
    root = Path(root).resolve()
    held_out = EVALUATION_SETS.intersection(part.lower() for part in root.parts)
    if held_out:
        raise DatasetError(f"{root} is inside evaluation set {sorted(held_out)[0]!r}: never train on it")
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} not found")
    return root


def _list_images(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found")
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as file:
            return np.array(file.convert("RGB"), dtype=np.uint8)
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e
