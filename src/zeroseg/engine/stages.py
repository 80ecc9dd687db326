"""The data engine's stages: add images, annotate them automatically, propose masks for review.

- :func:`add_images` registers files or folders as a dataset's images.
- :func:`annotate_image` is the automatic stage's work on one image, pure and deterministic:
  segment everything, keep the masks that pass the quality filters, name them from a vocabulary.
  The single-process runner (:func:`auto`) and the Ray runner (``ray_runner.auto_ray``) both call it,
  which is what makes their results equal.
- :func:`auto` runs it over every image of a dataset that the automatic stage has not done yet. Each
  image's masks and its status change are committed in one transaction, so a killed run resumes
  exactly where it stopped and never leaves an image half annotated.
- :func:`propose` is the semi-automatic stage: the masks of one image are stored as proposals that a
  person accepts or rejects in the app before adding what is missing.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from zeroseg.engine.schema import ImageStatus, Source, Status
from zeroseg.engine.store import (
    IMAGE_SUFFIXES,
    AnnotationRecord,
    ImageRecord,
    NewAnnotation,
    Store,
    scan_images,
)
from zeroseg.errors import DatasetError, NotFoundError, PromptValueError, ZerosegError

if TYPE_CHECKING:
    from zeroseg.segment import MaskGenerator, Namer


# --- adding images ------------------------------------------------------------------------
def add_images(
    store: Store,
    dataset: str,
    paths_or_folders: Iterable[str | os.PathLike[str]],
    root: str | os.PathLike[str] | None = None,
) -> list[ImageRecord]:
    """Add image files, and every image file under the given folders, to ``dataset``.

    A missing dataset is created with root ``root``, by default the folder given (or the deepest
    folder holding every file given). Files must lie under the dataset's root. Adding a file again is
    harmless. Returns the records of all files given, in order (folders sorted).
    """
    files: list[Path] = []
    for item in paths_or_folders:
        path = Path(item).expanduser().resolve()
        if path.is_dir():
            found = scan_images(path)
            if not found:
                raise DatasetError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{item}: no such file or folder")
    if not files:
        raise DatasetError("give at least one image file or folder")
    try:
        store.get_dataset(dataset)
    except NotFoundError:
        if root is None:
            root = os.path.commonpath([str(f.parent) for f in files])
        store.create_dataset(dataset, root)
    return store.add_images(dataset, files)


# --- the automatic stage on one image -----------------------------------------------------
@dataclass(frozen=True)
class AutoConfig:
    """Settings of the automatic stage.

    The default thresholds suit the embedded ``lite`` model, whose scores sit lower than SAM's
    (docs/models/lite.md); on 8 COCO128 photos its predicted IoU separated good masks from bad ones
    and its stability score did not, hence a loose stability filter. For SAM models use the
    reference's 0.88 / 0.95.

      model: registered segmentation model (``zeroseg models``).
      points_per_side: grid of N x N point prompts.
      points_per_batch: prompts decoded together (memory vs speed; results do not change).
      pred_iou_thresh: keep masks whose predicted IoU is above this.
      stability_score_thresh: keep masks whose stability score is at least this.
      stability_score_offset: logit offset of the stability score.
      box_nms: box IoU above which the lower-scored of two masks is dropped.
      min_area: fill holes and remove islands smaller than this many pixels, then drop smaller masks.
      max_masks: keep at most this many masks per image, best predicted IoU first (None: all).
      names: vocabulary that names the masks (empty: masks stay unnamed).
      background_threshold: a mask whose best name scores below this stays unnamed.
      embedder: dense vision-language embedder used for naming (lite, maskclip, groupvit).
      status: review status of the masks stored by :func:`auto` (accepted: a fully automatic run;
        proposed: leave them for review).
    """

    model: str = "lite"
    points_per_side: int = 16
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.2
    stability_score_offset: float = 1.0
    box_nms: float = 0.7
    min_area: int = 100
    max_masks: int | None = 100
    names: tuple[str, ...] = ()  # a list or "sky, grass, cow" is accepted too
    background_threshold: float | None = None
    embedder: str = "lite"
    status: Status = Status.ACCEPTED

    def __post_init__(self) -> None:
        from zeroseg.vocabulary import clean_names

        object.__setattr__(self, "names", tuple(clean_names(self.names)))
        object.__setattr__(self, "status", Status(self.status))
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise PromptValueError("points_per_side and points_per_batch must be at least 1")
        if self.min_area < 0 or (self.max_masks is not None and self.max_masks < 0):
            raise PromptValueError("min_area and max_masks must not be negative")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PromptValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclass
class AutoModels:
    """What :func:`annotate_image` runs: the mask generator and, when there are names, the namer."""

    generator: MaskGenerator
    namer: Namer | None = None
    model_name: str | None = None
    model_version: str | None = None


def load_models(config: AutoConfig, device: str = "cpu") -> AutoModels:
    """The models of ``config``: its segmentation model in a mask generator, and a namer if it has names."""
    from zeroseg import __version__, hub
    from zeroseg.engine.train import register_local_models
    from zeroseg.segment import MaskGenerator, Predictor
    from zeroseg.segment.naming import load_namer

    register_local_models()  # versions trained by `zeroseg engine train`, if the hub does not know them
    entry = hub.get(config.model)
    generator = MaskGenerator(
        Predictor(hub.load_model(entry.name, device=device), cache_size=0),
        points_per_side=config.points_per_side,
        points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        stability_score_offset=config.stability_score_offset,
        box_nms_thresh=config.box_nms,
        min_mask_region_area=config.min_area,
        output_mode="coco_rle",
    )
    namer = None
    if config.names:
        namer = load_namer(
            list(config.names), config.embedder, background_threshold=config.background_threshold, cache_size=0
        )
    version = entry.sha256[:12] if entry.sha256 else f"zeroseg {__version__}"
    return AutoModels(generator, namer, model_name=entry.name, model_version=version)


def annotate_image(
    image: np.ndarray, config: AutoConfig, models: AutoModels, *, image_id: int = 0
) -> list[NewAnnotation]:
    """The automatic annotations of one RGB image: segment everything, filter, name.

    Pure (no store access) and deterministic for given models and thread count. Masks are COCO RLE,
    best predicted IoU first; ``source`` is auto and ``status`` the config's. ``image_id`` is copied
    into every annotation.
    """
    records = models.generator.generate(image)
    records = [r for r in records if r["area"] >= max(config.min_area, 1)]
    records.sort(key=lambda r: (-r["predicted_iou"], -r["stability_score"]))
    if config.max_masks is not None:
        records = records[: config.max_masks]
    if models.namer is not None and records:
        models.namer.name_records(image, records)
    return [
        NewAnnotation(
            image_id=image_id,
            mask=r["segmentation"],
            label=r.get("label"),
            label_score=r.get("label_score") if r.get("label") else None,
            predicted_iou=r["predicted_iou"],
            stability_score=r["stability_score"],
            source=Source.AUTO,
            status=config.status,
            model_name=models.model_name,
            model_version=models.model_version,
        )
        for r in records
    ]


def read_image(file: str | os.PathLike[str], height: int, width: int) -> np.ndarray:
    """The pixels of a stored image (``ImageRecord.file``, ``.height``, ``.width``); DatasetError if the
    file no longer has the size it was added with."""
    from zeroseg.io import load_image

    image = load_image(file)
    if image.shape[:2] != (height, width):
        raise DatasetError(
            f"{file} is {image.shape[1]}x{image.shape[0]} now, {width}x{height} when it was added: "
            "the file changed; add it to a new dataset"
        )
    return image


# --- the automatic stage over a dataset ---------------------------------------------------
@dataclass
class AutoSummary:
    """What one automatic run did."""

    dataset: str
    processed: int = 0  # images annotated and committed by this run
    skipped: int = 0  # images done before this run started
    annotations: int = 0  # masks stored by this run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image path, error) left as "new"
    seconds: float = 0.0

    @property
    def images_per_minute(self) -> float:
        return 60.0 * self.processed / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.dataset}: annotated {self.processed} image(s) with {self.annotations} mask(s) "
            f"in {self.seconds:.1f} s ({self.images_per_minute:.1f} images/min); "
            f"{self.skipped} done before"
        )
        return text + (f"; {len(self.failed)} failed" if self.failed else "")


AUTHOR = "zeroseg engine auto"
"""Author recorded on the masks and edits of the automatic stage."""


def pending_images(store: Store, dataset: str, limit: int | None = None) -> tuple[list[ImageRecord], int]:
    """The images of ``dataset`` the automatic stage has not done (at most ``limit``), and how many it has."""
    if limit is not None and limit < 0:
        raise PromptValueError(f"limit must not be negative, got {limit}")
    pending = store.images(dataset, status=ImageStatus.NEW, limit=limit)
    done = len(store.images(dataset, status=[ImageStatus.AUTO_DONE, ImageStatus.REVIEWED]))
    return pending, done


def commit_image(store: Store, image_id: int, annotations: Sequence[NewAnnotation]) -> list[AnnotationRecord]:
    """Store one image's automatic masks and mark it done, in one transaction."""
    return store.add_annotations(annotations, author=AUTHOR, done_images=[image_id])


