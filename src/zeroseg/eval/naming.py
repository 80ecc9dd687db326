"""Zero-shot naming of given masks, and text-prompted segmentation, scored over seen and unseen classes.

* :func:`evaluate_naming`: each ground-truth instance mask is named among all the dataset's names; the
  score is top-1 accuracy on seen and on unseen classes and their harmonic mean.
* :func:`evaluate_text_prompts`: for each class present in an image, the masks that
  :func:`zeroseg.segment.text_prompt.text_to_masks` returns for its name are merged and compared with the
  class region; the score is mean IoU over (image, class) pairs, seen and unseen.

Every score is a percentage (0-100). Instance masks come from three layouts (:func:`load_naming_dataset`).
"""
from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from zeroseg.data import data_root
from zeroseg.errors import DatasetError
from zeroseg.eval.interactive import decode_mask, mask_iou, read_mask_values
from zeroseg.eval.zero_shot import (
    NamerFactory,
    SemanticSource,
    build_namer,
    evaluated_unseen,
    harmonic_mean,
    vocabulary_of,
)
from zeroseg.io import load_image, rle_to_mask
from zeroseg.models.text import clean_names
from zeroseg.models.vl.base import DenseEmbedder
from zeroseg.train.datasets import CocoYoloSegDataset, read_classes


@dataclass(frozen=True)
class NamedMasks:
    """One image and its ground-truth instance masks, each with its class name."""

    name: str
    image: np.ndarray  # uint8 HxWx3 RGB
    masks: np.ndarray  # bool [N, H, W]
    class_names: list[str]


class NamingSource(Protocol):
    """Images with named instance masks; ``classes`` is every name of the dataset (the vocabulary)."""

    classes: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> NamedMasks: ...


def _stack(masks: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(masks).astype(bool) if masks else np.zeros((0, *shape[:2]), dtype=bool)


class YoloSegNaming:
    """coco128_seg's layout: ``images/``, ``labels/`` (YOLO-seg polygons) and ``classes.tsv``."""

    def __init__(self, root: Path | str, limit: int | None = None) -> None:
        self.reader = CocoYoloSegDataset(root, limit=limit)
        self.classes = list(self.reader.classes.values())

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> NamedMasks:
        sample = self.reader[index]
        masks = _stack([i.mask for i in sample.instances], sample.image.shape)
        return NamedMasks(sample.name, sample.image, masks, [i.class_name for i in sample.instances])


class CocoJsonNaming:
    """A COCO instances JSON and its image folder; crowd regions are left out (they are not one object)."""

    def __init__(self, annotations: Path | str, images: Path | str, limit: int | None = None) -> None:
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
        with_objects = [i for i in sorted(self.coco.getImgIds()) if self._annotations(i)]
        self.image_ids = with_objects[:limit]

    def _annotations(self, image_id: int) -> list[dict[str, Any]]:
        return self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=False))

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> NamedMasks:
        info = self.coco.loadImgs([self.image_ids[index]])[0]
        image = load_image(self.images / info["file_name"])
        annotations = self._annotations(info["id"])
        masks = _stack([self.coco.annToMask(a) for a in annotations], image.shape)
        if masks.shape[1:] != image.shape[:2]:
            raise DatasetError(f"{info['file_name']}: annotations are {masks.shape[1:]}, image {image.shape[:2]}")
        names = [self._names[a["category_id"]] for a in annotations]
        return NamedMasks(Path(info["file_name"]).stem, image, masks, names)


