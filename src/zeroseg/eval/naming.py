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

import csv
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
from zeroseg.train.sources import CocoJson


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
    """coco128_seg's layout: ``images/``, ``labels/`` (YOLO-seg polygons) and ``classes.tsv``; ``split``
    as :class:`~zeroseg.train.datasets.CocoYoloSegDataset` (``val``: the quarter no training step reads)."""

    def __init__(self, root: Path | str, limit: int | None = None, split: str = "all") -> None:
        self.reader = CocoYoloSegDataset(root, limit=limit, split=split)
        self.split = split
        self.classes = list(self.reader.classes.values())

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> NamedMasks:
        sample = self.reader[index]
        masks = _stack([i.mask for i in sample.instances], sample.image.shape)
        return NamedMasks(sample.name, sample.image, masks, [i.class_name for i in sample.instances])


class CocoJsonNaming:
    """A COCO instances JSON and its image folder (:class:`~zeroseg.train.sources.CocoJson`: crowd regions
    left out)."""

    def __init__(self, annotations: Path | str, images: Path | str, limit: int | None = None) -> None:
        self.coco = CocoJson(annotations, images)
        self.classes = self.coco.classes
        self.image_ids = self.coco.image_ids[:limit]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> NamedMasks:
        image_id = self.image_ids[index]
        path = self.coco.image_path(image_id)
        image = load_image(path)
        objects = self.coco.objects(image_id)
        masks = _stack([mask for _, mask in objects], image.shape)
        if masks.shape[1:] != image.shape[:2]:
            raise DatasetError(f"{path.name}: annotations are {masks.shape[1:]}, image {image.shape[:2]}")
        return NamedMasks(path.stem, image, masks, [name for name, _ in objects])


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
    split: str | None = None,
    dropped: Iterable[str] | None = None,
) -> NamingSource:
    """``coco128`` (the shared data), a COCO instances ``.json`` (images from ``images``, default the
    ``images/`` folder beside it), a folder with ``index.csv`` (:class:`MaskFolderNaming`), a folder in
    coco128_seg's layout (:class:`YoloSegNaming`), or class maps cut into regions
    (:class:`SemanticRegionNaming`: ``msrc21``, ``camvid`` or a folder with ``split/images`` +
    ``split/labels``; ``dropped`` defaults to the dataset's split in ZERO_SHOT_SPLITS).

    ``split`` (default ``val``) picks the split folder of class maps and the part of ``coco128``
    (``train``, ``val`` or ``all``); other YOLO-seg folders are read whole unless it is given.
    """
    path = dataset_folder(dataset)
    yolo_split = split if split is not None else "val" if known_split(dataset) is not None else "all"
    split = "val" if split is None else split
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
        return YoloSegNaming(path, limit, yolo_split)
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

    By default the namer is what the product uses (:func:`~zeroseg.segment.naming.load_namer`'s defaults,
    every mask named; a namer factory is called with no calibration). ``calibrate`` applies calibrated
    stacking as the zero-shot protocol does: ``calibration`` (default the model's ``mask_calibration``, else its ``calibration``) is
    subtracted from every name but the ``unseen`` ones; giving ``calibration`` implies ``calibrate``.
    ``classifier`` mixes in the backbone's ImageNet classifier (the product's default); None leaves it
    on for the product's settings and off for the calibrated protocol, which stays the dense head's own.
    Returns ``accuracy`` over all masks, ``seen_acc``, ``unseen_acc``, ``hmean``, ``untrained_acc`` (the
    masks of names the embedder was never trained on, whatever the protocol calls unseen; percent, None
    when a group has no mask or the embedder lists no trained names), ``n_masks``, ``calibrated``,
    ``calibration``, ``classifier`` (whether it was used) and ``per_class`` (``{"correct", "total",
    "seen"}``). Empty masks are skipped.
    """
    from zeroseg.segment.naming import DEFAULT_CALIBRATE, DEFAULT_CLASSIFIER, load_namer

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
    if not calibrate and isinstance(model, DenseEmbedder):  # the product's own namer
        namer = load_namer(names, model, classifier=classifier)
        gamma = namer.mask_calibration
    else:  # the protocol names every mask (a namer factory takes no options)
        namer, gamma = build_namer(model, names, unseen, calibration, background=False, classifier=classifier)
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
    sums = {n: (c["correct"], c["total"]) for n, c in counts.items()}
    seen_acc, unseen_acc = _seen_unseen(sums, unseen)
    n_masks = sum(c["total"] for c in counts.values())
    covered = imagenet_covered(namer, names)
    covered_acc, not_covered_acc = _seen_unseen(sums, {n for n in names if not covered[n]})
    trained = set(clean_names(getattr(model, "seen", ()) or ()))
    untrained_acc = _seen_unseen(sums, {n for n in names if n not in trained})[1] if trained else None
    return {
        "accuracy": 100 * sum(c["correct"] for c in counts.values()) / n_masks if n_masks else None,
        "seen_acc": seen_acc,
        "unseen_acc": unseen_acc,
        "hmean": _with_hmean(seen_acc, unseen_acc),
        "imagenet_acc": covered_acc,
        "not_imagenet_acc": not_covered_acc,
        "untrained_acc": untrained_acc,
        "n_masks": n_masks,
        "calibrated": bool(calibrate),
        "calibration": gamma,
        "classifier": getattr(namer, "classifier", None) is not None,
        "imagenet_covered": covered,
        "per_class": counts,
    }


def imagenet_covered(namer: Any, names: Sequence[str]) -> dict[str, list[str]]:
    """The ImageNet-1k classes that already cover each name
    (:func:`~zeroseg.models.lite.imagenet.imagenet_coverage`): which names the backbone's pretraining has
    seen, so "unseen" is not zero-shot for them. The text-space match needs an embedder whose backbone is
    the ImageNet classifier (the lite one); otherwise WordNet's alone."""
    from zeroseg.models.lite.imagenet import imagenet_coverage
    from zeroseg.segment.naming import imagenet_text

    embedder = getattr(namer, "embedder", None)
    has_classifier = callable(getattr(getattr(embedder, "backbone", None), "classify", None))
    encoder = getattr(embedder, "text_encoder", None)
    if encoder is None or not has_classifier:
        return imagenet_coverage(list(names))
    return imagenet_coverage(list(names), encoder.encode(list(names)).float().cpu(), imagenet_text(encoder))


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
    verify: bool = False,
    points_per_region: int = 0,
) -> dict[str, Any]:
    """Mean IoU of text-prompted masks against the class regions, over every (image, class present) pair.

    ``verify`` (the check of each mask by naming it) and ``points_per_region`` (point prompts at the
    region's peaks) are :func:`~zeroseg.segment.text_prompt.text_to_masks`'s; off by default, so the
    protocol measures the prompted regions as it always has: they are the user's protocol's devices
    against false positives and merged instances, the check rejects unseen names' masks on calibrated
    mask scores, and extra instance masks only add to a union.

    The name of each class present is handed to :func:`~zeroseg.segment.text_prompt.text_to_masks` with a
    namer over all evaluated names (seen names calibrated by ``calibration``); the union of the returned
    masks is compared with the class region, void and dropped pixels ignored. Returns ``miou``,
    ``seen_miou``, ``unseen_miou``, ``hmean`` (percent), ``n_prompts``, ``calibration`` and ``per_class``
    (``{"miou", "count", "seen"}``).
    """
    from zeroseg.segment.text_prompt import text_to_masks

    names, lookup = vocabulary_of(dataset.classes, dropped)
    unseen = set(evaluated_unseen(names, unseen))
    # "none" competes; the strict protocol keeps the ImageNet classifier out of the masks' check too
    namer, gamma = build_namer(model, names, unseen, calibration, background=True, classifier=False)
    ious: dict[str, list[float]] = {name: [] for name in names}
    for index in tqdm(range(len(dataset)), desc="images", disable=not progress):
        sample = dataset[index]
        gt = lookup[sample.label]
        for class_index in np.unique(gt[gt >= 0]).tolist():
            name = names[class_index]
            found = text_to_masks(sample.image, name, predictor, namer, verify=verify,
                                  points_per_region=points_per_region)
            predicted = union_of_masks(found, gt.shape)
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
        "verify": verify,
        "points_per_region": points_per_region,
        "per_class": {
            name: {"miou": 100 * float(np.mean(v)) if v else None, "count": len(v), "seen": name not in unseen}
            for name, v in ious.items()
        },
    }


