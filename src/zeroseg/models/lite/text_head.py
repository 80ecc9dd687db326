"""The lite model's zero-shot dense head: frozen EfficientNet-Lite0 features -> per-pixel text embeddings.

An LSeg-style head (Li et al. 2022): the backbone's multi-scale features are fused on one grid of stride
``out_stride`` and projected into the space of a sentence encoder (MiniLM, 384-d), where every pixel is
a unit vector compared by cosine with the unit text embeddings of any vocabulary; a learned temperature
turns cosines into logits. Two ideas of ZSI (Zheng et al. 2021) are optional:

* a learned background embedding, a class of its own for pixels that belong to no named class, so that
  "none of these" is learned instead of forced onto the nearest name;
* a semantic-visual decoder that reconstructs the fused visual features from the pixel embedding; its
  reconstruction loss keeps visual detail in the embedding that the seen-class loss alone would discard
  and that unseen classes need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.errors import ConfigError
from zeroseg.models.lite.backbone import EfficientNetLite
from zeroseg.models.lite.image_encoder import SeparableFuse
from zeroseg.models.sam.common import LayerNorm2d


@dataclass(frozen=True)
class TextHeadConfig:
    """Sizes and options of the head; stored in the JSON sidecar of the shipped weights."""

    img_size: int = 512  # longest image side fed to the backbone (as the lite promptable model)
    out_stride: int = 8  # stride of the embedding grid: one of the backbone strides
    dim: int = 128  # width of the fused features
    depth: int = 2  # separable residual blocks after the fusion
    embed_dim: int = 384  # dimension of the text space
    text_encoder: str = "minilm"
    imagenet_features: bool = True  # also fuse the backbone's 1280-d ImageNet head features (stride 32)
    background: bool = True  # learn a background embedding
    reconstruction: bool = False  # semantic -> visual decoder for the ZSI reconstruction loss
    temperature: float = 0.07  # initial temperature (learned)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextHeadConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown text head config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def head_inputs(
    backbone: EfficientNetLite,
    features: Sequence[torch.Tensor],
    config: TextHeadConfig,
    head: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The backbone's multi-scale features (finest first) plus, if configured, its ImageNet head features
    (``head`` when the caller has them already, else computed from the coarsest features)."""
    features = [f.float() for f in features]
    if config.imagenet_features:
        if head is None:
            with torch.no_grad():  # the backbone is frozen
                head = backbone.head_features(features[-1])
        features.append(head.float())
    return features


def input_channels(backbone: EfficientNetLite, config: TextHeadConfig) -> tuple[list[int], list[int]]:
    """(channels, strides) of :func:`head_inputs` for this backbone."""
    channels, strides = list(backbone.feature_channels), list(backbone.feature_strides)
    if config.imagenet_features:
        channels.append(backbone.head_channels)
        strides.append(strides[-1])
    return channels, strides


class TextHead(nn.Module):
    """Fuse multi-scale features at ``out_stride`` and embed every pixel as a unit vector of the text space."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], config: TextHeadConfig) -> None:
        super().__init__()
        if config.out_stride not in in_strides or any(s < config.out_stride for s in in_strides):
            raise ConfigError(
                f"out_stride {config.out_stride} must be the finest of the input strides {list(in_strides)}"
            )
        self.config = config
        self.lateral = nn.ModuleList(nn.Conv2d(c, config.dim, 1) for c in in_channels)
        self.fuse = nn.Sequential(*(SeparableFuse(config.dim) for _ in range(config.depth)), LayerNorm2d(config.dim))
        self.project = nn.Conv2d(config.dim, config.embed_dim, 1)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
        self.background_embedding = nn.Parameter(torch.randn(config.embed_dim) * 0.02) if config.background else None
        self.decoder = (
            nn.Sequential(
                nn.Conv2d(config.embed_dim, config.dim, 1), nn.GELU(), nn.Conv2d(config.dim, config.dim, 1)
            )
            if config.reconstruction
            else None
        )

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale().detach())

    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, kept within [1, 100] as in CLIP."""
        return self.log_scale.exp().clamp(1.0, 100.0)

    def background(self) -> torch.Tensor | None:
        """The learned background embedding as a unit vector [embed_dim], or None."""
        if self.background_embedding is None:
            return None
        return F.normalize(self.background_embedding, dim=0)

    def fused(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Visual features [B, dim, h, w] on the grid of the finest input."""
        size = features[0].shape[-2:]
        x = sum(
            F.interpolate(y, size=size, mode="bilinear", align_corners=False) if y.shape[-2:] != size else y
            for y in (lateral(f) for lateral, f in zip(self.lateral, features))
        )
        return self.fuse(x)

    def embed(self, visual: torch.Tensor) -> torch.Tensor:
        """Fused visual features -> unit text-space embeddings [B, embed_dim, h, w]."""
        return F.normalize(self.project(visual), dim=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.embed(self.fused(features))

    def reconstruct(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Semantic -> visual: the fused features the embeddings came from, as the decoder sees them."""
        if self.decoder is None:
            raise ConfigError("this text head has no reconstruction decoder (config.reconstruction is False)")
        return self.decoder(embeddings)

    def logits(self, embeddings: torch.Tensor, text: torch.Tensor, background: bool = False) -> torch.Tensor:
        """Cosine / temperature of [B, D, h, w] embeddings with [K, D] unit text vectors -> [B, K(+1), h, w];
        the background class, if asked for and learned, comes last."""
        classes = text
        if background:
            bg = self.background()
            if bg is None:
                raise ConfigError("this text head has no background embedding (config.background is False)")
            classes = torch.cat([text, bg[None]])
        return torch.einsum("bdhw,kd->bkhw", embeddings, classes) * self.logit_scale()
