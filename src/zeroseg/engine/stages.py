"""The data engine's stages: add images, annotate them automatically, propose masks for review.

- :func:`add_images` registers files or folders as a dataset's images.
- :func:`annotate_image` is the automatic stage's work on one image, pure and deterministic:
  segment everything, keep the masks that pass the quality filters, name them from a vocabulary; with
  a concept model (SAM 3), one concept prompt per name instead, which labels every instance of it.
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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
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
from zeroseg.preset import Preset
from zeroseg.segment.record import Segment

if TYPE_CHECKING:
    from zeroseg.segment.concept import ConceptLabeller
    from zeroseg.segment.pipeline import Everything


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
    """Settings of the automatic stage: the model, the names, and overrides of the model's preset.

    Every setting left None is the model's preset's (``zeroseg models show MODEL``), so the stage runs
    a model exactly as ``zeroseg everything`` does.

      model: registered segmentation model (``zeroseg models``).
      names: vocabulary that names the masks (empty: masks stay unnamed). A concept model (SAM 3)
        needs names: it finds every instance of each.
      status: review status of the masks stored by :func:`auto` (accepted: a fully automatic run;
        proposed: leave them for review).
      dtype: weights' type of a Hugging Face model (``hub.load_model``'s ``dtype``).
      compile: compile a Hugging Face model's prompt path (``hub.load_model``'s ``compile``): a
        minute or so per worker at start, then each grid batch decodes about twice as fast.
      points_per_side ... calibrate: as :class:`zeroseg.preset.Preset`. A concept model reads
        only pred_iou_thresh (as its instance score threshold; default the model's), min_area and
        max_masks.
    """

    model: str = "lite"
    names: tuple[str, ...] = ()  # a list or "sky, grass, cow" is accepted too
    status: Status = Status.ACCEPTED
    dtype: str | None = None  # weights' type of a Hugging Face model ("bfloat16" opts in); None: float32
    compile: bool = False
    points_per_side: int | None = None
    points_per_batch: int | None = None
    pred_iou_thresh: float | None = None
    stability_score_thresh: float | None = None
    stability_score_offset: float | None = None
    box_nms_thresh: float | None = None
    min_area: int | None = None
    max_masks: int | None = None
    background_threshold: float | None = None
    embedder: str | None = None
    calibrate: bool | None = None

    def __post_init__(self) -> None:
        from zeroseg.vocabulary import clean_names

        object.__setattr__(self, "names", tuple(clean_names(self.names)))
        object.__setattr__(self, "status", Status(self.status))
        Preset().override(**self.overrides())  # the same checks as the preset's

    def overrides(self) -> dict[str, Any]:
        """The preset fields this config sets."""
        return {f.name: getattr(self, f.name) for f in fields(Preset) if getattr(self, f.name, None) is not None}

    def settings(self, preset: Preset) -> Preset:
        """The preset with this config's overrides."""
        return preset.override(**self.overrides())


@dataclass
class AutoModels:
    """What :func:`annotate_image` runs: the everything -> filter -> name pipeline of a config, or the
    one concept prompt per name of a concept model."""

    pipeline: Everything | ConceptLabeller


def load_models(config: AutoConfig, device: str = "cpu") -> AutoModels:
    """The config's model, in the pipeline with its preset overridden by the config, and a namer if it
    has names; a concept model labels with its own concept prompts, one per name."""
    from zeroseg import hub
    from zeroseg.segment import Predictor
    from zeroseg.segment.concept import ConceptLabeller, is_concept_model
    from zeroseg.segment.pipeline import Everything, namer_for

    model = hub.load_model(config.model, device=device, dtype=config.dtype, compile=config.compile)
    settings = config.settings(hub.preset_of(model))
    if is_concept_model(model):
        if not config.names:
            raise PromptValueError(f"{config.model} is a concept model: it labels by name; give --names")
        model.cache_size = 0  # every image is seen once: keep no image embedding (the names' are kept)
        labeller = ConceptLabeller(
            model, config.names, config.pred_iou_thresh, min_area=settings.min_area, max_masks=settings.max_masks
        )
        return AutoModels(labeller)
    namer = namer_for(list(config.names), settings, cache_size=0) if config.names else None
    return AutoModels(Everything(Predictor(model, cache_size=0), settings, namer))


def annotate_image(
    image: np.ndarray, config: AutoConfig, models: AutoModels, *, image_id: int = 0
) -> list[NewAnnotation]:
    """The automatic annotations of one RGB image: the pipeline's segments as annotations to store.

    Pure (no store access) and deterministic for given models and thread count. Masks are COCO RLE,
    best predicted IoU first; ``source`` is auto and ``status`` the config's. ``image_id`` is copied
    into every annotation.
    """
    return [new_annotation(s, image_id, config.status) for s in models.pipeline(image)]


def new_annotation(segment: Segment, image_id: int, status: Status) -> NewAnnotation:
    """A segment as an annotation to store."""
    return NewAnnotation(
        image_id=image_id,
        mask=segment.rle,
        label=segment.label,
        label_score=segment.label_score,
        predicted_iou=segment.predicted_iou,
        stability_score=segment.stability_score,
        source=Source(segment.source),
        status=status,
        model_name=segment.model_name,
        model_version=segment.model_version,
        bbox=segment.bbox,
        area=segment.area,
    )


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

def propose(store: Store, image_id: int, pipeline: Everything, *, author: str = "auto") -> list[AnnotationRecord]:
    """Store the masks ``pipeline`` finds in one image as proposals.

    The caller hands its pipeline (the app: its own model, namer and score bar). Proposals have status
    proposed and source auto: a person accepts or rejects each in the app, then adds what is missing.
    Masks that duplicate a live annotation of the image (mask IoU of :data:`DUPLICATE_IOU` or more,
    including rejected ones) are left out, so asking again adds only new masks.
    """
    record = store.get_image(image_id)
    image = read_image(record.file, record.height, record.width)
    annotations = [new_annotation(s, image_id, Status.PROPOSED) for s in pipeline(image)]
    existing = [a.rle for a in store.annotations_for(image_id)]
    fresh = [a for a in annotations if not _duplicates(a.mask, existing)]
    return store.add_annotations(fresh, author=author)


def _duplicates(rle: Any, others: list[dict[str, Any]]) -> bool:
    if not others:
        return False
    coded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in (rle, *others)]
    ious = mask_utils.iou(coded[:1], coded[1:], [0] * len(others))
    return bool(np.max(ious) >= DUPLICATE_IOU)