def auto(
    store: Store,
    dataset: str,
    config: AutoConfig | None = None,
    *,
    progress: bool = True,
    limit: int | None = None,
    models: AutoModels | None = None,
) -> AutoSummary:
    """Annotate every image of ``dataset`` that the automatic stage has not done (at most ``limit``).

    Images whose status is auto_done or reviewed are skipped. An image that cannot be read is
    reported in the summary and left as new (the next run tries it again). ``models`` defaults to
    :func:`load_models` of the config (loaded only when there is work).
    """
    config = config or AutoConfig()
    started = time.perf_counter()
    pending, done = pending_images(store, dataset, limit)
    summary = AutoSummary(dataset, skipped=done)
    if pending and models is None:
        models = load_models(config)
    with tqdm(pending, desc=f"auto {dataset}", unit="image", disable=not progress) as bar:
        for record in bar:
            try:
                image = read_image(record.file, record.height, record.width)
            except ZerosegError as err:
                summary.failed.append((record.path, str(err)))
                continue
            annotations = annotate_image(image, config, models, image_id=record.id)  # type: ignore[arg-type]
            commit_image(store, record.id, annotations)
            summary.processed += 1
            summary.annotations += len(annotations)
            bar.set_postfix(masks=summary.annotations)
    summary.seconds = time.perf_counter() - started
    return summary


