"""TinyViT image encoder of MobileSAM (model type ``vit_t``).

A re-implementation of ``mobile_sam/modeling/tiny_vit_sam.py`` (ChaoningZhang/MobileSAM) for inference.
Module and parameter names follow the official checkpoint layout exactly, so an official MobileSAM state
dict (``image_encoder.*``) loads strictly; training-only settings (drop path, checkpointing, layer-wise
learning-rate decay) are accepted for signature compatibility but have no effect.

Data flows as ``(B, C, H, W)`` between stages and as channels-last ``(B, H, W, C)`` inside the
transformer stages; grid sizes are read from the input, so the output is ``(B, 256, H/16, W/16)`` for the
official configurations (a ``1024`` input gives the ``64 x 64`` grid the reference hard-codes).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.common import LayerNorm2d

NECK_CHANNELS = 256
"""Channels of the image embedding; fixed by the reference (the prompt encoder/decoder expect it)."""

STRIDE_ONE_MERGE_DIMS = frozenset({320, 448, 576})
"""Output widths for which the reference's PatchMerging keeps the resolution (stride 1) instead of halving
it; this is what gives MobileSAM its overall stride of 16."""


class InplaceGELU(nn.Module):
    """Exact (erf) GELU that overwrites its input: for the large activations of this model, allocating a
    fresh tensor costs more than the GELU itself. Only ever applied to a fresh intermediate result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_(x)


class Conv2d_BN(nn.Sequential):  # noqa: N801 - official name, kept for cross-reference
    """Bias-free convolution followed by BatchNorm (``c``, ``bn``).

    In eval mode the BatchNorm is folded into the convolution on every call (cheap, and never stale).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        conv, bn = self.c, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convolutions: image -> ``embed_dim`` channels at 1/4 resolution."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, embed_dim // 2, 3, 2, 1),
            InplaceGELU(),
            Conv2d_BN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2d_BN(dim, hidden)
        self.act1 = InplaceGELU()
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = InplaceGELU()
        self.conv3 = Conv2d_BN(hidden, dim)
        self.act3 = InplaceGELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        y = self.conv3(y)
        y += x
        return self.act3(y)


class PatchMerging(nn.Module):
    """Change width to ``out_dim`` and halve the resolution (stride 1 for the widths of
    ``STRIDE_ONE_MERGE_DIMS``, as in the reference)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        stride = 1 if out_dim in STRIDE_ONE_MERGE_DIMS else 2
        self.act = InplaceGELU()
        self.conv1 = Conv2d_BN(dim, out_dim)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x)


class ConvLayer(nn.Module):
    """First stage: MBConv blocks, then an optional PatchMerging."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, out_dim: int | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.act = InplaceGELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over square windows with a learned bias per head and
    relative offset ``(|dy|, |dx|)``.

    The bias table is indexed on every call rather than cached: the reference caches it in ``train(False)``,
    so weights loaded into an already-eval model would silently use stale biases.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        # Per head, the projection yields [q | k | v] side by side (not the usual [q-all | k-all | v-all]).
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer("attention_bias_idxs", relative_offset_index(window_size), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(num_windows, tokens, dim)`` -> same shape."""
        n, tokens, dim = x.shape
        qkv = self.qkv(self.norm(x)).view(n, tokens, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        # A 4-D (1, heads, N, N) mask lets PyTorch pick its fused CPU kernel (a 3-D one falls back to math).
        bias = self.attention_biases[:, self.attention_bias_idxs].unsqueeze(0).to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.head_dim**-0.5)
        return self.proj(x.transpose(1, 2).reshape(n, tokens, dim))


def relative_offset_index(window_size: int) -> torch.Tensor:
    """``(N, N)`` index of the offset ``(|dy|, |dx|)`` between every pair of the ``N = window_size**2``
    positions of a window, numbered ``|dy| * window_size + |dx|`` (the reference's first-seen order)."""
    rows, cols = torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    return (rows[:, None] - rows[None, :]).abs() * window_size + (cols[:, None] - cols[None, :]).abs()


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows), depthwise local conv, MLP; channels-last."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, local_conv_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2d_BN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, H, W, C)`` -> same shape."""
        y = self._window_attention(x)
        y += x
        x = self.local_conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = self.mlp(x)
        y += x
        return y

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        size = self.window_size
        pad_b, pad_r = -h % size, -w % size
        if pad_b or pad_r:
            # Padded tokens are zeros before the attention's LayerNorm and do take part as keys.
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        rows, cols = (h + pad_b) // size, (w + pad_r) // size
        windows = x.reshape(b, rows, size, cols, size, c).transpose(2, 3).reshape(-1, size * size, c)
        x = self.attn(windows).view(b, rows, cols, size, size, c).transpose(2, 3)
        return x.reshape(b, rows * size, cols * size, c)[:, :h, :w]


class BasicLayer(nn.Module):
    """Transformer stage: TinyViT blocks, then an optional PatchMerging; ``(B, C, H, W)`` in and out."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        local_conv_size: int,
        out_dim: int | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, num_heads, window_size, mlp_ratio, local_conv_size) for _ in range(depth)
        )
        self.downsample = PatchMerging(dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 3, 1, 2)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """MobileSAM image encoder: a conv stage, transformer stages, and a neck to ``NECK_CHANNELS`` channels.

    ``forward`` maps a normalised, padded image ``(B, in_chans, img_size, img_size)`` to the image embedding
    ``(B, 256, img_size / 16, img_size / 16)``. ``norm_head``/``head`` (the ImageNet classifier) exist only so
    that official checkpoints load strictly; they are not used. ``drop_rate``, ``drop_path_rate``,
    ``use_checkpoint`` and ``layer_lr_decay`` only matter for training and are ignored.
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_checkpoint: bool = False,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        layer_lr_decay: float = 1.0,
    ) -> None:
        super().__init__()
        if not len(embed_dims) == len(depths) == len(num_heads) == len(window_sizes):
            raise ValueError("embed_dims, depths, num_heads and window_sizes must have one entry per stage")
        self.img_size = img_size
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        last = len(embed_dims) - 1
        self.layers = nn.ModuleList()
        for i, dim in enumerate(embed_dims):
            out_dim = embed_dims[i + 1] if i < last else None
            if i == 0:
                layer: nn.Module = ConvLayer(dim, depths[i], mbconv_expand_ratio, out_dim)
            else:
                layer = BasicLayer(
                    dim, depths[i], num_heads[i], window_sizes[i], mlp_ratio, local_conv_size, out_dim
                )
            self.layers.append(layer)
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], NECK_CHANNELS, kernel_size=1, bias=False),
            LayerNorm2d(NECK_CHANNELS),
            nn.Conv2d(NECK_CHANNELS, NECK_CHANNELS, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(NECK_CHANNELS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, in_chans, H, W)`` -> image embedding ``(B, 256, H / 16, W / 16)``."""
        # Channels-last memory makes the convolutions faster and the stage-to-token permutes free.
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x).contiguous()
