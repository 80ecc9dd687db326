"""SAM-HQ (``SamHQModel``) behind the promptable-adapter interface.

SAM-HQ keeps SAM's frame: longest side resized to 1024 with Pillow's bilinear filter, ImageNet mean
and std, zero padding at the bottom and right (``SamImageProcessorPil``, Meta's SAM code). Its
decoder reads the first global-attention block's ViT features besides the image embedding; the
embedding keeps those.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zeroseg.models.hf.adapter import Embedding, PromptableAdapter, expand
from zeroseg.models.hf.common import ImageSpec
from zeroseg.preset import SAM

SAM_HQ_SPEC = ImageSpec(side=1024, keep_aspect=True, pil_resize=True)
"""``SamImageProcessor``: longest side 1024, ImageNet mean and std, padded to 1024 x 1024."""

SAM_HQ_PRESET = SAM
"""SAM-HQ's ``SamAutomaticMaskGenerator`` defaults, which are SAM's (predicted IoU > 0.88,
stability >= 0.95, 32 x 32 points)."""


class SamHQAdapter(PromptableAdapter):
    """``SamHQModel``: ``get_image_embeddings`` gives the image embedding and the global blocks'
    ViT features; ``forward(image_embeddings=..., intermediate_embeddings=...)`` decodes.

    ``hq_token_only`` (default False, as Meta's predictor): masks from the HQ token alone instead of
    SAM's mask plus the HQ correction.
    """

    def __init__(self, model: nn.Module, spec: ImageSpec = SAM_HQ_SPEC, family: str = "sam_hq") -> None:
        super().__init__(model, spec, family)
        size = model.config.prompt_encoder_config.image_size
        if int(size) != spec.side:
            raise ValueError(f"{family}: the model's image size {size} is not the processor's {spec.side}")
        self.hq_token_only = False

    @property
    def mask_input_size(self) -> tuple[int, int]:
        side = 4 * int(self.model.config.prompt_encoder_config.image_embedding_size)
        return side, side

    def _embed(self, pixel_values: torch.Tensor) -> Embedding:
        image, intermediate = self.model.get_image_embeddings(pixel_values)
        # the decoder reads only the first global block's features; the others are not kept
        return Embedding(image, tuple(intermediate[:1]))

    def _embedding_arguments(self, embedding: Embedding, batch: int) -> dict[str, Any]:
        return {
            "image_embeddings": expand(embedding.image, batch),
            "intermediate_embeddings": [expand(e, batch) for e in embedding.extras],
        }

    def _forward_options(self) -> dict[str, Any]:
        return {"hq_token_only": self.hq_token_only}