class MaskFolderNaming:
    """A folder with ``images/``, binary ``masks/`` and ``index.csv`` (columns ``image,mask,class_name``,
    paths relative to the folder). The vocabulary is ``classes.tsv`` when present, else the listed names.
    """

    COLUMNS = ("image", "mask", "class_name")

    def __init__(self, root: Path | str, limit: int | None = None) -> None:
        self.root = Path(root)
        index = self.root / "index.csv"
        try:
            with index.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = set(self.COLUMNS) - set(reader.fieldnames or ())
                if missing:
                    raise DatasetError(f"{index} lacks column(s) {', '.join(sorted(missing))}")
                rows = [tuple((row[c] or "").strip() for c in self.COLUMNS) for row in reader]
        except OSError as e:
            raise DatasetError(f"cannot read {index}: {e}") from e
        self.objects: dict[str, list[tuple[str, str]]] = {}  # image -> [(mask, class name)], in file order
        for image, mask, class_name in rows:
            self.objects.setdefault(image, []).append((mask, class_name))
        listed = list(dict.fromkeys(class_name for _, _, class_name in rows))
        table = self.root / "classes.tsv"
        self.classes = list(read_classes(table).values()) if table.is_file() else listed
        unknown = sorted(set(listed) - set(self.classes))
        if unknown:
            raise DatasetError(f"{index} names classes {unknown} that are not in {table}")
        self.image_files = list(self.objects)[:limit]
        absent = [p for p in self.image_files + [mask for _, mask, _ in rows] if not (self.root / p).is_file()]
        if absent:
            raise DatasetError(f"{index} lists {len(absent)} missing file(s), e.g. {self.root / absent[0]}")

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> NamedMasks:
        image_file = self.image_files[index]
        image = load_image(self.root / image_file)
        objects = self.objects[image_file]
        masks = _stack([decode_mask(read_mask_values(self.root / mask))[0] for mask, _ in objects], image.shape)
        if masks.shape[1:] != image.shape[:2]:
            raise DatasetError(f"{image_file}: masks are {masks.shape[1:]}, the image {image.shape[:2]}")
        return NamedMasks(Path(image_file).stem, image, masks, [class_name for _, class_name in objects])


def load_naming_dataset(
    dataset: str | Path, images: Path | str | None = None, limit: int | None = None
) -> NamingSource:
    """``coco128`` (the shared data), a COCO instances ``.json`` (images from ``images``, default the
    ``images/`` folder beside it), a folder with ``index.csv`` (:class:`MaskFolderNaming`) or a folder in
    coco128_seg's layout (:class:`YoloSegNaming`).
    """
    path = data_root() / "coco128_seg" if str(dataset) == "coco128" else Path(dataset)
    if path.suffix.lower() == ".json":
        return CocoJsonNaming(path, images if images is not None else path.parent / "images", limit)
    if (path / "index.csv").is_file():
        return MaskFolderNaming(path, limit)
    if (path / "classes.tsv").is_file() and (path / "labels").is_dir():
        return YoloSegNaming(path, limit)
    raise DatasetError(
        f"{path} is not a naming dataset: expected coco128, a COCO .json, a folder with index.csv "
        "(image,mask,class_name) or images/ + labels/ + classes.tsv"
    )


# --- evaluation ---------------------------------------------------------------------------
def _seen_unseen(
    sums: dict[str, tuple[float, int]], unseen: set[str]
) -> tuple[float | None, float | None]:
    """Per-class (sum, count) pooled into percentages over seen and over unseen classes (None: no count)."""
    result = []
    for want_unseen in (False, True):
        picked = [sums[name] for name in sums if (name in unseen) == want_unseen]
        count = sum(n for _, n in picked)
        result.append(100 * sum(total for total, _ in picked) / count if count else None)
    return result[0], result[1]


def _with_hmean(seen: float | None, unseen: float | None) -> float | None:
    return harmonic_mean(seen, unseen) if seen is not None and unseen is not None else None


