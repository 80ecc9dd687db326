"""Pre- and post-processing of the transformers SAM-family models, done by zeroseg.

The official image processors of these models need torchvision, which zeroseg cannot import; these
functions do what they do, step for step:

- SAM 2.1, EdgeTAM, SAM 3 (``Sam2ImageProcessor``, ``Sam3ImageProcessor``, Meta's ``SAM2Transforms``):
  resize the whole image to ``side`` x ``side`` (aspect ratio not kept) with antialiased bilinear
  interpolation, rescale by 1/255, normalise; prompts scale by side / width and side / height; masks
  go from the low-resolution logits straight to the original size (bilinear).
- SAM and SAM-HQ (``SamImageProcessor``, Meta's ``ResizeLongestSide``): resize the longest side to
  ``side``, normalise, pad at the bottom and right with zeros to ``side`` x ``side``; masks go up to
  the padded square, are cropped to the resized image, then go to the original size.

Functions take and return torch tensors unless they say otherwise, and never assume a device.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
RESCALE = 1 / 255


@dataclass(frozen=True)
class ImageSpec:
    """How a model wants its image: ``side`` pixels, stretched to a square (``keep_aspect=False``,
    SAM 2 style) or longest side resized and padded (``keep_aspect=True``, SAM style), then
    ``(x * rescale - mean) / std``. ``pil_resize`` resizes with Pillow's BILINEAR filter (the
    ``SamImageProcessorPil`` and Meta's SAM code) instead of torchvision's antialiased bilinear."""

    side: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rescale: float = RESCALE
    keep_aspect: bool = False
    pil_resize: bool = False

    def with_processor_config(self, folder: str | Path) -> ImageSpec:
        """This spec with the mean, std and rescale factor of ``folder/preprocessor_config.json``
        (the Hugging Face layout), when there is one; a size there that differs from ``side`` is an
        error, since the model's positional encodings fix it."""
        path = Path(folder) / "preprocessor_config.json"
        if not path.is_file():
            return self
        config: dict[str, Any] = json.loads(path.read_text())
        size = config.get("size") or {}
        side = size.get("longest_edge") or size.get("height")
        if side is not None and (int(side) != self.side or size.get("width", side) != side):
            raise ValueError(f"{path}: image size {size} does not match the model's {self.side}")
        changes: dict[str, Any] = {}
        if config.get("do_normalize", True) is not False:
            if "image_mean" in config:
                changes["mean"] = tuple(float(v) for v in config["image_mean"])
            if "image_std" in config:
                changes["std"] = tuple(float(v) for v in config["image_std"])
        if "rescale_factor" in config:
            changes["rescale"] = float(config["rescale_factor"])
        return replace(self, **changes)


# --- sizes and coordinates -----------------------------------------------------------------------
def longest_side_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) with the longest side resized to ``side``, rounded as the SAM processors do."""
    scale = side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def input_shape(height: int, width: int, spec: ImageSpec) -> tuple[int, int]:
    """The (height, width) an image of (height, width) is resized to before any padding."""
    return longest_side_shape(height, width, spec.side) if spec.keep_aspect else (spec.side, spec.side)


def scale_coords(coords: np.ndarray, original_size: Sequence[int], new_size: Sequence[int]) -> np.ndarray:
    """(..., 2) pixel coordinates (x, y) of an image of ``original_size`` (h, w) mapped to one of
    ``new_size``, in float64."""
    (old_h, old_w), (new_h, new_w) = original_size[:2], new_size[:2]
    coords = np.array(coords, dtype=np.float64)
    coords[..., 0] = coords[..., 0] * (new_w / old_w)
    coords[..., 1] = coords[..., 1] * (new_h / old_h)
    return coords


# --- images --------------------------------------------------------------------------------------
def resize_uint8(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bx3xHxW uint8 -> Bx3x``size`` uint8 with antialiased bilinear interpolation, as torchvision's
    ``resize`` (the transformers image processors' resampler): the native uint8 kernel where the CPU
    has it (AVX2), else in float32 and rounded."""
    size = [int(s) for s in size]
    image = image.contiguous()
    native = image.device.type == "cpu" and "AVX2" in torch.backends.cpu.get_cpu_capability()
    if native:
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    out = F.interpolate(image.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.round_().to(torch.uint8)


def resize_array(image: np.ndarray, size: Sequence[int], pil: bool = False) -> np.ndarray:
    """An HxWx3 uint8 array resized to ``size`` (h, w) with :func:`resize_uint8`, or with Pillow's
    BILINEAR filter (antialiased when shrinking) when ``pil``."""
    if pil:
        resized = Image.fromarray(np.ascontiguousarray(image)).resize((int(size[1]), int(size[0])), Image.BILINEAR)
        return np.array(resized)
    pixels = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)[None]
    return resize_uint8(pixels, size)[0].permute(1, 2, 0).numpy()


