"""Zero-shot semantic segmentation: mIoU over seen and unseen classes and their harmonic mean.

Two settings, as in ZS3Net / SPNet:

* ``zsl``: the vocabulary is the unseen names only, scored on the pixels whose ground truth is unseen;
* ``gzsl``: the vocabulary is every class, scored on every labelled pixel. Models favour the classes
  they were trained on, which the harmonic mean of seen and unseen mIoU exposes; calibrated stacking
  (subtracting ``gamma`` from the seen-class scores) trades seen accuracy for unseen accuracy.

Every metric is a percentage (0-100). Void pixels (255) and pixels of dropped classes are ignored; a
class absent from both the ground truth and the prediction has no IoU and does not enter any mean.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from zeroseg.data import ZERO_SHOT_SPLITS, data_root
from zeroseg.errors import DatasetError
from zeroseg.models.text import clean_names
from zeroseg.models.vl.base import DenseEmbedder
from zeroseg.train.datasets import (
    SOURCE_FOLDERS,
    VOID,
    CocoYoloSegDataset,
    Instance,
    SemanticDataset,
    SemanticSample,
)

if TYPE_CHECKING:
    from zeroseg.segment.naming import Namer

NamerFactory = Callable[..., "Namer"]
"""``factory(vocabulary, seen=..., calibration=...) -> Namer``: how to build a namer for a vocabulary."""


class SemanticSource(Protocol):
    """Images with class maps: what :class:`SemanticDataset` offers (``classes`` maps id -> name)."""

    classes: dict[int, str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> SemanticSample: ...


# --- metrics ------------------------------------------------------------------------------
def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[K, K] pixel counts, rows = ground truth, columns = prediction; gt outside [0, K) is ignored."""
    gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth has {gt.size} pixels, the prediction {pred.size}")
    valid = (gt >= 0) & (gt < num_classes)
    if ((pred[valid] < 0) | (pred[valid] >= num_classes)).any():
        raise ValueError(f"predicted ids must lie in [0, {num_classes})")
    flat = gt[valid].astype(np.int64) * num_classes + pred[valid]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_ious(confusion: np.ndarray) -> np.ndarray:
    """IoU per class (fraction); NaN for a class absent from both ground truth and prediction."""
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def harmonic_mean(seen: float, unseen: float) -> float:
    """2su / (s + u), 0 when both are 0."""
    return 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0


def summarize(confusion: np.ndarray, names: Sequence[str], unseen: Iterable[str]) -> dict[str, Any]:
    """``miou``, ``seen_miou``, ``unseen_miou``, ``hmean`` (percent) and ``per_class_iou`` of a confusion matrix.

    A mean over no evaluated class is None (e.g. ``seen_miou`` in the zsl setting), and so is ``hmean``
    unless both seen and unseen classes were evaluated.
    """
    ious = class_ious(confusion) * 100
    unseen = set(unseen)
    is_unseen = np.array([name in unseen for name in names], dtype=bool)

    def mean(selected: np.ndarray) -> float | None:
        values = ious[selected & ~np.isnan(ious)]
        return float(values.mean()) if values.size else None

    seen_miou, unseen_miou = mean(~is_unseen), mean(is_unseen)
    both = seen_miou is not None and unseen_miou is not None
    return {
        "miou": mean(np.ones(len(names), dtype=bool)),
        "seen_miou": seen_miou,
        "unseen_miou": unseen_miou,
        "hmean": harmonic_mean(seen_miou, unseen_miou) if both else None,  # type: ignore[arg-type]
        "per_class_iou": {name: None if np.isnan(iou) else float(iou) for name, iou in zip(names, ious)},
    }


# --- datasets -----------------------------------------------------------------------------
def rasterize_instances(instances: Sequence[Instance], shape: tuple[int, int]) -> np.ndarray:
    """A class map from instance masks: later instances on top, unlabelled pixels :data:`VOID`."""
    label = np.full(shape, VOID, dtype=np.int64)
    for instance in instances:
        label[instance.mask] = instance.class_id
    return label


class InstanceSemanticDataset:
    """A YOLO-seg instance dataset seen as class maps (:func:`rasterize_instances`)."""

    def __init__(self, instances: CocoYoloSegDataset) -> None:
        self.instances = instances
        self.classes = dict(instances.classes)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> SemanticSample:
        sample = self.instances[index]
        label = rasterize_instances(sample.instances, sample.image.shape[:2])
        return SemanticSample(image=sample.image, label=label, name=sample.name)


