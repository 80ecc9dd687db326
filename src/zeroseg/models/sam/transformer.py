"""SAM's two-way transformer: prompt tokens and image embedding attend to each other.

Numerically equivalent to ``segment_anything/modeling/transformer.py``; parameter names follow the
official checkpoints (``mask_decoder.transformer.*``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.common import MLPBlock


class TwoWayTransformer(nn.Module):
    """A stack of :class:`TwoWayAttentionBlock` followed by a last token-to-image attention.

    Args:
        depth: number of two-way blocks.
        embedding_dim: channels of tokens and image embedding.
        num_heads: attention heads (must divide ``embedding_dim / attention_downsample_rate``).
        mlp_dim: hidden width of the token MLP.
        activation: activation of the token MLP.
        attention_downsample_rate: the cross attentions project to ``embedding_dim / rate`` channels.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=i == 0,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: image embedding and its positional encoding ``(B, C, h, w)``, prompt tokens ``(B, N, C)``.

        Returns: the updated tokens ``(B, N, C)`` and image embedding ``(B, h * w, C)``.
        """
        keys = image_embedding.flatten(2).transpose(1, 2).contiguous()  # token-major: fast adds / norms
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=key_pe)

        attn_out = self.final_attn_token_to_image(q=queries + point_embedding, k=keys + key_pe, v=keys)
        queries = self.norm_final_attn(queries + attn_out)
        return queries, keys


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token-to-image attention, token MLP, image-to-token attention; each
    followed by a residual and a LayerNorm. The first block's self-attention takes no positional
    encoding (``skip_first_layer_pe``) and replaces rather than adds to the tokens."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=k, v=keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        # attn_out first: with the first block's shared (batch 1) keys, a broadcast first operand
        # makes the add iterate in a cache-hostile order (several times slower on CPU).
        keys = self.norm4(self.cross_attn_image_to_token(q=k, k=q, v=queries) + keys)
        return queries, keys


class Attention(nn.Module):
    """Multi-head attention whose q/k/v projections may shrink the width by ``downsample_rate``.

    SAM's cross attentions pair a few prompt tokens with thousands of image tokens. When the few
    side has fewer tokens than a head has channels, projecting every image token is the expensive
    part and is avoided by reassociating the products: the few side's projected tokens are folded
    into the image side's projection weights (``q_h k_h^T = x (W_h^T k_h^T)``, ``P v W_o = P (v W_o)``).
    That is the same arithmetic as the reference in another order (float32 rounding apart) and less
    than half of the multiply-adds per prompt (heads x tokens instead of the projection width).
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({self.internal_dim})")
        self.head_dim = self.internal_dim // num_heads
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _separate_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, heads, N, c)

    def _head_weights(self, proj: nn.Linear) -> torch.Tensor:
        """A q/k/v projection's weight per head: ``(heads, head_dim, embedding_dim)``."""
        return proj.weight.view(self.num_heads, self.head_dim, self.embedding_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend ``q`` ``(B, Nq, C)`` to ``k``/``v`` ``(B, Nk, C)``; either side may have batch 1 and is
        then shared by all B (projected once: the first block's image side is the same for every
        prompt of an image)."""
        batch_q, batch_k = q.shape[0], k.shape[0]
        if batch_k == 1 and batch_q > 1:
            # Every prompt attends to the same keys: stack all queries into one attention call.
            return self(q.reshape(1, -1, q.shape[-1]), k, v).reshape(batch_q, -1, self.embedding_dim)
        few_queries, few_keys = q.shape[1] < self.head_dim, k.shape[1] < self.head_dim
        if few_queries and not few_keys:
            return self._few_queries(q, k, v)
        if few_keys and not few_queries:
            return self._few_keys(q, k, v)
        q = self._separate_heads(self.q_proj(q))
        k = self._separate_heads(self.k_proj(k))
        v = self._separate_heads(self.v_proj(v))
        if batch_q == 1 and batch_k > 1:
            q = q.expand(batch_k, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(c), as the reference
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.internal_dim))

    def _few_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Few queries ``(B, T, C)``, many keys ``(B, N, C)``: keys and values are never projected.

        Scores ``q_h (k W_h^T + b_h)^T`` are ``(q_h W_h) k^T`` plus a constant per query that the
        softmax cancels; ``P (v W_v^T + b_v)`` is ``(P v) W_v^T + b_v`` because P's rows sum to 1.
        """
        t = q.shape[1]
        heads, c = self.num_heads, self.embedding_dim
        qh = self._separate_heads(self.q_proj(q))  # (B, H, T, d)
        folded = torch.einsum("bhtd,hdc->bhtc", qh, self._head_weights(self.k_proj)).reshape(-1, heads * t, c)
        probs = torch.softmax((folded @ k.transpose(1, 2)) * self.head_dim**-0.5, dim=-1)  # (B, H*T, N)
        pooled = (probs @ v).view(-1, heads, t, c)  # (B, H, T, C)
        out = torch.einsum("bhtc,hdc->bhtd", pooled, self._head_weights(self.v_proj))
        out = out + self.v_proj.bias.view(heads, 1, self.head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(-1, t, self.internal_dim))

    def _few_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Many queries ``(1 or B, N, C)``, few keys ``(B, T, C)``: the output projection is applied to
        the values before pooling (``P v W_o = P (v W_o)``), and the queries are projected only when
        they are shared by all B (once), else folded into the keys like :meth:`_few_queries`."""
        b, t, _ = k.shape
        n = q.shape[1]
        heads, c, d = self.num_heads, self.embedding_dim, self.head_dim
        kh = self._separate_heads(self.k_proj(k))  # (B, H, T, d)
        vh = self._separate_heads(self.v_proj(v))
        # Scores are laid out (B, H, T, N): the softmax over T then runs along contiguous rows of N.
        if q.shape[0] == 1 and b > 1:
            qh = self._separate_heads(self.q_proj(q))[0]  # (H, N, d), once for all B
            # One product per head over all B*T keys (a broadcast matmul would copy qh B times).
            by_head = kh.transpose(0, 1).reshape(heads, b * t, d) @ qh.transpose(-1, -2)  # (H, B*T, N)
            scores = by_head.view(heads, b, t, n).transpose(0, 1)  # (B, H, T, N)
        else:
            folded = torch.einsum("hdc,bhtd->bhtc", self._head_weights(self.q_proj), kh).reshape(b, heads * t, c)
            bias = torch.einsum("hd,bhtd->bht", self.q_proj.bias.view(heads, d), kh).reshape(b, heads * t, 1)
            scores = torch.baddbmm(bias, folded, q.transpose(1, 2)).view(b, heads, t, n)
        probs = torch.softmax(scores * d**-0.5, dim=2).reshape(b, heads * t, n)
        w_out = self.out_proj.weight.view(c, heads, d)
        values = torch.einsum("bhtd,chd->bhtc", vh, w_out).reshape(b, heads * t, c)  # v_h W_o,h
        return torch.baddbmm(self.out_proj.bias.expand(b, 1, c), probs.transpose(1, 2), values)
