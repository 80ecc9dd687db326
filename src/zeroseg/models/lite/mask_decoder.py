"""The lite model's mask decoder: SAM's decoder plus a skip connection from finer image features.

The transformer works on the coarse embedding (stride 16); the masks come out 4x finer. SAM's
upscaling has nothing finer than the embedding to place boundaries with; like HQ-SAM, this decoder
adds image features of twice the embedding's resolution (stride 8, computed once per image by the
neck) to the first upscaled map, so the hypernetwork weights can follow the image's own edges.
The image embedding carries them as extra channels (pixel-unshuffled onto the embedding grid), so
the predictor, caches and the rest of the pipeline see one tensor per image, as with SAM.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.mask_decoder import MaskDecoder

DETAIL_SCALE = 2
"""The detail features' resolution relative to the embedding grid."""


class DetailMaskDecoder(MaskDecoder):
    """:class:`MaskDecoder` whose image embedding is ``[embedding | pixel_unshuffle(detail, 2)]``.

    Args:
        detail_dim: channels of the detail features (the embedding has ``4 * detail_dim`` extra).
        **kwargs: as :class:`MaskDecoder`.
    """

    def __init__(self, *, detail_dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.detail_dim = detail_dim
        upscaled_dim = self.output_upscaling[0].out_channels
        self.detail_proj = nn.Conv2d(detail_dim, upscaled_dim, 1)
        nn.init.zeros_(self.detail_proj.weight)  # starts as SAM's decoder; training opens the path
        nn.init.zeros_(self.detail_proj.bias)

    def split_embedding(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        embedding, packed = image_embeddings.split(
            [self.transformer_dim, self.detail_dim * DETAIL_SCALE**2], dim=1
        )
        # channels-last like the upscaling it is added to (a mixed-layout add is several times slower)
        return embedding, F.pixel_shuffle(packed, DETAIL_SCALE).contiguous(memory_format=torch.channels_last)

    def upscale(self, src: torch.Tensor, detail: torch.Tensor | None) -> torch.Tensor:
        first, *rest = self.output_upscaling
        x = first(src) + self.detail_proj(detail)
        for layer in rest:
            x = layer(x)
        return x
