"""SAM's prompt encoder: points, boxes and masks -> sparse and dense prompt embeddings.

Numerically equivalent to ``segment_anything/modeling/prompt_encoder.py``; parameter names follow the
official checkpoints (``prompt_encoder.*``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from zeroseg.models.sam.common import LayerNorm2d

NOT_A_POINT = -1
"""Label of padding points (replaced by ``not_a_point_embed``); 0 = background, 1 = foreground."""


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder.

    Points and box corners become sparse tokens: a random-Fourier positional encoding of the pixel
    centre plus a learned embedding of the label (background, foreground, top-left, bottom-right).
    A low-resolution mask logit map becomes a dense embedding through a small strided CNN; without
    one, the learned ``no_mask_embed`` is broadcast over the embedding grid.

    Args:
        embed_dim: channels of the prompt embeddings.
        image_embedding_size: (H, W) of the image embedding.
        input_image_size: (H, W) of the padded encoder input; point coordinates are in its pixels.
        mask_in_chans: hidden channels of the mask CNN.
        activation: activation of the mask CNN.
    """

    num_point_embeddings = 4  # background point, foreground point, box top-left, box bottom-right

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)

        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings)
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of every cell of the image embedding grid, ``(1, embed_dim, H, W)``."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts for a batch of B prompt sets.

        Args:
            points: coordinates ``(B, N, 2)`` as (x, y) input-frame pixels and labels ``(B, N)``.
            boxes: ``(B, 4)`` XYXY input-frame pixels.
            masks: ``(B, 1, 4H, 4W)`` mask logits.

        Returns:
            sparse embeddings ``(B, N', embed_dim)`` (points, a padding point when there is no box,
            then the two box corners) and dense embeddings ``(B, embed_dim, H, W)``.
        """
        batch_size = self._get_batch_size(points, boxes, masks)
        sparse = []
        if points is not None:
            sparse.append(self._embed_points(*points, pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if sparse:
            sparse_embeddings = torch.cat(sparse, dim=1)
        else:
            sparse_embeddings = self.no_mask_embed.weight.new_empty((batch_size, 0, self.embed_dim))

        if masks is not None:
            dense_embeddings = self.mask_downscaling(masks)
        else:
            dense_embeddings = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                batch_size, -1, *self.image_embedding_size
            )
        return sparse_embeddings, dense_embeddings

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords + 0.5  # pixel centres
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), NOT_A_POINT)], dim=1)
        embedding = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == NOT_A_POINT, self.not_a_point_embed.weight, embedding)
        embedding = embedding + torch.where(labels == 0, self.point_embeddings[0].weight, 0.0)
        return embedding + torch.where(labels == 1, self.point_embeddings[1].weight, 0.0)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # pixel centres
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embeddings = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return embedding + corner_embeddings

    @staticmethod
    def _get_batch_size(
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> int:
        for prompt in (points[0] if points is not None else None, boxes, masks):
            if prompt is not None:
                return prompt.shape[0]
        return 1


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding with random spatial frequencies (Tancik et al., Fourier features).

    Coordinates normalised to [0, 1] are mapped to ``[sin(2 pi (2c - 1) G), cos(2 pi (2c - 1) G)]``
    with a fixed Gaussian matrix ``G`` of shape ``(2, num_pos_feats)``.
    """

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        if scale is None or scale <= 0.0:
            scale = 1.0
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode ``(..., 2)`` coordinates in [0, 1] as ``(..., 2 * num_pos_feats)``."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the cell centres of an ``h`` x ``w`` grid, ``(2 * num_pos_feats, h, w)``."""
        h, w = size
        gaussian = self.positional_encoding_gaussian_matrix
        y = (torch.arange(h, device=gaussian.device, dtype=gaussian.dtype) + 0.5) / h
        x = (torch.arange(w, device=gaussian.device, dtype=gaussian.dtype) + 0.5) / w
        grid = torch.stack([x.expand(h, w), y[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode ``(B, N, 2)`` (x, y) pixel coordinates of an ``image_size`` = (H, W) image."""
        h, w = image_size
        coords = coords_input / coords_input.new_tensor([w, h])
        return self._pe_encoding(coords.to(self.positional_encoding_gaussian_matrix.dtype))