def evaluate_naming(
    model: DenseEmbedder | NamerFactory,
    dataset: NamingSource,
    unseen: Iterable[str],
    calibration: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1 accuracy of naming each ground-truth mask among all ``dataset.classes``.

    Returns ``seen_acc``, ``unseen_acc``, ``hmean`` (percent; None when a group has no mask), ``accuracy``
    over all masks, ``n_masks``, ``calibration`` and ``per_class`` (``{"correct", "total", "seen"}``).
    Empty masks are skipped.
    """
    names = clean_names(dataset.classes)
    unseen = set(evaluated_unseen(names, unseen))
    if calibration is None:  # masks have their own gamma when the embedder fitted one
        calibration = getattr(model, "mask_calibration", None)
    namer, gamma = build_namer(model, names, unseen, calibration, background=False)
    counts = {name: {"correct": 0, "total": 0, "seen": name not in unseen} for name in names}
    for index in tqdm(range(len(dataset)), desc="images", disable=not progress):
        sample = dataset[index]
        keep = sample.masks.reshape(len(sample.masks), -1).any(1)
        if not keep.any():
            continue
        truths = [clean_names([name])[0] for name, k in zip(sample.class_names, keep) if k]
        for (predicted, _), truth in zip(namer.name_masks(sample.image, sample.masks[keep]), truths):
            counts[truth]["total"] += 1
            counts[truth]["correct"] += int(predicted == truth)
    seen_acc, unseen_acc = _seen_unseen({n: (c["correct"], c["total"]) for n, c in counts.items()}, unseen)
    n_masks = sum(c["total"] for c in counts.values())
    return {
        "seen_acc": seen_acc,
        "unseen_acc": unseen_acc,
        "hmean": _with_hmean(seen_acc, unseen_acc),
        "accuracy": 100 * sum(c["correct"] for c in counts.values()) / n_masks if n_masks else None,
        "n_masks": n_masks,
        "calibration": gamma,
        "per_class": counts,
    }


def union_of_masks(masks: Any, shape: tuple[int, int]) -> np.ndarray:
    """One bool HxW mask from what a segmenter returned: an [N, H, W] / [H, W] array, or a list of masks
    or of segment records (``segmentation`` as a bool array or COCO RLE)."""
    union = np.zeros(shape, dtype=bool)
    if isinstance(masks, np.ndarray):
        masks = masks.reshape(-1, *shape) if masks.size else []
    for mask in masks:
        if isinstance(mask, dict):
            mask = mask["segmentation"]
            mask = rle_to_mask(mask) if isinstance(mask, dict) else mask
        union |= np.asarray(mask, dtype=bool)
    return union


def evaluate_text_prompts(
    predictor: Any,
    model: DenseEmbedder | NamerFactory,
    dataset: SemanticSource,
    unseen: Iterable[str],
    calibration: float | None = None,
    dropped: Iterable[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Mean IoU of text-prompted masks against the class regions, over every (image, class present) pair.

    The name of each class present is handed to :func:`~zeroseg.segment.text_prompt.text_to_masks` with a
    namer over all evaluated names (seen names calibrated by ``calibration``); the union of the returned
    masks is compared with the class region, void and dropped pixels ignored. Returns ``miou``,
    ``seen_miou``, ``unseen_miou``, ``hmean`` (percent), ``n_prompts``, ``calibration`` and ``per_class``
    (``{"miou", "count", "seen"}``).
    """
    from zeroseg.segment.text_prompt import text_to_masks

    names, lookup = vocabulary_of(dataset.classes, dropped)
    unseen = set(evaluated_unseen(names, unseen))
    namer, gamma = build_namer(model, names, unseen, calibration)
    ious: dict[str, list[float]] = {name: [] for name in names}
    for index in tqdm(range(len(dataset)), desc="images", disable=not progress):
        sample = dataset[index]
        gt = lookup[sample.label]
        for class_index in np.unique(gt[gt >= 0]).tolist():
            name = names[class_index]
            predicted = union_of_masks(text_to_masks(sample.image, name, predictor, namer), gt.shape)
            ious[name].append(mask_iou(predicted, gt == class_index, ignore=gt < 0))
    seen_miou, unseen_miou = _seen_unseen({name: (sum(v), len(v)) for name, v in ious.items()}, unseen)
    n_prompts = sum(len(v) for v in ious.values())
    return {
        "miou": 100 * sum(sum(v) for v in ious.values()) / n_prompts if n_prompts else None,
        "seen_miou": seen_miou,
        "unseen_miou": unseen_miou,
        "hmean": _with_hmean(seen_miou, unseen_miou),
        "n_prompts": n_prompts,
        "calibration": gamma,
        "per_class": {
            name: {"miou": 100 * float(np.mean(v)) if v else None, "count": len(v), "seen": name not in unseen}
            for name, v in ious.items()
        },
    }
