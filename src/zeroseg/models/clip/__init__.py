"""OpenAI CLIP (ViT image tower), re-implemented to match the official model and tokenizer exactly.

Loads the official checkpoints (TorchScript archives, or plain float16 state dicts) strictly by key.
"""
from zeroseg.models.clip.build import (
    ClipTextEncoder,
    clip_from_state_dict,
    config_from_state_dict,
    load_clip,
    load_clip_model,
    load_clip_text_encoder,
)
from zeroseg.models.clip.model import CLIP, ClipConfig, VisionTransformer
from zeroseg.models.clip.preprocess import CLIP_MEAN, CLIP_STD, preprocess
from zeroseg.models.clip.tokenizer import ClipTokenizer

__all__ = [
    "CLIP",
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipConfig",
    "ClipTextEncoder",
    "ClipTokenizer",
    "VisionTransformer",
    "clip_from_state_dict",
    "config_from_state_dict",
    "load_clip",
    "load_clip_model",
    "load_clip_text_encoder",
    "preprocess",
]
