"""Naming masks and pixels with a concept model (SAM 3), with the naming API of the dense namer.

A concept model is not a shared image-text space (its phrase conditions a decoder), so it names by
finding: each name of the vocabulary is a concept prompt on the image (the image and the names' text
embeddings are encoded once and cached by the model), and a mask takes the name whose instances match
it best, scored ``instance score x IoU with the mask``. A pixel takes the best score of the instances
covering it. :data:`NONE_SCORE` is the "none of these" column: a mask or pixel no instance matches that
well stays unnamed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zeroseg.errors import PromptShapeError, PromptValueError
from zeroseg.io import image_key, load_image
from zeroseg.segment.amg import mask_iou_matrix
from zeroseg.segment.vocabulary_namer import VocabularyNamer

NONE_SCORE = 0.25
"""Score of "none of these": a mask needs, e.g., an instance of score 0.5 covering it at IoU 0.5 to be named."""
EPS = 1e-6


class ConceptNamer(VocabularyNamer):
    """A namer whose names come from a concept model's instances (``model.find``), with the dense
    :class:`~zeroseg.segment.naming.Namer`'s naming API.

    Arguments:
      model: a concept model (:class:`~zeroseg.models.hf.sam3.Sam3Concepts`: ``find(image, texts, threshold=)``).
      vocabulary: names, as a list or "sky, grass, cow".
      background_threshold: a mask or pixel whose best softmax share is below this stays unnamed.
      threshold: instance score a found instance needs (default the model's).
    """

    def __init__(
        self,
        model: Any,
        vocabulary: Sequence[str] | str,
        background_threshold: float | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(vocabulary, background_threshold)
        self.embedder = model
        self.threshold = threshold
        self._found: tuple[Any, list[Any]] | None = None  # (image and vocabulary key, instances per name)

    def embed(self, image: Any) -> Any:
        raise PromptValueError(
            "a concept model names by finding instances, it has no dense embedding: name masks or pixels, or "
            "give text prompts to the concept model itself"
        )

    def instances(self, image: Any) -> list[Any]:
        """Every instance of each vocabulary name in ``image`` (one ``ConceptInstances`` per name), kept
        for the last image so that naming its masks in batches finds once."""
        image = load_image(image)
        key = (*image_key(image), tuple(self.vocabulary))
        if self._found is None or self._found[0] != key:
            self._found = (key, self.embedder.find(image, list(self.vocabulary), threshold=self.threshold))
        return self._found[1]

    def mask_logits(self, image: Any, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-scores [N, K + 1] of each mask (the best instance score x IoU per name, then "none") and
        which masks are non-empty [N]."""
        image = load_image(image)
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise PromptShapeError(f"masks must be N x {image.shape[0]} x {image.shape[1]}, got {masks.shape}")
        scores = np.zeros((len(masks), len(self.vocabulary) + 1), np.float32)
        scores[:, -1] = NONE_SCORE
        for k, found in enumerate(self.instances(image)):
            if len(found):
                scores[:, k] = (mask_iou_matrix(masks, found.masks) * found.scores[None]).max(1)
        present = torch.from_numpy(masks.reshape(len(masks), -1).any(1))
        return torch.from_numpy(np.log(scores + EPS)), present

    def pixel_logits(self, image: Any) -> torch.Tensor:
        """Log-scores [K + 1, H, W]: the best score of the instances of each name covering the pixel, then "none"."""
        image = load_image(image)
        scores = np.zeros((len(self.vocabulary) + 1, *image.shape[:2]), np.float32)
        scores[-1] = NONE_SCORE
        for k, found in enumerate(self.instances(image)):
            for mask, score in zip(found.masks, found.scores):
                np.maximum(scores[k], np.where(mask, np.float32(score), np.float32(0)), out=scores[k])
        return torch.from_numpy(np.log(scores + EPS))
