"""Segment Anything (SAM) and MobileSAM, re-implemented to match the official models numerically.

Parameter names follow the official checkpoints, so their state dicts load strictly.
"""
from zeroseg.models.sam.build import (
    OFFICIAL_MODELS,
    build_from_config,
    build_sam,
    load_checkpoint,
    official_config,
)
from zeroseg.models.sam.common import LayerNorm2d, MLPBlock
from zeroseg.models.sam.image_encoder import ImageEncoderViT
from zeroseg.models.sam.mask_decoder import MaskDecoder
from zeroseg.models.sam.prompt_encoder import PositionEmbeddingRandom, PromptEncoder
from zeroseg.models.sam.sam import Sam
from zeroseg.models.sam.transformer import TwoWayAttentionBlock, TwoWayTransformer

__all__ = [
    "OFFICIAL_MODELS",
    "ImageEncoderViT",
    "LayerNorm2d",
    "MLPBlock",
    "MaskDecoder",
    "PositionEmbeddingRandom",
    "PromptEncoder",
    "Sam",
    "TwoWayAttentionBlock",
    "TwoWayTransformer",
    "build_from_config",
    "build_sam",
    "load_checkpoint",
    "official_config",
]
