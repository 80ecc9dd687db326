"""The lite image encoder: frozen EfficientNet-Lite0 features fused by a light neck.

It plugs into :class:`~zeroseg.models.sam.Sam` like SAM's ViT: a padded square image of ``img_size``
pixels goes in, one ``(B, embed_dim, img_size / stride, img_size / stride)`` embedding comes out, and
the mask decoder's 4x upscaling gives low-resolution logits at ``stride / 4`` input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.errors import ConfigError
from zeroseg.models.lite.backbone import PIXEL_MEAN, PIXEL_STD, EfficientNetLite
from zeroseg.models.lite.mask_decoder import DETAIL_SCALE
from zeroseg.models.sam.common import LayerNorm2d


class SeparableFuse(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 mixing of a merged FPN level (cheap at stride 8)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.act = nn.GELU()
        self.pointwise = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(self.act(self.norm(self.depthwise(x))))


class LiteNeck(nn.Module):
    """Fuses multi-scale features onto one grid of stride ``out_stride``.

    Finer levels are patchified by a strided convolution (their detail moves into channels instead of
    being averaged away), coarser ones projected by 1x1 and upsampled; the sum is mixed by separable
    residual blocks and normalised, like the neck of SAM's ViT. With ``detail_dim``, the level of
    half that stride is also projected to ``detail_dim`` channels and appended to the embedding,
    pixel-unshuffled onto its grid, for :class:`~zeroseg.models.lite.mask_decoder.DetailMaskDecoder`.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_stride: int,
        neck_dim: int,
        embed_dim: int,
        depth: int = 2,
        detail_dim: int = 0,
    ) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(
            nn.Conv2d(c, neck_dim, out_stride // s, stride=out_stride // s)
            if s < out_stride
            else nn.Conv2d(c, neck_dim, 1)
            for c, s in zip(in_channels, in_strides)
        )
        self.fuse = nn.Sequential(*(SeparableFuse(neck_dim) for _ in range(depth)))
        self.out = nn.Sequential(nn.Conv2d(neck_dim, embed_dim, 1, bias=False), LayerNorm2d(embed_dim))
        self.out_level = list(in_strides).index(out_stride)
        self.detail: nn.Module | None = None
        if detail_dim:
            if out_stride // DETAIL_SCALE not in in_strides:
                raise ConfigError(f"detail features need a backbone level of stride {out_stride // DETAIL_SCALE}")
            self.detail_level = list(in_strides).index(out_stride // DETAIL_SCALE)
            self.detail = nn.Sequential(
                nn.Conv2d(in_channels[self.detail_level], detail_dim, 1), LayerNorm2d(detail_dim)
            )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        size = features[self.out_level].shape[-2:]
        x = sum(
            F.interpolate(y, size=size, mode="bilinear", align_corners=False) if y.shape[-2:] != size else y
            for y in (lateral(f) for lateral, f in zip(self.lateral, features))
        )
        embedding = self.out(self.fuse(x))
        if self.detail is None:
            return embedding
        detail = F.pixel_unshuffle(self.detail(features[self.detail_level]), DETAIL_SCALE)
        return torch.cat([embedding, detail], dim=1)


class LiteImageEncoder(nn.Module):
    """Backbone (frozen, eval mode) + trainable neck; exposes ``img_size`` and the backbone's pixel
    normalisation (``pixel_mean`` / ``pixel_std`` in 0-255 units) for :class:`Sam`."""

    pixel_mean = PIXEL_MEAN
    pixel_std = PIXEL_STD

    def __init__(
        self,
        backbone: EfficientNetLite,
        img_size: int,
        stride: int,
        neck_dim: int,
        embed_dim: int,
        detail_dim: int = 0,
    ) -> None:
        super().__init__()
        if stride not in backbone.feature_strides or img_size % stride:
            raise ConfigError(
                f"embedding stride {stride} must be one of the backbone strides {backbone.feature_strides} "
                f"and divide img_size {img_size}"
            )
        self.img_size = img_size
        self.stride = stride
        self.backbone = backbone.requires_grad_(False).eval()
        self.neck = LiteNeck(
            backbone.feature_channels, backbone.feature_strides, stride, neck_dim, embed_dim, detail_dim=detail_dim
        )

    def train(self, mode: bool = True) -> LiteImageEncoder:
        """Train the neck only: the backbone's BatchNorm statistics stay frozen."""
        super().train(mode)
        self.backbone.eval()
        return self

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen multi-scale features (no gradient), cacheable for training the neck."""
        with torch.no_grad():
            return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone_features(x))
