"""SAM's ViT image encoder (ViTDet-style backbone with windowed and global attention).

Numerically equivalent to ``segment_anything/modeling/image_encoder.py``; parameter names follow the
official checkpoints (``image_encoder.*``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.common import LayerNorm2d, MLPBlock

LAYER_NORM_EPS = 1e-6
"""Epsilon of every LayerNorm in the encoder (the official builder's ``partial(LayerNorm, eps=1e-6)``)."""

BIAS_BUDGET_BYTES = 64 * 2**20
"""Most memory one attention layer spends at once on its relative-position bias (see ``Attention.attend``)."""


class ImageEncoderViT(nn.Module):
    """Encodes a padded, normalised ``(B, 3, img_size, img_size)`` image into a
    ``(B, out_chans, img_size / patch_size, img_size / patch_size)`` embedding.

    Blocks attend within ``window_size`` x ``window_size`` windows, except the blocks listed in
    ``global_attn_indexes``, which attend over the whole token grid.
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        qkv_bias: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        window_size: int = 0,
        global_attn_indexes: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = (img_size // patch_size, img_size // patch_size)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed: nn.Parameter | None = None
        if use_abs_pos:
            self.pos_embed = nn.Parameter(torch.zeros(1, *grid, embed_dim))

        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                act_layer=act_layer,
                use_rel_pos=use_rel_pos,
                window_size=0 if i in global_attn_indexes else window_size,
                input_size=grid,
            )
            for i in range(depth)
        )

        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: ``(B, C, H, W)`` image -> ``(B, H', W', D)`` tokens."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Block(nn.Module):
    """Pre-norm transformer block on a ``(B, H, W, C)`` token grid."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        act_layer: type[nn.Module],
        use_rel_pos: bool,
        window_size: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            window_size=window_size,
            input_size=input_size,
        )
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = MLPBlock(embedding_dim=dim, mlp_dim=int(dim * mlp_ratio), act=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    """Multi-head self-attention over windows of a token grid, with decomposed relative positions.

    ``window_size == 0`` means one window covering the whole grid (global attention). Otherwise the
    grid is zero-padded at the bottom/right to a multiple of the window and split into windows; as in
    the reference, padded tokens take part in the attention as keys (a zero token projects to the
    qkv bias) and their outputs are dropped before the output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool,
        use_rel_pos: bool,
        window_size: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        head_dim = dim // num_heads
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            rel_size = (window_size, window_size) if window_size else input_size
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_size[1] - 1, head_dim))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        wh, ww = (self.window_size, self.window_size) if self.window_size else (H, W)
        qkv = pad_to_multiple(self.qkv(x), (wh, ww), fill=self.qkv.bias)
        Hp, Wp = qkv.shape[1:3]
        nh, nw = Hp // wh, Wp // ww

        # (B, nh, wh, nw, ww, 3, heads, hd) -> 3 x (B * nh * nw, heads, wh * ww, hd)
        qkv = qkv.view(B, nh, wh, nw, ww, 3, self.num_heads, -1).permute(5, 0, 1, 3, 6, 2, 4, 7)
        q, k, v = qkv.reshape(3, B * nh * nw, self.num_heads, wh * ww, -1).unbind(0)
        out = self.attend(q, k, v, (wh, ww))

        # (B, nh, nw, heads, wh, ww, hd) -> (B, Hp, Wp, C), then drop the padding
        out = out.view(B, nh, nw, self.num_heads, wh, ww, -1).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(B, Hp, Wp, C)[:, :H, :W]
        return self.proj(out)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Attention of ``(N, heads, h * w, head_dim)`` windows of ``size`` = (h, w) tokens.

        The relative-position bias is passed to ``scaled_dot_product_attention`` as an additive mask. It
        is built for a group of heads at a time into one reused buffer of at most ``BIAS_BUDGET_BYTES``
        (for global attention: one head at a time), which bounds memory and avoids re-faulting pages
        of a fresh allocation for every head.
        """
        if not self.use_rel_pos:
            return F.scaled_dot_product_attention(q, k, v)
        n, heads, tokens, _ = q.shape
        h, w = size
        rel_h_table = self.rel_pos_h[relative_index(h, q.device)].transpose(1, 2)  # (qh, hd, kh)
        rel_w_table = self.rel_pos_w[relative_index(w, q.device)].transpose(1, 2)  # (qw, hd, kw)
        group = min(heads, max(1, BIAS_BUDGET_BYTES // (n * tokens * tokens * q.element_size())))
        buffer = q.new_empty(n, group, tokens, tokens)
        outputs = []
        for start in range(0, heads, group):
            q_part, k_part, v_part = (t[:, start : start + group] for t in (q, k, v))
            bias = rel_pos_bias(q_part, rel_h_table, rel_w_table, out=buffer[:, : q_part.shape[1]])
            outputs.append(F.scaled_dot_product_attention(q_part, k_part, v_part, attn_mask=bias))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)


def rel_pos_bias(q: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Decomposed relative-position attention bias (MViTv2) of queries ``q`` ``(N, heads, h * w, hd)``.

    ``rel_h[qh]`` is the ``(hd, kh)`` table of row offsets ``qh - kh`` (``rel_w`` likewise for columns), and
    ``bias[n, i, (qh, qw), (kh, kw)] = q[n, i, (qh, qw)] . (rel_h[qh, :, kh] + rel_w[qw, :, kw])`` with the
    unscaled query, as in the reference; written to ``out`` ``(N, heads, h * w, h * w)``.
    """
    n, heads, _, head_dim = q.shape
    h, w = rel_h.shape[0], rel_w.shape[0]
    r_q = q.reshape(n * heads, h, w, head_dim)
    bias_h = torch.matmul(r_q, rel_h).reshape(n, heads, h, w, h, 1)
    bias_w = torch.matmul(r_q.transpose(1, 2), rel_w).transpose(1, 2).reshape(n, heads, h, w, 1, w)
    torch.add(bias_h, bias_w, out=out.view(n, heads, h, w, h, w))
    return out


def relative_index(size: int, device: torch.device) -> torch.Tensor:
    """``index[i, j] = i - j + size - 1``: row of a ``(2 * size - 1)`` relative-position table."""
    coords = torch.arange(size, device=device)
    return coords[:, None] - coords[None, :] + (size - 1)


def pad_to_multiple(x: torch.Tensor, window: tuple[int, int], fill: torch.Tensor | None) -> torch.Tensor:
    """Pad a ``(B, H, W, C)`` grid at the bottom/right to multiples of ``window`` with the vector ``fill``
    (zeros when ``None``)."""
    B, H, W, C = x.shape
    Hp, Wp = -(-H // window[0]) * window[0], -(-W // window[1]) * window[1]
    if (Hp, Wp) == (H, W):
        return x
    padded = x.new_empty(B, Hp, Wp, C)
    padded[:, :H, :W] = x
    value = 0.0 if fill is None else fill
    padded[:, H:] = value
    padded[:, :H, W:] = value
    return padded