# --- the semi-automatic stage -------------------------------------------------------------
DUPLICATE_IOU = 0.7
"""A proposal whose mask overlaps a live annotation of the image by this IoU or more is not stored."""

PROPOSE_CONFIG = AutoConfig(status=Status.PROPOSED)
"""Settings of :func:`propose` but for the model, names and score bar it is called with."""

_MODEL_CACHE_SIZE = 2
_models_cache: OrderedDict[AutoConfig, AutoModels] = OrderedDict()
_models_lock = threading.Lock()


def propose(
    store: Store,
    image_id: int,
    *,
    model: str = "lite",
    names: Sequence[str] = (),
    min_score: float = 0.0,
    author: str = "auto",
) -> list[AnnotationRecord]:
    """Store the automatic masks of one image whose predicted IoU is above ``min_score`` as proposals.

    Proposals have status proposed and source auto: a person accepts or rejects each in the app, then
    adds what is missing. Masks that duplicate a live annotation of the image (mask IoU of
    :data:`DUPLICATE_IOU` or more, including rejected ones) are left out, so asking again adds only
    new masks. The other settings are :data:`PROPOSE_CONFIG`'s. Models stay loaded between calls;
    calls from several threads run one at a time.
    """
    config = replace(PROPOSE_CONFIG, model=model, names=tuple(names), pred_iou_thresh=float(min_score))
    record = store.get_image(image_id)
    image = read_image(record.file, record.height, record.width)
    with _models_lock:
        models = _models_cache.pop(config, None) or load_models(config)
        _models_cache[config] = models
        while len(_models_cache) > _MODEL_CACHE_SIZE:
            _models_cache.popitem(last=False)
        annotations = annotate_image(image, config, models, image_id=image_id)
    existing = [a.rle for a in store.annotations_for(image_id)]
    fresh = [a for a in annotations if not _duplicates(a.mask, existing)]
    return store.add_annotations(fresh, author=author)


def _duplicates(rle: Any, others: list[dict[str, Any]]) -> bool:
    if not others:
        return False
    coded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in (rle, *others)]
    ious = mask_utils.iou(coded[:1], coded[1:], [0] * len(others))
    return bool(np.max(ious) >= DUPLICATE_IOU)
