"""CLIP's image preprocessing, pixel-for-pixel equal to the official torchvision transform.

``Resize(res, BICUBIC)`` on a PIL image (shorter side to ``res``, longer side truncated), ``CenterCrop(res)``,
RGB, ``ToTensor`` (/255) and ``Normalize`` with CLIP's mean and std, all done with Pillow and torch.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so the shorter side is ``size``; the longer side is ``int(size * long / short)``."""
    width, height = image.size
    short, long = sorted((width, height))
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return resize(image, new_size)


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Pillow bicubic resize to ``size`` = (width, height) (antialiased when shrinking, as torchvision on PIL)."""
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size`` x ``size`` window, its offsets rounded like torchvision's ``CenterCrop``."""
    width, height = image.size
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def to_pixels(image: Image.Image) -> torch.Tensor:
    """[3, H, W] float32 model input: RGB in [0, 1], normalised with CLIP's mean and std."""
    array = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)
    pixels = array.float().div(255)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std


def preprocess(image: np.ndarray | Image.Image, resolution: int) -> torch.Tensor:
    """An RGB uint8 HxWx3 array (or PIL image) -> the [3, resolution, resolution] input of ``encode_image``."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return to_pixels(center_crop(resize_shorter_side(image, resolution), resolution))
