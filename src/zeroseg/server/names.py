"""Zero-shot name suggestions for the app: the current vocabulary ranked for one mask.

The dense embedder is loaded once (on first use) and a :class:`~zeroseg.segment.Namer` is rebuilt
over it whenever the vocabulary changes. The namer's own decision (which may be "none": the
background wins) is reported with the top names and their softmax scores.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zeroseg import hub
from zeroseg.errors import PromptValueError
from zeroseg.models.text import clean_names
from zeroseg.models.vl import DenseEmbedder
from zeroseg.preset import Preset
from zeroseg.segment.naming import Namer
from zeroseg.segment.pipeline import namer_for


class NameSuggester:
    """Names masks from a vocabulary that can change while the app runs.

    Arguments:
      vocabulary: the initial names ("sky, grass" or a list).
      embedder: a registered dense embedder name (loaded on first use) or a built one.
      lock: the lock every torch call of the app takes.
    """

    def __init__(
        self,
        vocabulary: Sequence[str] | str = (),
        embedder: str | DenseEmbedder | None = None,
        lock: threading.RLock | None = None,
        settings: Preset | None = None,
    ) -> None:
        self.lock = lock or threading.RLock()
        self.settings = settings or hub.get(hub.DEFAULT_MODEL).preset  # naming settings: the model's preset
        self._embedder = embedder if embedder is not None else self.settings.embedder
        self._vocabulary = clean_names(vocabulary)
        self._namer: Namer | None = None
        self._text_namer: Namer | None = None

    @property
    def vocabulary(self) -> list[str]:
        return list(self._vocabulary)

    def set_vocabulary(self, names: Sequence[str] | str) -> list[str]:
        with self.lock:
            self._vocabulary = clean_names(names)
            self._namer = self._text_namer = None
        return self.vocabulary

    def namer(self) -> Namer:
        """The Namer over the current vocabulary (raises PromptValueError if it is empty)."""
        with self.lock:
            if not self._vocabulary:
                raise PromptValueError("the vocabulary is empty: set some names first")
            if self._namer is None:
                self._namer = self.namer_for(self._vocabulary)
            return self._namer

    def namer_for(self, names: Sequence[str], **options: Any) -> Namer:
        """A Namer over ``names`` (not kept) with the app's embedder and naming settings (``options``:
        ``load_namer``'s)."""
        with self.lock:
            if isinstance(self._embedder, str):
                self._embedder = hub.load_dense_embedder(self._embedder)
            return namer_for(clean_names(names), self.settings, embedder=self._embedder, **options)

    def text_namer(self, phrase: str) -> Namer:
        """The namer of a text prompt (``load_namer(text=True)``): over the vocabulary (kept until it
        changes), or over the phrase alone when the vocabulary is empty."""
        with self.lock:
            if not self._vocabulary:
                return self.namer_for([phrase], text=True)
            if self._text_namer is None:
                self._text_namer = self.namer_for(self._vocabulary, text=True)
            return self._text_namer

    def suggest(self, image: np.ndarray, mask: np.ndarray, k: int = 5) -> tuple[str | None, list[tuple[str, float]]]:
        """The namer's choice for ``mask`` (bool HxW) and the ``k`` best names with their scores."""
        with self.lock:
            namer = self.namer()
            logits, present = namer.mask_logits(image, mask[None])  # once: the classifier is not cheap
            best = namer.names_from_logits(logits, present)[0][0]
            scores = logits[0].softmax(0)[: len(namer.vocabulary)]
        top = torch.argsort(scores, descending=True)[:k].tolist()
        return best, [(namer.vocabulary[i], float(scores[i])) for i in top]
