"""SAM 2.1 and EdgeTAM (``Sam2Model``, ``EdgeTamModel``) behind the promptable-adapter interface.

Both take the whole image stretched to 1024 x 1024, ImageNet mean and std, and decode from the image
embedding plus two high-resolution feature maps, which the embedding keeps. SAM 3's tracker uses
the same adapter (``zeroseg.models.hf.tracker``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zeroseg.models.hf.adapter import Embedding, PromptableAdapter, expand
from zeroseg.models.hf.common import ImageSpec
from zeroseg.preset import SAM2

SAM2_SPEC = ImageSpec(side=1024)
"""``Sam2ImageProcessor`` / Meta's ``SAM2Transforms``: 1024 x 1024, ImageNet mean and std."""

SAM2_PRESET = SAM2
"""Meta's ``SAM2AutomaticMaskGenerator`` defaults (:data:`zeroseg.preset.SAM2`)."""

EDGETAM_PRESET = SAM2_PRESET
"""EdgeTAM ships SAM 2's automatic mask generator with the same defaults."""


class Sam2Adapter(PromptableAdapter):
    """A ``Sam2Model``-style model (SAM 2.1, EdgeTAM, SAM 3's tracker): ``get_image_embeddings``
    gives [high-res level 0, level 1, image embedding]; ``forward(image_embeddings=...)`` decodes."""

    low_res_logit_limit = 32.0

    def __init__(self, model: nn.Module, spec: ImageSpec = SAM2_SPEC, family: str = "sam2") -> None:
        super().__init__(model, spec, family)
        size = model.config.prompt_encoder_config.image_size
        if int(size) != spec.side:
            raise ValueError(f"{family}: the model's image size {size} is not the processor's {spec.side}")

    @property
    def mask_input_size(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)

    def _embed(self, pixel_values: torch.Tensor) -> Embedding:
        *high_res, image = self.model.get_image_embeddings(pixel_values)
        return Embedding(image, tuple(high_res))

    def _embedding_arguments(self, embedding: Embedding, batch: int) -> dict[str, Any]:
        levels = [*embedding.extras, embedding.image]
        return {"image_embeddings": [expand(level, batch) for level in levels]}
