"""Zero-shot naming of given masks, and text-prompted segmentation, scored over seen and unseen classes.

* :func:`evaluate_naming`: each ground-truth instance mask is named among all the dataset's names; the
  score is top-1 accuracy over all masks, on seen and on unseen classes, and their harmonic mean.
* :func:`evaluate_text_prompts`: for each class present in an image, the masks that
  :func:`zeroseg.segment.text_prompt.text_to_masks` returns for its name are merged and compared with the
  class region; the score is mean IoU over (image, class) pairs, seen and unseen.

Every score is a percentage (0-100). Named masks come from instance layouts or from class maps cut into
regions (:func:`load_naming_dataset`).
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

from zeroseg.errors import DatasetError
from zeroseg.eval.interactive import decode_mask, mask_iou, read_mask_values
from zeroseg.eval.zero_shot import (
    NamerFactory,
    SemanticSource,
    build_namer,
    dataset_folder,
    evaluated_unseen,
    harmonic_mean,
    known_split,
    vocabulary_of,
)
from zeroseg.io import load_image, rle_to_mask
from zeroseg.models.text import clean_names
from zeroseg.models.vl.base import DenseEmbedder
from zeroseg.segment.record import Segment
from zeroseg.train.datasets import (
    DEFAULT_MIN_AREA,
    CocoYoloSegDataset,
    SemanticDataset,
    object_masks_from_semantic,
    read_classes,
)


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


class SemanticRegionNaming:
    """Class maps (msrc21, camvid or a folder laid out like them) as named masks: each connected region
    (8-connected) of one class is a mask (:func:`~zeroseg.train.datasets.object_masks_from_semantic`).
    Void and ``dropped`` classes are never masks nor names; regions under ``min_area`` pixels are left out."""

    def __init__(self, semantic: SemanticSource, dropped: Iterable[str] = (), min_area: int = DEFAULT_MIN_AREA) -> None:
        dropped = clean_names(list(dropped))
        unknown = sorted(set(dropped) - set(clean_names(list(semantic.classes.values()))))
        if unknown:
            raise DatasetError(f"dropped class(es) {unknown} are not classes: {list(semantic.classes.values())}")
        self.semantic, self.dropped, self.min_area = semantic, dropped, min_area
        self.classes, self._lookup = vocabulary_of(semantic.classes, dropped)

    def __len__(self) -> int:
        return len(self.semantic)

    def __getitem__(self, index: int) -> NamedMasks:
        sample = self.semantic[index]
        regions = object_masks_from_semantic(self._lookup[sample.label], range(len(self.classes)), self.min_area)
        masks = _stack([mask for _, mask in regions], sample.image.shape)
        return NamedMasks(sample.name, sample.image, masks, [self.classes[k] for k, _ in regions])


def load_naming_dataset(
    dataset: str | Path,
    images: Path | str | None = None,
    limit: int | None = None,
    split: str = "val",
    dropped: Iterable[str] | None = None,
) -> NamingSource:
    """``coco128`` (the shared data), a COCO instances ``.json`` (images from ``images``, default the
    ``images/`` folder beside it), a folder with ``index.csv`` (:class:`MaskFolderNaming`), a folder in
    coco128_seg's layout (:class:`YoloSegNaming`), or class maps cut into regions
    (:class:`SemanticRegionNaming`: ``msrc21``, ``camvid`` or a folder with ``split/images`` +
    ``split/labels``; ``dropped`` defaults to the dataset's split in ZERO_SHOT_SPLITS).
    """
    path = dataset_folder(dataset)
    if (path / "classes.tsv").is_file() and (path / split / "labels").is_dir() and not (path / "labels").is_dir():
        if dropped is None:
            split_names = known_split(dataset)
            dropped = split_names["dropped"] if split_names is not None else ()
        return SemanticRegionNaming(SemanticDataset(path, split, limit=limit), dropped)
    if dropped:
        raise DatasetError(f"{path}: dropped classes apply to class maps only (msrc21, camvid)")
    if path.suffix.lower() == ".json":
        return CocoJsonNaming(path, images if images is not None else path.parent / "images", limit)
    if (path / "index.csv").is_file():
        return MaskFolderNaming(path, limit)
    if (path / "classes.tsv").is_file() and (path / "labels").is_dir():
        return YoloSegNaming(path, limit)
    raise DatasetError(
        f"{path} is not a naming dataset: expected coco128, msrc21, camvid, a COCO .json, a folder with "
        f"index.csv (image,mask,class_name), images/ + labels/ + classes.tsv, or {split}/images + "
        f"{split}/labels + classes.tsv"
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
    calibrate: bool | None = None,
    classifier: bool | None = None,
) -> dict[str, Any]:
    """Top-1 accuracy of naming each ground-truth mask among all ``dataset.classes``.

    By default the namer is what the product uses (:func:`~zeroseg.segment.naming.load_namer`'s defaults:
    plain scores, every mask named). ``calibrate`` applies calibrated stacking as the zero-shot protocol
    does: ``calibration`` (default the model's ``mask_calibration``, else its ``calibration``) is
    subtracted from every name but the ``unseen`` ones; giving ``calibration`` implies ``calibrate``.
    ``classifier`` mixes in the backbone's ImageNet classifier (the product's default); None leaves it
    on for the product's settings and off for the calibrated protocol, which stays the dense head's own.
    Returns ``accuracy`` over all masks, ``seen_acc``, ``unseen_acc``, ``hmean`` (percent; None when a
    group has no mask), ``n_masks``, ``calibrated``, ``calibration``, ``classifier`` (whether it was used)
    and ``per_class`` (``{"correct", "total", "seen"}``). Empty masks are skipped.
    """
    from zeroseg.segment.naming import (
        DEFAULT_BACKGROUND,
        DEFAULT_BACKGROUND_THRESHOLD,
        DEFAULT_CALIBRATE,
        DEFAULT_CLASSIFIER,
    )

    names = clean_names(dataset.classes)
    unseen = set(evaluated_unseen(names, unseen))
    if calibrate is None:
        calibrate = DEFAULT_CALIBRATE or calibration is not None
    if not calibrate:
        calibration = 0.0
    elif calibration is None:  # masks have their own gamma when the embedder fitted one
        calibration = getattr(model, "mask_calibration", None)
    if classifier is None:
        classifier = DEFAULT_CLASSIFIER and not calibrate
    options: dict[str, Any] = {"background": False, "classifier": classifier}  # the protocol names every mask
    if not calibrate:  # the product's own settings
        options = {
            "background": DEFAULT_BACKGROUND,
            "background_threshold": DEFAULT_BACKGROUND_THRESHOLD,
            "classifier": classifier,
        }
    namer, gamma = build_namer(model, names, unseen, calibration, **options)
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
        "accuracy": 100 * sum(c["correct"] for c in counts.values()) / n_masks if n_masks else None,
        "seen_acc": seen_acc,
        "unseen_acc": unseen_acc,
        "hmean": _with_hmean(seen_acc, unseen_acc),
        "n_masks": n_masks,
        "calibrated": bool(calibrate),
        "calibration": gamma,
        "classifier": getattr(namer, "classifier", None) is not None,
        "per_class": counts,
    }


def union_of_masks(masks: Any, shape: tuple[int, int]) -> np.ndarray:
    """One bool HxW mask from what a segmenter returned: an [N, H, W] / [H, W] array, or a list of masks,
    of :class:`~zeroseg.segment.record.Segment` records, or of dict records (``segmentation`` as a bool
    array or COCO RLE)."""
    union = np.zeros(shape, dtype=bool)
    if isinstance(masks, np.ndarray):
        masks = masks.reshape(-1, *shape) if masks.size else []
    for mask in masks:
        if isinstance(mask, Segment):
            mask = mask.mask
        elif isinstance(mask, dict):
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
    namer, gamma = build_namer(model, names, unseen, calibration, background=True)  # "none" competes
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
