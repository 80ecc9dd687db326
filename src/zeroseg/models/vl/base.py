"""The protocol every dense vision-language embedder follows (lite head, MaskCLIP, GroupViT).

The hub names and builds them (``zeroseg.hub.load_dense_embedder``: "lite", "maskclip", "groupvit").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.models.text import TextEncoder


@dataclass
class DenseEmbedding:
    """Per-pixel unit embeddings of one image in a text encoder's space.

    `features` is [D, h, w] (a coarse grid is fine: callers resize logits, not features);
    `image_size` is the (H, W) of the original image the grid covers; `imagenet`, for embedders whose
    backbone is an ImageNet-1k classifier, its log-probabilities [1000, h, w] for each cell of the same
    grid (the names' ConSE evidence, :mod:`zeroseg.models.lite.imagenet`).
    """

    features: torch.Tensor
    image_size: tuple[int, int]
    imagenet: torch.Tensor | None = None


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


def mask_cover(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """[N, h, w] share of each grid cell's area that each mask of ``masks`` [N, H, W] bool covers (the grid
    spans the image). A non-empty mask always covers some cell: one smaller than a cell gets its centre's."""
    h, w = grid
    cover = np.zeros((len(masks), h, w), dtype=np.float32)
    for k, mask in enumerate(masks):
        cover[k] = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        if cover[k].sum() <= 0 and mask.any():
            ys, xs = np.nonzero(mask)
            cover[k, int(ys.mean() * h / mask.shape[0]), int(xs.mean() * w / mask.shape[1])] = 1.0
    return torch.from_numpy(cover)


def pool_masks(embeddings: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """Mask pooling, the one rule of training and naming: the coverage-weighted mean of unit embeddings
    ``embeddings`` [n, D] under ``cover`` [M, n] (e.g. :func:`mask_cover`, flattened), re-normalised: [M, D]."""
    weights = cover / cover.sum(1, keepdim=True).clamp(min=1e-6)
    return F.normalize(weights @ embeddings, dim=1)

