"""OpenAI CLIP (VisionTransformer variant), numerically equivalent to ``clip/model.py``.

Parameter names follow the official checkpoints (``visual.*`` for the image tower; the text tower's
``token_embedding``, ``positional_embedding``, ``transformer.*``, ``ln_final``, ``text_projection`` at the
top level), so their state dicts load strictly. Tensors are batch-first ([N, tokens, width]).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HEAD_WIDTH = 64
"""Channels per attention head: the official builder sets heads = width // 64 for both towers."""


@dataclass(frozen=True)
class ClipConfig:
    """The official ``CLIP(...)`` constructor arguments (ViT image tower)."""

    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    vision_patch_size: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int

    @property
    def vision_heads(self) -> int:
        return self.vision_width // HEAD_WIDTH


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, batch-first."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * width, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        n, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """``out_proj(v)`` per token, without attention: MaskCLIP's dense value embeddings."""
        width = x.shape[-1]
        v = F.linear(x, self.in_proj_weight[2 * width :], self.in_proj_bias[2 * width :])
        return self.out_proj(v)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks (causal for text, full for image patches)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x


class VisionTransformer(nn.Module):
    """CLIP's image tower: patchify, class token, positional embedding, transformer, projection.

    Inputs of any size (a multiple of the patch size) are accepted: the positional embedding of the
    training grid is resized bicubically to the input's patch grid (MaskCLIP's dense inference).
    """

    def __init__(self, resolution: int, patch_size: int, width: int, layers: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.input_resolution = resolution
        self.patch_size = patch_size
        self.grid = resolution // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * scale)
        self.positional_embedding = nn.Parameter(torch.randn(self.grid**2 + 1, width) * scale)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, output_dim) * scale)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, output_dim] image embeddings (the class token, projected)."""
        return self.ln_post(self.tokens(pixels)[:, 0]) @ self.proj

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """The last block's output, [N, 1 + h*w, width]: class token, then patches in row-major order."""
        return self.transformer(self.embed(pixels))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch embeddings with the class token prepended and positions added, after ln_pre."""
        x = self.conv1(pixels)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding(grid[0], grid[1])
        return self.ln_pre(x)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """[1 + height*width, width] positions for a ``height`` x ``width`` patch grid."""
        if (height, width) == (self.grid, self.grid):
            return self.positional_embedding
        cls, patches = self.positional_embedding[:1], self.positional_embedding[1:]
        patches = patches.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(height, width), mode="bicubic", align_corners=False)
        return torch.cat([cls, patches.flatten(2)[0].T], dim=0)

    def dense_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``ln_post(tokens) @ proj`` for every token: [N, 1 + h*w, output_dim]."""
        return self.ln_post(self.tokens(pixels)) @ self.proj

    def maskclip_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """MaskCLIP dense features, [N, 1 + h*w, output_dim].

        Every block but the last runs as usual; of the last block only the value path is kept,
        ``out_proj(v(ln_1(x)))`` per token (no attention, residual or MLP), which keeps each patch's
        own content in the joint space; then ``ln_post`` and ``proj``.
        """
        x = self.embed(pixels)
        *body, last = self.transformer.resblocks
        for block in body:
            x = block(x)
        return self.ln_post(last.attn.values(last.ln_1(x))) @ self.proj


class CLIP(nn.Module):
    """Image and text towers mapping into one ``embed_dim`` space, with a learned logit scale."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(
            resolution=config.image_resolution,
            patch_size=config.vision_patch_size,
            width=config.vision_width,
            layers=config.vision_layers,
            heads=config.vision_heads,
            output_dim=config.embed_dim,
        )
        width = config.transformer_width
        self.transformer = Transformer(width, config.transformer_layers, config.transformer_heads)
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(config.context_length, width) * 0.01)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, config.embed_dim) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, res, res] normalised pixels -> [N, embed_dim] (not normalised)."""
        return self.visual(pixels)

    def dense_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Per-token image embeddings ``ln_post(tokens) @ proj``, [N, 1 + h*w, embed_dim] (token 0 = class)."""
        return self.visual.dense_features(pixels)

    def maskclip_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """MaskCLIP per-token embeddings (last block's value path), [N, 1 + h*w, embed_dim]."""
        return self.visual.maskclip_features(pixels)

    def text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, context_length] ids -> ``ln_final`` output at every position, [N, context_length, width]."""
        x = self.token_embedding(tokens) + self.positional_embedding
        return self.ln_final(self.transformer(x, causal=True))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, context_length] ids -> [N, embed_dim] (not normalised), pooled at the end token.

        The end token has the largest id of the vocabulary, so ``argmax`` finds it.
        """
        x = self.text_tokens(tokens)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_per_image [N_img, N_text], logits_per_text): scaled cosine similarities."""
        image = F.normalize(self.encode_image(pixels), dim=-1)
        text = F.normalize(self.encode_text(tokens), dim=-1)
        logits_per_image = self.logit_scale.exp() * image @ text.T
        return logits_per_image, logits_per_image.T
