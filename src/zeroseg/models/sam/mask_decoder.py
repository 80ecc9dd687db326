"""SAM's mask decoder: image embedding + prompt embeddings -> mask logits and predicted IoU.

Numerically equivalent to ``segment_anything/modeling/mask_decoder.py``; parameter names follow the
official checkpoints (``mask_decoder.*``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.common import LayerNorm2d


class MaskDecoder(nn.Module):
    """Predicts masks with a transformer over learned output tokens, prompt tokens and the image.

    One IoU token and ``num_multimask_outputs + 1`` mask tokens are prepended to the prompt tokens.
    After the transformer, the image embedding is upscaled 4x and every mask token is turned by its
    own hypernetwork MLP into weights that are dotted with each upscaled pixel. Mask 0 is the
    single-mask output; masks 1.. are the multimask (ambiguity-resolving) outputs.

    Args:
        transformer_dim: channels of the image embedding and tokens.
        transformer: the two-way transformer.
        num_multimask_outputs: masks predicted when ``multimask_output`` is true.
        activation: activation of the upscaling convolutions.
        iou_head_depth, iou_head_hidden_dim: layers and width of the IoU prediction MLP.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs

        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)

        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompt sets.

        Args:
            image_embeddings: ``(1 or B, C, h, w)`` image embedding (one image is shared by all prompts).
            image_pe: ``(1, C, h, w)`` positional encoding of the embedding grid.
            sparse_prompt_embeddings: ``(B, N, C)`` point/box tokens.
            dense_prompt_embeddings: ``(B, C, h, w)`` mask-prompt embedding.
            multimask_output: return the multimask outputs instead of the single mask.

        Returns:
            mask logits ``(B, M, 4h, 4w)`` and predicted IoU ``(B, M)``, M = 3 (multimask) or 1.
        """
        mask_slice = slice(1, None) if multimask_output else slice(0, 1)
        return self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, mask_slice
        )

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        mask_slice: slice = slice(None),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits and IoU of the mask tokens selected by ``mask_slice`` (all by default); only the
        selected masks are computed."""
        batch = sparse_prompt_embeddings.shape[0]
        image_embeddings, detail = self.split_embedding(image_embeddings)
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)

        if dense_prompt_embeddings.shape[0] > 1 and dense_prompt_embeddings.stride(0) == 0:
            dense_prompt_embeddings = dense_prompt_embeddings[:1]  # the same for all prompts (no mask input)
        # With one image and no per-prompt mask, the image side stays at batch 1 until the first block
        # mixes in the prompts, so its projections are computed once rather than once per prompt.
        src = image_embeddings + dense_prompt_embeddings
        if src.shape[0] not in (1, batch):
            src = src.expand(batch, -1, -1, -1)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, image_pe, tokens)
        src = src.expand(batch, -1, -1)
        b = batch
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        # The image tokens (B, h*w, C) are the channels-last layout of (B, C, h, w): the upscaling
        # convolutions run channels-last (several times faster on CPU) and the masks are dotted per pixel.
        upscaled = self.upscale(src.reshape(b, h, w, c).permute(0, 3, 1, 2), detail)
        selected = range(self.num_mask_tokens)[mask_slice]
        hyper_in = torch.stack(
            [self.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in selected], dim=1
        )
        b, c, h, w = upscaled.shape
        pixels = upscaled.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view when channels-last
        masks = (pixels @ hyper_in.transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)

        iou_pred = self.iou_prediction_head(iou_token_out)[:, mask_slice]
        return masks, iou_pred

    def split_embedding(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The transformer's part of the image embedding and any extra per-image input of
        :meth:`upscale` (none for SAM; see the lite model's decoder)."""
        return image_embeddings, None

    def upscale(self, src: torch.Tensor, detail: torch.Tensor | None) -> torch.Tensor:
        """The transformer's image output ``(B, C, h, w)`` -> per-pixel mask features ``(B, C/8, 4h, 4w)``."""
        return self.output_upscaling(src)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        hidden = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(n, k) for n, k in zip([input_dim, *hidden], [*hidden, output_dim])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.relu(x)
        return x
