"""The lite image encoder: EfficientNet-Lite features (Lite0 by default) fused by a light neck.

The ImageNet backbone stays frozen; optionally its last blocks are replaced by fine-tuned copies
(``tuned_blocks``), so the frozen features below them can still be cached for training.

It plugs into :class:`~zeroseg.models.sam.Sam` like SAM's ViT: a padded square image of ``img_size``
pixels goes in, one ``(B, embed_dim, img_size / stride, img_size / stride)`` embedding comes out, and
the mask decoder's 4x upscaling gives low-resolution logits at ``stride / 4`` input pixels.
"""

from __future__ import annotations

import copy
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
    normalisation (``pixel_mean`` / ``pixel_std`` in 0-255 units) for :class:`Sam`.

    With ``tuned_blocks`` N, the backbone's last N blocks run as trainable copies (``tuned``, started from
    the ImageNet weights, BatchNorm statistics frozen) and the frozen backbone is run only up to them. They
    must start right after a feature level, whose frozen features are their input.
    """

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
        tuned_blocks: int = 0,
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
        levels = len(backbone.feature_strides)
        self.tuned: nn.ModuleList | None = None
        self.tuned_start = len(backbone._blocks)
        self.frozen_levels = levels
        if tuned_blocks:
            self.tuned_start -= tuned_blocks
            splits = [level for level in range(levels - 1) if backbone.split_after(level) == self.tuned_start]
            if not splits:
                allowed = [len(backbone._blocks) - backbone.split_after(level) for level in range(levels - 1)]
                raise ConfigError(f"tuned_blocks must start after a feature level: one of {allowed}, got {tuned_blocks}")
            self.frozen_levels = splits[0] + 1
            self.tuned = copy.deepcopy(backbone._blocks[self.tuned_start :]).requires_grad_(True).eval()

    def train(self, mode: bool = True) -> LiteImageEncoder:
        """Train the neck (and the tuned blocks' weights): BatchNorm statistics stay frozen."""
        super().train(mode)
        self.backbone.eval()
        if self.tuned is not None:
            self.tuned.eval()
        return self

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen backbone's multi-scale features (no gradient), cacheable for training."""
        with torch.no_grad():
            return self.backbone(x)

    def embed_features(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Frozen backbone features (at least the first ``frozen_levels``) -> the embedding."""
        if self.tuned is not None:
            start = features[self.frozen_levels - 1].contiguous(memory_format=torch.channels_last)
            tuned = self.backbone.run_blocks(start, self.tuned_start, self.tuned)[1]
            features = [*features[: self.frozen_levels], *tuned]
        return self.neck(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the frozen backbone up to the tuned blocks (all of it without them)
            blocks = self.backbone._blocks[: self.tuned_start]
            frozen = self.backbone.run_blocks(self.backbone.stem(x), 0, blocks)[1]
        return self.embed_features(frozen)
