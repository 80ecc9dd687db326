"""The protocol every dense vision-language embedder follows (lite head, MaskCLIP, GroupViT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from zeroseg.models.text import TextEncoder, _resolve


@dataclass
class DenseEmbedding:
    """Per-pixel unit embeddings of one image in a text encoder's space.

    `features` is [D, h, w] (a coarse grid is fine: callers resize logits, not features);
    `image_size` is the (H, W) of the original image the grid covers.
    """

    features: torch.Tensor
    image_size: tuple[int, int]


@runtime_checkable
class DenseEmbedder(Protocol):
    """image -> DenseEmbedding; `text_encoder` is the tower whose space the features live in."""

    name: str
    text_encoder: TextEncoder

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        """`image` is RGB uint8 HxWx3 (see zeroseg.io.load_image)."""
        ...

    def background(self) -> torch.Tensor | None:
        """A learned background embedding [D] (ZSI/ViLD), or None if the embedder has none."""
        ...


# name -> "module:function(checkpoint=None) -> DenseEmbedder", imported on first use.
_EMBEDDERS: dict[str, str] = {
    "lite": "zeroseg.models.vl.lite:load_lite_embedder",
    "maskclip": "zeroseg.models.vl.maskclip:load_maskclip_embedder",
    "groupvit": "zeroseg.models.vl.groupvit:load_groupvit_embedder",
}


def load_dense_embedder(name: str = "lite", checkpoint: str | None = None) -> DenseEmbedder:
    """Build the dense embedder registered as `name` (weights from the hub or `checkpoint`)."""
    return _resolve(name, _EMBEDDERS, "dense embedder")(checkpoint=checkpoint)