def dataset_folder(dataset: str | Path) -> Path:
    """A known dataset name (msrc21, camvid, coco128) -> its folder in the data root; anything else is a path."""
    name = str(dataset)
    return data_root() / SOURCE_FOLDERS[name] if name in SOURCE_FOLDERS else Path(dataset)


def open_semantic_dataset(dataset: str | Path, split: str = "val", limit: int | None = None) -> SemanticSource:
    """msrc21 / camvid / coco128 or a folder laid out like one of them.

    A folder with ``<split>/images`` and ``<split>/labels`` (class maps) plus ``classes.tsv`` is read as
    class maps; one with ``images/``, ``labels/`` (YOLO-seg polygons) and ``classes.tsv`` as rasterised
    instances, where ``split`` ``train``, ``val`` or ``all`` picks a part as
    :class:`~zeroseg.train.datasets.CocoYoloSegDataset` does (any other: all images).
    """
    root = dataset_folder(dataset)
    if (root / split / "images").is_dir():
        return SemanticDataset(root, split, limit=limit)
    if (root / "images").is_dir() and (root / "labels").is_dir():
        part = split if split in ("train", "val", "all") else "all"
        return InstanceSemanticDataset(CocoYoloSegDataset(root, limit=limit, split=part))
    raise DatasetError(
        f"{root} is not a semantic dataset: expected {split}/images + {split}/labels or images/ + labels/ "
        f"with a classes.tsv (known names: {', '.join(SOURCE_FOLDERS)})"
    )


