"""MaskCLIP (Zhou et al., "Extract Free Dense Labels from CLIP", 2022): dense CLIP features without training.

The image is resized (no crop) so its shorter side is CLIP's resolution, the positional embedding is
resized to the resulting patch grid, and each patch is embedded through the value path of the last
attention block (see ``VisionTransformer.maskclip_features``), which lives in CLIP's joint space.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zeroseg.io import load_image
from zeroseg.models.clip.build import ClipTextEncoder, load_clip
from zeroseg.models.clip.model import CLIP
from zeroseg.models.clip.preprocess import resize, to_pixels
from zeroseg.models.clip.tokenizer import ClipTokenizer
from zeroseg.models.vl.base import DenseEmbedding

MAX_ASPECT = 4
"""Longest side at most this many times CLIP's resolution, so a strip-like image keeps a bounded token count."""


def dense_input_size(height: int, width: int, resolution: int, patch_size: int) -> tuple[int, int]:
    """(width, height) of the model input: shorter side ``resolution``, longer side scaled alike and
    rounded to whole patches (capped at ``MAX_ASPECT * resolution``), so the patch grid covers the image."""
    short, long = sorted((height, width))
    patches = round(resolution * long / short / patch_size)
    long_side = min(max(patches, 1) * patch_size, MAX_ASPECT * resolution)
    return (resolution, long_side) if width <= height else (long_side, resolution)


class MaskClipEmbedder:
    """Image -> [D, h, w] unit MaskCLIP features in the space of CLIP's text encoder."""

    name = "maskclip"
    temperature = 0.01
    """Softmax temperature for cosine similarities with text embeddings (CLIP's logit scale of 100)."""

    def __init__(self, model: CLIP, tokenizer: ClipTokenizer, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.text_encoder = ClipTextEncoder(self.model, tokenizer)

    @torch.inference_mode()
    def embed(self, image: np.ndarray) -> DenseEmbedding:
        image = load_image(image)
        height, width = image.shape[:2]
        visual = self.model.visual
        size = dense_input_size(height, width, visual.input_resolution, visual.patch_size)
        pixels = to_pixels(resize(Image.fromarray(image), size))[None].to(self.device)
        tokens = self.model.maskclip_features(pixels)[0, 1:]  # drop the class token
        grid = (size[1] // visual.patch_size, size[0] // visual.patch_size)
        features = F.normalize(tokens, dim=-1).T.reshape(-1, *grid)
        return DenseEmbedding(features=features.cpu(), image_size=(height, width))

    def background(self) -> torch.Tensor | None:
        return None


def load_maskclip_embedder(
    checkpoint: str | os.PathLike, vocab: str | os.PathLike, device: str | torch.device = "cpu"
) -> MaskClipEmbedder:
    """MaskCLIP on an OpenAI CLIP checkpoint and its BPE vocabulary file."""
    return MaskClipEmbedder(*load_clip(checkpoint, vocab), device=device)