def normalize(pixels: torch.Tensor, spec: ImageSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bx3xHxW pixels (uint8 or float in 0..255) -> normalised ``dtype``, computed as the processors'
    fused rescale-and-normalise: ``(x - mean / rescale) / (std / rescale)`` in float32."""
    mean = torch.tensor(spec.mean, device=pixels.device) * (1.0 / spec.rescale)
    std = torch.tensor(spec.std, device=pixels.device) * (1.0 / spec.rescale)
    out = (pixels.to(torch.float32) - mean[:, None, None]) / std[:, None, None]
    return out.to(dtype)


def pad_bottom_right(pixels: torch.Tensor, side: int) -> torch.Tensor:
    """Pad (..., H, W) with zeros at the bottom and right to (..., side, side)."""
    height, width = pixels.shape[-2:]
    return F.pad(pixels, (0, side - width, 0, side - height))


def model_input(pixels: torch.Tensor, spec: ImageSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Resized Bx3xhxw pixels (0..255) -> the model's ``pixel_values``: normalised, and padded to a
    square for ``keep_aspect`` specs."""
    out = normalize(pixels, spec, dtype)
    return pad_bottom_right(out, spec.side) if spec.keep_aspect else out


# --- masks ---------------------------------------------------------------------------------------
def upscale_masks(
    masks: torch.Tensor, original_size: Sequence[int], spec: ImageSpec, input_size: Sequence[int] | None = None
) -> torch.Tensor:
    """Low-resolution logits Nx1xhxw -> logits Nx1xHxW at ``original_size`` (bilinear). For
    ``keep_aspect`` specs via the padded square cropped to ``input_size`` (the resized image's
    (h, w)), as ``SamProcessor.post_process_masks``; else straight, as ``Sam2Processor``'s."""
    masks = masks.float()
    original_size = [int(s) for s in original_size[:2]]
    if spec.keep_aspect:
        if input_size is None:
            raise ValueError("keep_aspect masks need the resized input size")
        masks = F.interpolate(masks, (spec.side, spec.side), mode="bilinear", align_corners=False)
        masks = masks[..., : int(input_size[0]), : int(input_size[1])]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


class ResizeTransform:
    """Maps images and prompts of the original image into a model's input frame (``ImageSpec``).

    The interface of ``zeroseg.models.transforms.ResizeLongestSide`` (``apply_image``,
    ``apply_coords``, ``apply_boxes``, ``get_preprocess_shape``, ``target_length``), so a Predictor
    and the mask generator use either.
    """

    def __init__(self, spec: ImageSpec) -> None:
        self.spec = spec
        self.target_length = spec.side

    def get_preprocess_shape(self, oldh: int, oldw: int, long_side_length: int | None = None) -> tuple[int, int]:
        side = self.spec.side if long_side_length is None else long_side_length
        return input_shape(oldh, oldw, replace(self.spec, side=side))

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> the resized uint8 image (before normalisation and padding)."""
        return resize_array(image, self.get_preprocess_shape(*image.shape[:2]), pil=self.spec.pil_resize)

    def apply_coords(self, coords: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        return scale_coords(coords, original_size, self.get_preprocess_shape(*original_size[:2]))

    def apply_boxes(self, boxes: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)