def zero_shot_split(
    dataset: str | Path,
    class_names: Iterable[str],
    unseen: str | Sequence[str] | None = None,
    dropped: str | Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """The (unseen, dropped) class names to evaluate ``dataset`` with, checked against its classes.

    Missing ones come from :data:`ZERO_SHOT_SPLITS`, looked up by the dataset's name or by its folder
    name (``coco128_seg`` counts as coco128). Without a known split, ``unseen`` must be given and
    ``dropped`` defaults to none.
    """
    split = known_split(dataset)
    if unseen is None:
        if split is None:
            known = ", ".join(ZERO_SHOT_SPLITS)
            raise DatasetError(f"no zero-shot split for {str(dataset)!r} (known: {known}): give the unseen classes")
        unseen = split["unseen"]
    if dropped is None:
        dropped = split["dropped"] if split is not None else ()
    unseen, dropped = clean_names(unseen), clean_names(dropped)
    known_names = set(clean_names(class_names))
    for what, names in (("unseen", unseen), ("dropped", dropped)):
        unknown = [name for name in names if name not in known_names]
        if unknown:
            raise DatasetError(f"{what} class(es) {unknown} are not classes of {dataset}: {sorted(known_names)}")
    both = set(unseen) & set(dropped)
    if both:
        raise DatasetError(f"class(es) {sorted(both)} are both unseen and dropped")
    return unseen, dropped


def known_split(dataset: str | Path) -> dict[str, tuple[str, ...]] | None:
    """The :data:`ZERO_SHOT_SPLITS` entry of a dataset name or folder, if any."""
    folder_to_name = {folder: name for name, folder in SOURCE_FOLDERS.items()}
    for key in (str(dataset), Path(dataset).name):
        key = folder_to_name.get(key, key)
        if key in ZERO_SHOT_SPLITS:
            return ZERO_SHOT_SPLITS[key]
    return None


# --- evaluation ---------------------------------------------------------------------------
def build_namer(
    model: DenseEmbedder | NamerFactory,
    vocabulary: Sequence[str],
    unseen: Iterable[str],
    calibration: float | None = None,
    **options: Any,
) -> tuple[Namer, float]:
    """A namer over ``vocabulary`` whose seen names (all but ``unseen``) are calibrated, and its gamma.

    ``model`` is a dense embedder (wrapped in :class:`~zeroseg.segment.naming.Namer` with ``options``) or a
    namer factory. ``calibration`` None takes the model's own ``calibration`` attribute, else 0.
    """
    gamma = float(getattr(model, "calibration", 0.0) if calibration is None else calibration)
    unseen = set(unseen)
    seen = [name for name in vocabulary if name not in unseen]
    if isinstance(model, DenseEmbedder):
        from zeroseg.segment.naming import Namer

        namer = Namer(model, list(vocabulary), seen=seen, calibration=gamma, **options)
    else:
        namer = model(list(vocabulary), seen=seen, calibration=gamma)
    if list(namer.vocabulary) != list(vocabulary):
        raise DatasetError(f"the namer renamed the vocabulary {list(vocabulary)} to {list(namer.vocabulary)}")
    return namer, gamma


def vocabulary_of(classes: dict[int, str], dropped: Iterable[str] = ()) -> tuple[list[str], np.ndarray]:
    """Cleaned names of the evaluated classes and a lookup table file id -> vocabulary index (-1: ignored)."""
    cleaned = clean_names(list(classes.values()))
    if len(cleaned) != len(classes):
        raise DatasetError(f"class names must be distinct once cleaned: {list(classes.values())}")
    dropped = set(clean_names(list(dropped)))
    lookup = np.full(VOID + 1, -1, dtype=np.int64)
    names: list[str] = []
    for class_id, name in zip(classes, cleaned):
        if name not in dropped:
            lookup[class_id] = len(names)
            names.append(name)
    return names, lookup


def evaluated_unseen(names: Sequence[str], unseen: Iterable[str]) -> list[str]:
    """The unseen names (cleaned) in vocabulary order; each must be an evaluated class."""
    wanted = set(clean_names(list(unseen)))
    if wanted - set(names):
        raise DatasetError(f"unseen class(es) {sorted(wanted - set(names))} are not evaluated classes: {names}")
    return [name for name in names if name in wanted]


def evaluate_semantic(
    model: DenseEmbedder | NamerFactory,
    dataset: SemanticSource,
    unseen: Iterable[str],
    calibration: float | None = None,
    dropped: Iterable[str] = (),
    progress: bool = True,
    product: bool = False,
    segmenter: Any = None,
) -> dict[str, dict[str, Any]]:
    """Zero-shot semantic segmentation scores of ``model`` on ``dataset``: ``{"zsl": {...}, "gzsl": {...}}``.

    ``product`` (the user's protocol) names pixels with the product's namer
    (:func:`~zeroseg.segment.naming.load_namer`'s defaults: the backbone's ImageNet classifier mixed in, the
    names the embedder trained on calibrated), and ``segmenter`` (a
    :class:`~zeroseg.segment.predictor.Predictor`) then lets pixels take the names of the image's
    segment-everything proposals, as ``label-pixels`` does. The strict protocol is the dense head alone,
    every name but ``unseen`` calibrated.

    Each setting has ``miou``, ``seen_miou``, ``unseen_miou``, ``hmean`` (percent, None when undefined) and
    ``per_class_iou``; ``gzsl`` also reports the ``calibration`` gamma used. Each image is embedded once:
    pixel scores against every name serve gzsl, and their unseen rows (which calibration leaves alone) zsl.
    """
    names, lookup = vocabulary_of(dataset.classes, dropped)
    unseen = evaluated_unseen(names, unseen)
    if segmenter is not None:
        from zeroseg.segment.pipeline import proposals
    if product and isinstance(model, DenseEmbedder):
        from zeroseg.segment.naming import load_namer

        namer = load_namer(names, model, **({} if calibration is None else {"calibration": float(calibration)}))
        gamma = namer.calibration
    else:
        namer, gamma = build_namer(model, names, unseen, calibration, background=False, classifier=False)
    unseen_rows = torch.tensor([names.index(name) for name in unseen], dtype=torch.long)
    to_zsl = np.full(len(names), -1, dtype=np.int64)
    to_zsl[unseen_rows.numpy()] = np.arange(len(unseen))
    gzsl = np.zeros((len(names), len(names)), dtype=np.int64)
    zsl = np.zeros((len(unseen), len(unseen)), dtype=np.int64)
    for index in tqdm(range(len(dataset)), desc="images", disable=not progress):
        sample = dataset[index]
        gt = lookup[sample.label]
        if segmenter is None:
            logits = torch.as_tensor(namer.pixel_logits(sample.image))[: len(names)]
        else:
            logits = namer.segment_pixel_logits(sample.image, proposals(sample.image, segmenter)[1])[: len(names)]
        if tuple(logits.shape[1:]) != gt.shape:
            raise ValueError(f"{sample.name}: pixel scores {tuple(logits.shape)} vs labels {gt.shape}")
        gzsl += confusion_matrix(gt, logits.argmax(0).numpy(), len(names))
        if len(unseen):
            zsl_gt = np.where(gt >= 0, to_zsl[gt], -1)
            zsl += confusion_matrix(zsl_gt, logits[unseen_rows].argmax(0).numpy(), len(unseen))
    return {
        "zsl": summarize(zsl, unseen, unseen),
        "gzsl": {**summarize(gzsl, names, unseen), "calibration": gamma},
    }
