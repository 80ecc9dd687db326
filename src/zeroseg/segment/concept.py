"""Concept prompts (SAM 3): a phrase, exemplar boxes, or both -> every instance, as Segment records.

A concept model (``model.concepts`` is true: :func:`zeroseg.models.hf.sam3.build_sam3`) finds every
instance of a noun phrase or of what the exemplar boxes show in one pass. :func:`concept_masks` is
the one path from a prompt to :class:`~zeroseg.segment.record.Segment` records (``text_to_masks``
with such a model calls it); :class:`ConceptLabeller` runs one prompt per name of a vocabulary, the
automatic stage of the data engine for concept models.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from zeroseg.errors import PromptShapeError, PromptValueError
from zeroseg.io import load_image
from zeroseg.segment.record import Segment
from zeroseg.segment.validation import check_boxes
from zeroseg.vocabulary import clean_names

DEDUPE_IOU = 0.7
"""Two names' masks overlapping by more than this mask IoU are one object: the lower score is dropped."""

Exemplar = tuple[Sequence[float], bool]
"""An exemplar box: (XYXY pixels, positive)."""


def is_concept_model(model: Any) -> bool:
    """Whether ``model`` takes concept prompts (text and exemplar boxes -> every instance)."""
    return bool(getattr(model, "concepts", False))


def concept_masks(
    image: Any,
    model: Any,
    phrase: str | None = None,
    exemplars: Iterable[Exemplar] = (),
    threshold: float | None = None,
    *,
    source: str = "assisted",
) -> list[Segment]:
    """Every instance of the concept in ``image``, best score first; ``[]`` when none passes.

    ``phrase``: a noun phrase ("a cow"); ``exemplars``: boxes ``(x0, y0, x1, y1)`` in pixels with
    True for "more like this" and False for "not like this"; give either or both. ``threshold``:
    instance score to pass (default the model's, 0.5 for SAM 3).

    Each segment: ``label`` the phrase (None for exemplars alone), ``label_score`` and
    ``predicted_iou`` the model's instance score (SAM 3 has one score per instance),
    ``prompt`` ``{"text": phrase, "exemplars": [[x0, y0, x1, y1, 1 or 0], ...]}`` (keys present when
    used), ``source`` as given. Instances whose mask is empty at the image's size are left out.
    """
    if not is_concept_model(model):
        raise PromptValueError(f"{getattr(model, 'name', None) or type(model).__name__} does not take concept prompts")
    image = load_image(image)
    label = None
    if phrase is not None:
        names = clean_names([phrase])
        if not names:
            raise PromptValueError("the phrase is empty")
        label = names[0]
    boxes, labels = exemplar_arrays(exemplars, image.shape[:2])
    if label is None and boxes is None:
        raise PromptValueError("a concept prompt needs a phrase, exemplar boxes, or both")
    found = model.find(image, label, exemplar_boxes=boxes, exemplar_labels=labels, threshold=threshold)[0]
    prompt: dict[str, Any] = {} if label is None else {"text": label}
    if boxes is not None:
        prompt["exemplars"] = [[*map(float, b), int(k)] for b, k in zip(boxes, labels)]
    provenance = _provenance(model, source)
    return [
        Segment(mask, predicted_iou=float(score), prompt=dict(prompt), label=label,
                label_score=None if label is None else float(score), **provenance)
        for mask, score in zip(found.masks, found.scores)
        if mask.any()
    ]  # fmt: skip


def exemplar_arrays(exemplars: Iterable[Exemplar], size: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``[(box, positive), ...]`` -> checked XYXY boxes Kx4 and labels K (1/0), or (None, None)."""
    exemplars = list(exemplars)
    if not exemplars:
        return None, None
    try:
        boxes = [list(box) for box, _ in exemplars]
        labels = np.asarray([1 if positive else 0 for _, positive in exemplars], dtype=np.int64)
    except (TypeError, ValueError):
        raise PromptShapeError("exemplars are (box, positive) pairs, box = (x0, y0, x1, y1) in pixels") from None
    return check_boxes(boxes, size, batched=True), labels


class ConceptLabeller:
    """Label every instance of every name: one concept prompt per name on an image embedded once.

    The automatic stage's pipeline for concept models (``engine auto --model sam3 --names ...``): the
    names' text side is computed once for all images (the model caches it). Arguments:

      model: a concept model (:func:`is_concept_model`).
      names: the vocabulary; each name is a phrase prompt and the label of what it finds.
      threshold: instance score to pass (default the model's).
      min_area: drop masks smaller than this many pixels.
      max_masks: keep at most this many segments per image, best first (None: all).
      dedupe_iou: a mask overlapping a better one *of another name* by more than this IoU is dropped.
      source: provenance recorded on every segment.
    """

    def __init__(
        self,
        model: Any,
        names: Sequence[str] | str,
        threshold: float | None = None,
        *,
        min_area: int = 0,
        max_masks: int | None = None,
        dedupe_iou: float = DEDUPE_IOU,
        source: str = "auto",
    ) -> None:
        if not is_concept_model(model):
            raise PromptValueError(f"{getattr(model, 'name', None) or type(model).__name__} does not take concept prompts")
        self.model = model
        self.names = clean_names(names)
        if not self.names:
            raise PromptValueError(f"{getattr(model, 'name', None) or 'a concept model'} labels by name: give names")
        self.threshold, self.min_area, self.max_masks = threshold, min_area, max_masks
        self.dedupe_iou, self.source = dedupe_iou, source

    def __call__(self, image: Any) -> list[Segment]:
        """The image's segments of every name, best score first (ties: vocabulary order)."""
        image = load_image(image)
        provenance = _provenance(self.model, self.source)
        segments: list[Segment] = []
        for name, found in zip(self.names, self.model.find(image, self.names, threshold=self.threshold)):
            segments += [
                Segment(mask, predicted_iou=float(score), prompt={"text": name}, label=name,
                        label_score=float(score), **provenance)
                for mask, score in zip(found.masks, found.scores)
            ]  # fmt: skip
        segments = [s for s in segments if s.area >= max(self.min_area, 1)]
        segments.sort(key=lambda s: -s.predicted_iou)  # stable: ties keep vocabulary order
        segments = _drop_cross_name_duplicates(segments, self.dedupe_iou)
        return segments if self.max_masks is None else segments[: self.max_masks]


def _drop_cross_name_duplicates(segments: list[Segment], iou_threshold: float) -> list[Segment]:
    """Greedy over segments sorted best first: drop one overlapping a kept segment of another name."""
    if len(segments) < 2:
        return segments
    coded = [{"size": s.rle["size"], "counts": s.rle["counts"].encode("ascii")} for s in segments]
    iou = mask_utils.iou(coded, coded, [0] * len(coded))
    keep: list[int] = []
    for i, segment in enumerate(segments):
        if all(iou[i, j] <= iou_threshold or segments[j].label == segment.label for j in keep):
            keep.append(i)
    return [segments[i] for i in keep]


def _provenance(model: Any, source: str) -> dict[str, Any]:
    return {"source": source, "model_name": getattr(model, "name", None), "model_version": getattr(model, "version", None)}