HIT_IOU = 0.5  # an instance is found when a text-prompted mask overlaps it by at least this IoU


def user_text_namer(model: DenseEmbedder | NamerFactory, names: Sequence[str]) -> Any:
    """The namer ``zeroseg segment --text NAME --names NAMES`` makes: the product's defaults with the
    learned background as "none of these" (:func:`~zeroseg.segment.naming.load_namer`), over ``names``."""
    if isinstance(model, DenseEmbedder):
        from zeroseg.segment.naming import load_namer

        return load_namer(list(names), model, text=True)
    return model(list(names), seen=[], calibration=0.0)


def evaluate_text_prompt_hits(
    predictor: Any,
    model: DenseEmbedder | NamerFactory,
    dataset: NamingSource,
    unseen: Iterable[str] = (),
    progress: bool = True,
    absent_per_image: int | None = None,
    text_to_masks: Any = None,
    vocabulary: str = "all",
    phrase: str = "{}",
) -> dict[str, Any]:
    """The user's protocol for text prompts, on images with named instance masks.

    Each class name is prompted as the product does by default (:func:`user_text_namer`): with
    ``vocabulary`` "all" the whole vocabulary is the namer's (``zeroseg segment --text NAME --names
    ALL``), with "phrase" the phrase alone (``zeroseg segment --text NAME``, which then competes with
    :data:`~zeroseg.segment.text_prompt.CONTEXT_NAMES`). ``hit_rate``: the share of
    the instances of the classes present whose best returned mask has IoU >= :data:`HIT_IOU` with them;
    ``fp_rate``: the share of prompts for classes absent from the image that return any mask (every
    absent class, or the first ``absent_per_image`` of a fixed shuffle per image). Also ``first_hit_rate``
    (the first, best-ranked mask alone), ``empty_rate`` (prompts for present classes that return nothing),
    the hit rates of ``unseen`` and seen classes, ``n_instances``, ``n_absent_prompts`` and ``per_class``.
    Percentages. ``phrase`` is how a class name is typed ("a {}": "a cup"; default the bare name);
    ``text_to_masks`` replaces :func:`~zeroseg.segment.text_prompt.text_to_masks` (tests).
    """
    if "{}" not in phrase:
        raise DatasetError(f"the phrase template needs a {{}} for the class name, got {phrase!r}")
    if text_to_masks is None:
        from zeroseg.segment.text_prompt import text_to_masks

    if vocabulary not in ("all", "phrase"):
        raise DatasetError(f"vocabulary must be 'all' or 'phrase', not {vocabulary!r}")
    names = clean_names(dataset.classes)
    unseen = set(evaluated_unseen(names, unseen))
    base = user_text_namer(model, names)
    namers: dict[str, Any] = {}
    per_class = {n: {"instances": 0, "hits": 0, "first_hits": 0, "prompts": 0, "empty": 0, "absent_prompts": 0,
                     "false_positives": 0, "seen": n not in unseen} for n in names}
    for index in tqdm(range(len(dataset)), desc="images", disable=not progress):
        sample = dataset[index]
        keep = sample.masks.reshape(len(sample.masks), -1).any(1)
        truths = [clean_names([n])[0] for n, k in zip(sample.class_names, keep) if k]
        masks = sample.masks[keep]
        present = list(dict.fromkeys(truths))
        absent = [n for n in names if n not in present]
        if absent_per_image is not None:
            order = np.random.default_rng([index, len(names)]).permutation(len(absent))
            absent = [absent[k] for k in sorted(order[:absent_per_image])]
        for name in present + absent:
            namer = base if vocabulary == "all" else namers.setdefault(name, base.with_vocabulary([name]))
            typed = phrase.format(name)
            found = [np.asarray(s.mask, dtype=bool) for s in text_to_masks(sample.image, typed, predictor, namer)]
            counts = per_class[name]
            if name in absent:
                counts["absent_prompts"] += 1
                counts["false_positives"] += int(bool(found))
                continue
            counts["prompts"] += 1
            counts["empty"] += int(not found)
            for truth, mask in zip(truths, masks):
                if truth != name:
                    continue
                ious = [mask_iou(f, mask) for f in found]
                counts["instances"] += 1
                counts["hits"] += int(bool(ious) and max(ious) >= HIT_IOU)
                counts["first_hits"] += int(bool(ious) and ious[0] >= HIT_IOU)
    total = {key: sum(c[key] for c in per_class.values()) for key in
             ("instances", "hits", "first_hits", "prompts", "empty", "absent_prompts", "false_positives")}
    seen_hits, unseen_hits = _seen_unseen({n: (c["hits"], c["instances"]) for n, c in per_class.items()}, unseen)

    def rate(part: str, whole: str) -> float | None:
        return 100 * total[part] / total[whole] if total[whole] else None

    return {
        "hit_rate": rate("hits", "instances"),
        "fp_rate": rate("false_positives", "absent_prompts"),
        "first_hit_rate": rate("first_hits", "instances"),
        "empty_rate": rate("empty", "prompts"),
        "seen_hit_rate": seen_hits,
        "unseen_hit_rate": unseen_hits,
        "n_instances": total["instances"],
        "n_prompts": total["prompts"],
        "n_absent_prompts": total["absent_prompts"],
        "iou_threshold": HIT_IOU,
        "vocabulary": vocabulary,
        "phrase": phrase,
        "per_class": per_class,
    }
