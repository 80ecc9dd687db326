"""What every namer does with its scores: the best name of a vocabulary for each mask and pixel.

A namer gives log-scores per name plus, last, "none of these" when it has one (:meth:`mask_logits`,
:meth:`pixel_logits`); this base turns them into names, for masks, records, segments and pixels.
The dense namer (:class:`~zeroseg.segment.naming.Namer`) and the concept-model namer
(:class:`~zeroseg.segment.concept_naming.ConceptNamer`) differ only in how they score.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from zeroseg.errors import PromptValueError
from zeroseg.io import rle_to_mask
from zeroseg.models.text import clean_names

MASK_BATCH = 16  # masks named per step: bounds memory at MASK_BATCH x H x W floats


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
    def label_pixels(self, image: Any) -> np.ndarray:
        """[H, W] int64 index into `vocabulary`; -1 where "none" wins or the best score is low."""
        return self._decide(self.pixel_logits(image))[0].numpy()

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

    def name_records(self, image: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add `label` and `label_score` to segment records (in place; also returned), reading each
        record's `segmentation` (bool HxW array or COCO RLE)."""
        for record, (label, score) in self._name_batched(image, records, lambda r: _as_mask(r["segmentation"])):
            record["label"], record["label_score"] = label, float(score)
        return records

    def name_segments(self, image: Any, segments: Sequence[Any]) -> Sequence[Any]:
        """Set ``label`` and ``label_score`` (None when unnamed) of :class:`~zeroseg.segment.record.Segment`
        records, in place; also returned."""
        for segment, (label, score) in self._name_batched(image, segments, lambda s: s.mask):
            segment.label, segment.label_score = label, (float(score) if label is not None else None)
        return segments

    # --- helpers --------------------------------------------------------------------------------
    def _name_batched(self, image: Any, items: Sequence[Any], mask_of: Any) -> Iterator[tuple[Any, tuple[str | None, float]]]:
        """Each item with its (name, score), masks named :data:`MASK_BATCH` at a time to bound memory."""
        items = list(items)
        for start in range(0, len(items), MASK_BATCH):
            batch = items[start : start + MASK_BATCH]
            yield from zip(batch, self.name_masks(image, np.stack([mask_of(item) for item in batch])))

    def _decide(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Winner of logits [K(+1), ...] along dim 0 and its softmax score; the winner is -1 (none) for
        the "none" column or a score under `background_threshold`."""
        scores, labels = logits.softmax(0).max(0)
        none = labels == len(self.vocabulary)
        if self.background_threshold is not None:
            none |= scores < self.background_threshold
        return torch.where(none, -1, labels), scores


def _checked(vocabulary: Sequence[str] | str) -> list[str]:
    names = clean_names(vocabulary)
    if not names:
        raise PromptValueError("a vocabulary needs at least one name")
    return names


def _as_mask(segmentation: Any) -> np.ndarray:
    return rle_to_mask(segmentation) if isinstance(segmentation, dict) else np.asarray(segmentation, dtype=bool)
