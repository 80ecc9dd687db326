"""What every namer does with its scores: the best name of a vocabulary for each mask and pixel.

A namer gives log-scores per name plus, last, "none of these" when it has one (:meth:`mask_logits`,
:meth:`pixel_logits`); this base turns them into names, for masks, records, segments and pixels.
The dense namer (:class:`~zeroseg.segment.naming.Namer`) and the concept-model namer
(:class:`~zeroseg.segment.concept_naming.ConceptNamer`) differ only in how they score.

Segments named together (:meth:`name_segments`, :meth:`name_records`: segment-everything's output) are
named in context: a segment lying mostly inside a larger one is usually a part of it (a cat's eye, a
sleeve), and when the namer is unsure of the part it also asks what the part lies in
(:func:`in_context`; chosen with the lite namer on validation photos, docs/zero-shot.md; every namer gets it).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.errors import PromptValueError
from zeroseg.io import rle_to_mask
from zeroseg.models.text import clean_names

MASK_BATCH = 16  # masks named per step: bounds memory at MASK_BATCH x H x W floats
# A segment with at least PART_INSIDE of its pixels inside another at least PART_RATIO times its area is a
# part of it; the smallest such segment is its container. A part whose own best name has a softmax score
# under PART_UNSURE adds CONTAINER_WEIGHT x its container's log-softmax (the container's own, in context)
# to its log-softmax; so does a detail, a part under PART_DETAIL of its container's area (an eye, a button),
# however sure of itself: alone it is named from a few grid cells.
PART_INSIDE = 0.8
PART_RATIO = 1.5
PART_UNSURE = 0.7
PART_DETAIL = 0.02
CONTAINER_WEIGHT = 3.0
CONTEXT_SIDE = 160  # pixels: masks are compared at most this long a side
# Pixels labelled with segments (:meth:`VocabularyNamer.segment_pixel_logits`): a pixel whose own best name
# has a softmax score under PIXEL_UNSURE, when segments cover it, hears the mean log-softmax of their names
# with SEGMENT_WEIGHT against 1 on its own; each segment weighs its purity (the share of its pixels whose own
# best name is the segment's) to the power SEGMENT_PURITY_POWER, so a segment that merges two things (road and
# pavement) says little. Chosen on coco128, MSRC-21 and CamVid val pixels with the text prompts' proposals as
# segments (docs/zero-shot.md).
PIXEL_UNSURE = 0.7
SEGMENT_WEIGHT = 2.0
SEGMENT_PURITY_POWER = 2.0
PIXEL_CHUNK = 1 << 18  # pixels mixed at a time (segment_pixel_logits)


class VocabularyNamer:
    """Names from a vocabulary; subclasses score masks (:meth:`mask_logits`) and pixels (:meth:`pixel_logits`).

    Arguments:
      vocabulary: names, as a list or "sky, grass, cow" (cleaned with `clean_names`).
      background_threshold: a pixel or mask whose best softmax score is below this stays unnamed.
    """

    def __init__(self, vocabulary: Sequence[str] | str, background_threshold: float | None = None) -> None:
        self.vocabulary = _checked(vocabulary)
        self.background_threshold = background_threshold

    def with_vocabulary(self, vocabulary: Sequence[str] | str) -> Any:
        """The same namer (model, settings, caches) over another vocabulary."""
        other = copy.copy(self)
        other.vocabulary = _checked(vocabulary)
        other._vocabulary_changed()
        return other

    def _vocabulary_changed(self) -> None:
        """Recompute what depends on the vocabulary (after :meth:`with_vocabulary`)."""

    # --- scores: the subclass's --------------------------------------------------------------
    def mask_logits(self, image: Any, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-scores [N, K(+1 for "none")] of masks [N, H, W] bool, and which masks are non-empty [N]."""
        raise NotImplementedError

    def pixel_logits(self, image: Any) -> torch.Tensor:
        """Log-scores [K(+1 for "none"), H, W] of every pixel."""
        raise NotImplementedError

    # --- names ---------------------------------------------------------------------------------
    def label_pixels(self, image: Any, segments: np.ndarray | None = None) -> np.ndarray:
        """[H, W] int64 index into `vocabulary`; -1 where "none" wins or the best score is low. With
        ``segments`` (masks [N, H, W] bool, e.g. the image's segment-everything masks), pixels also take the
        names of the segments they lie in (:meth:`segment_pixel_logits`)."""
        logits = self.pixel_logits(image) if segments is None else self.segment_pixel_logits(image, segments)
        return self._decide(logits)[0].numpy()

    def segment_pixel_logits(self, image: Any, segments: np.ndarray) -> torch.Tensor:
        """Pixel log-softmax [K(+1), H, W] in which each pixel that is unsure of itself (:data:`PIXEL_UNSURE`)
        and lies in some of ``segments`` [N, H, W] bool is averaged with :data:`SEGMENT_WEIGHT` x the
        purity-weighted mean log-softmax of those segments' names (each named alone, mask-pooled): a pixel
        alone is named from its grid cell, a segment from all of it. Pixels are mixed
        :data:`PIXEL_CHUNK` at a time, so memory stays near that of the pixel scores themselves."""
        pixels = F.log_softmax(self.pixel_logits(image).float(), dim=0)
        masks = np.asarray(segments, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != pixels.shape[1:]:
            raise PromptValueError(f"segments must be masks [N, {pixels.shape[1]}, {pixels.shape[2]}], not {masks.shape}")
        logits, present = self._scored(image, masks)
        named, masks = F.log_softmax(logits.float(), dim=1)[present], masks[present.numpy()]
        flat, masks = pixels.view(len(pixels), -1), masks.reshape(len(masks), pixels[0].numel())
        chunks = [slice(start, start + PIXEL_CHUNK) for start in range(0, flat.shape[1], PIXEL_CHUNK)]
        agree, area = torch.zeros(len(masks)), torch.zeros(len(masks))
        for part in chunks:  # purity: the share of each segment's pixels whose own best name is the segment's
            inside = torch.from_numpy(masks[:, part]).float()
            agree += (inside * (flat[:, part].argmax(0)[None, :] == named.argmax(1)[:, None])).sum(1)
            area += inside.sum(1)
        purity = (agree / area.clamp(min=1)) ** SEGMENT_PURITY_POWER
        for part in chunks:
            scores = flat[:, part]  # a view: mixed in place
            weighted = torch.from_numpy(masks[:, part]).float() * purity[:, None]
            weight = weighted.sum(0)
            mixed = (weight > 0) & (scores.amax(0).exp() < PIXEL_UNSURE)
            if mixed.any():
                heard = named.T @ weighted[:, mixed] / weight[mixed]
                scores[:, mixed] = (scores[:, mixed] + SEGMENT_WEIGHT * heard) / (1 + SEGMENT_WEIGHT)
        return pixels

    def name_masks(self, image: Any, masks: np.ndarray) -> list[tuple[str | None, float]]:
        """For each mask of `masks` [N, H, W] bool: (best name or None, its softmax score); an empty
        mask gets (None, 0). See :meth:`mask_logits`."""
        return self.names_from_logits(*self.mask_logits(image, masks))

    def names_from_logits(self, logits: torch.Tensor, present: torch.Tensor) -> list[tuple[str | None, float]]:
        """:meth:`name_masks`'s decision from :meth:`mask_logits`'s output (for callers that also need
        the scores of every name, without computing them twice)."""
        labels, scores = self._decide(logits.T)
        return [
            (self.vocabulary[label] if label >= 0 else None, score) if ok else (None, 0.0)
            for label, score, ok in zip(labels.tolist(), scores.tolist(), present.tolist())
        ]

    def name_records(self, image: Any, records: list[dict[str, Any]], context: bool = True) -> list[dict[str, Any]]:
        """Add `label` and `label_score` to segment records (in place; also returned), reading each
        record's `segmentation` (bool HxW array or COCO RLE); parts are named in ``context``."""
        masks = [_as_mask(r["segmentation"]) for r in records]
        for record, (label, score) in zip(records, self._name_together(image, masks, context)):
            record["label"], record["label_score"] = label, float(score)
        return records

    def name_segments(self, image: Any, segments: Sequence[Any], context: bool = True) -> Sequence[Any]:
        """Set ``label`` and ``label_score`` (None when unnamed) of :class:`~zeroseg.segment.record.Segment`
        records, in place; also returned. Parts are named in ``context`` (:func:`in_context`; a part's
        score is then its softmax score in context)."""
        for segment, (label, score) in zip(segments, self._name_together(image, [s.mask for s in segments], context)):
            segment.label, segment.label_score = label, (float(score) if label is not None else None)
        return segments

    # --- helpers --------------------------------------------------------------------------------
    def _name_together(self, image: Any, masks: Sequence[np.ndarray], context: bool) -> list[tuple[str | None, float]]:
        """(name, score) of each mask, scored :data:`MASK_BATCH` at a time to bound memory, then decided
        together (with ``context``, parts in the light of their containers)."""
        if not masks:
            return []
        logits, present = self._scored(image, masks)
        if context:
            logits = in_context(logits, *containers(masks))
        return self.names_from_logits(logits, present)

    def _scored(self, image: Any, masks: Sequence[np.ndarray] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`mask_logits` of many masks, :data:`MASK_BATCH` at a time to bound memory."""
        if not len(masks):
            return torch.zeros(0, len(self.vocabulary)), torch.zeros(0, dtype=torch.bool)
        scored = [self.mask_logits(image, np.stack(masks[start : start + MASK_BATCH])) for start in range(0, len(masks), MASK_BATCH)]
        return torch.cat([s[0] for s in scored]), torch.cat([s[1] for s in scored])

    def _decide(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Winner of logits [K(+1), ...] along dim 0 and its softmax score; the winner is -1 (none) for
        the "none" column or a score under `background_threshold`."""
        scores, labels = logits.softmax(0).max(0)
        none = labels == len(self.vocabulary)
        if self.background_threshold is not None:
            none |= scores < self.background_threshold
        return torch.where(none, -1, labels), scores


def containers(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For each mask (bool HxW, all one size), the index of the smallest mask that holds it as a part
    (:data:`PART_INSIDE` of it, :data:`PART_RATIO` times its area), or -1, and whether it is a detail of
    that container (under :data:`PART_DETAIL` of its area); compared at most :data:`CONTEXT_SIDE` pixels
    a side."""
    if not len(masks):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    step = max(1, -(-max(masks[0].shape) // CONTEXT_SIDE))
    flat = torch.from_numpy(np.stack([m[::step, ::step] for m in masks]).reshape(len(masks), -1)).float()
    overlap = flat @ flat.T  # [part, container] shared pixels
    area = flat.sum(1)
    holds = (overlap >= PART_INSIDE * area[:, None]) & (area[None, :] >= PART_RATIO * area[:, None]) & (area[:, None] > 0)
    holds.fill_diagonal_(False)
    size = torch.where(holds, area[None, :].expand_as(holds), torch.inf)
    smallest, held = size.min(1)
    held = torch.where(holds.any(1), held, -1)
    detail = holds.any(1) & (area <= PART_DETAIL * smallest)
    return held.numpy(), detail.numpy()


def in_context(logits: torch.Tensor, container: np.ndarray, detail: np.ndarray | None = None) -> torch.Tensor:
    """Log-scores [N, K(+1)] as log-softmax, each part's, where its own best softmax score is under
    :data:`PART_UNSURE` or it is a ``detail`` (bool [N]; both from :func:`containers`), plus :data:`CONTAINER_WEIGHT`
    x its container's (the container's own in context: a container is settled before its parts)."""
    own = F.log_softmax(logits.float(), dim=1)
    mixed = own.clone()
    unsure = (own.exp().amax(1) < PART_UNSURE).numpy()
    if detail is not None:
        unsure = unsure | detail
    for i in sorted(range(len(container)), key=lambda k: _depth(container, k)):
        if container[i] >= 0 and unsure[i]:
            mixed[i] = own[i] + CONTAINER_WEIGHT * F.log_softmax(mixed[container[i]], dim=0)
    return mixed


def _depth(container: np.ndarray, index: int) -> int:
    """How many containers hold ``index`` one inside another (containers are larger, so chains end)."""
    depth = 0
    while container[index] >= 0:
        index, depth = int(container[index]), depth + 1
    return depth


def _checked(vocabulary: Sequence[str] | str) -> list[str]:
    names = clean_names(vocabulary)
    if not names:
        raise PromptValueError("a vocabulary needs at least one name")
    return names


def _as_mask(segmentation: Any) -> np.ndarray:
    return rle_to_mask(segmentation) if isinstance(segmentation, dict) else np.asarray(segmentation, dtype=bool)
