"""SAM 3 concept prompts: a thin adapter over transformers' ``Sam3Model`` / ``Sam3LiteTextModel``.

A concept prompt is a noun phrase, exemplar boxes (positive or negative), or both; the model returns
**every** instance of the concept in the image, each with a mask, a box and a score. transformers'
image processor needs torchvision, so the pre- and post-processing are ours and match it (the resize
and normalisation of :mod:`zeroseg.models.hf.common`):

- image: resized to the model's square input (1008) with antialiased bilinear resampling, as
  torchvision's ``resize`` does it on this CPU, then ``(x - mean * 255) / (std * 255)`` with the mean
  and std of the folder's processor config (0.5 by default);
- text: the folder's CLIP tokenizer, padded to 32 tokens (``Sam3Processor``);
- boxes: XYXY pixels -> normalised (cx, cy, w, h), labels 1 positive / 0 negative;
- outputs: score = sigmoid(logit) x sigmoid(presence); instances above the score threshold; mask
  probabilities upscaled bilinearly to the image and cut at 0.5; boxes scaled to pixels
  (``post_process_instance_segmentation``), best score first.

Image embeddings are cached per image (content hash), text embeddings per phrase, so a vocabulary's
text tower runs once, not once per image. The model's forward passes are called as they are
(``get_vision_features``, ``get_text_features``, ``forward(vision_embeds=, text_embeds=)``). Box
exemplars pool image features with ``torchvision.ops.roi_align``; without torchvision the modelling
module gets :func:`roi_align` below (torchvision's CPU kernel, in torch) under that name, nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.errors import ConfigError, ModelError, PromptShapeError, PromptValueError, WeightsNotFoundError
from zeroseg.models.hf.common import HALF, RESCALE, ImageSpec, normalize, resize_uint8

TEXT_LENGTH = 32  # Sam3Processor pads every phrase to 32 tokens
EXEMPLAR_TEXT = "visual"  # the phrase Sam3Processor uses for a prompt of boxes alone
SCORE_THRESHOLD = 0.5  # Meta's Sam3Processor confidence threshold
MASK_THRESHOLD = 0.5  # on mask probabilities, as post_process_instance_segmentation
UPSCALE_CHUNK = 16  # instances upscaled to the image at once (bounds memory on large images)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MODEL_TYPES = {
    "sam3": "sam3",
    "sam3_video": "sam3",
    "sam3_lite_text": "sam3_lite_text",
    "sam3_lite_text_video": "sam3_lite_text",
}


# --- results and embeddings --------------------------------------------------------------------
@dataclass
class ConceptInstances:
    """Every instance a concept prompt found, best score first.

    masks: bool [N, H, W] in the original image; boxes: float32 [N, 4] XYXY pixels; scores:
    float32 [N] in [0, 1] (instance score x presence score).
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class ImageEmbedding:
    """What the vision tower made of one image, reusable for any number of concept prompts."""

    vision: Any  # the model's Sam3VisionEncoderOutput (FPN features and their position encodings)
    original_size: tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class TextEmbedding:
    """One phrase through the text tower and projection: features [1, L, D] and token mask [1, L]."""

    features: torch.Tensor
    mask: torch.Tensor


# --- the adapter -------------------------------------------------------------------------------
class NotPromptableError(ModelError):
    """A concept model was used where clicks and boxes are needed (a Predictor, segment everything)."""


class Sam3Concepts(nn.Module):
    """A concept model: text and exemplar-box prompts -> every matching instance.

    Arguments:
      model: a transformers ``Sam3Model`` or ``Sam3LiteTextModel`` (used as is).
      tokenizer: the checkpoint's CLIP tokenizer.
      spec: the processor's image settings (square ``side``, mean, std, rescale factor).
      cache_size: image embeddings kept (least recently used dropped; 0 disables).
    """

    concepts = True  # the capability: zeroseg's faces run concept prompts on such a model
    image_format = "RGB"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        spec: ImageSpec = ImageSpec(1008, HALF, HALF),
        cache_size: int = 2,
        text_cache_size: int = 4096,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.score_threshold = SCORE_THRESHOLD
        self.mask_threshold = MASK_THRESHOLD
        self.cache_size, self.text_cache_size = cache_size, text_cache_size
        self._images: OrderedDict[tuple[Any, ...], ImageEmbedding] = OrderedDict()
        self._texts: OrderedDict[tuple[str, str, str], TextEmbedding] = OrderedDict()

    @property
    def decode_prompts(self) -> Any:
        """Not here: the click interface of the promptable models; says what to use instead."""
        name = getattr(self, "name", None) or "this SAM 3 model"
        raise NotPromptableError(
            f"{name} is a concept model: it takes text and exemplar-box prompts (zeroseg segment --text / "
            "--exemplar, zeroseg engine auto --names); for clicks, boxes and segment everything use sam3_tracker "
            "(the same download)"
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def clear_cache(self) -> None:
        """Forget the cached image and text embeddings."""
        self._images.clear()
        self._texts.clear()

    # --- preprocessing ---------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> [1, 3, S, S] pixel values, as ``Sam3ImageProcessor`` makes them."""
        image = np.ascontiguousarray(image)
        image = image if image.flags.writeable else image.copy()  # torch wants writable arrays
        pixels = torch.from_numpy(image).permute(2, 0, 1).contiguous()[None].to(self.device)
        if tuple(pixels.shape[-2:]) != (self.spec.side, self.spec.side):
            pixels = resize_uint8(pixels, (self.spec.side, self.spec.side))
        return normalize(pixels, self.spec, self.dtype)

    def tokenize(self, phrases: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask [N, 32], as ``Sam3Processor`` (longer phrases are cut)."""
        encoded = self.tokenizer(
            list(phrases), padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
        )
        return encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device)

    # --- embeddings ------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_image(self, image: np.ndarray) -> ImageEmbedding:
        """The image's embedding, from the cache when the same pixels were embedded before."""
        image = _rgb(image)
        key = (hashlib.sha256(image.data).hexdigest(), image.shape, str(self.device), str(self.dtype))
        cached = self._images.get(key)
        if cached is not None:
            self._images.move_to_end(key)
            return cached
        vision = self.model.get_vision_features(pixel_values=self.preprocess(image))
        vision.last_hidden_state = None  # the prompt stages read the FPN levels only
        embedding = ImageEmbedding(vision, (int(image.shape[0]), int(image.shape[1])))
        if self.cache_size > 0:
            self._images[key] = embedding
            while len(self._images) > self.cache_size:
                self._images.popitem(last=False)
        return embedding

    @torch.inference_mode()
    def embed_texts(self, phrases: Sequence[str]) -> list[TextEmbedding]:
        """Each phrase through the text tower, once: later calls (any image) reuse the result."""
        out = []
        for phrase in phrases:
            key = (phrase, str(self.device), str(self.dtype))
            cached = self._texts.get(key)
            if cached is None:
                ids, mask = self.tokenize([phrase])
                features = self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
                cached = TextEmbedding(features, mask)
                self._texts[key] = cached
                while len(self._texts) > self.text_cache_size:
                    self._texts.popitem(last=False)
            else:
                self._texts.move_to_end(key)
            out.append(cached)
        return out

    # --- prompts ---------------------------------------------------------------------------
    @torch.inference_mode()
    def find(
        self,
        image: np.ndarray | ImageEmbedding,
        texts: str | Sequence[str] | None = None,
        exemplar_boxes: Any = None,
        exemplar_labels: Any = None,
        threshold: float | None = None,
    ) -> list[ConceptInstances]:
        """Every instance of each concept: one :class:`ConceptInstances` per text (one if a single
        text or none is given).

        ``exemplar_boxes`` (XYXY pixels, Kx4) with ``exemplar_labels`` (K; 1 positive, 0 negative;
        default all positive) join every text's prompt; boxes without a text prompt the boxes alone.
        ``threshold``: score above which an instance is kept (default ``score_threshold``).
        """
        embedding = image if isinstance(image, ImageEmbedding) else self.embed_image(image)
        phrases = [texts] if isinstance(texts, str) or texts is None else list(texts)
        boxes, labels = self._exemplars(exemplar_boxes, exemplar_labels, embedding.original_size)
        if any(p is None for p in phrases) and boxes is None:
            raise PromptValueError("a concept prompt needs a phrase, exemplar boxes, or both")
        text_embeddings = self.embed_texts([EXEMPLAR_TEXT if p is None else p for p in phrases])
        return [self.postprocess(self.decode(embedding, t, boxes, labels), embedding.original_size, threshold)
                for t in text_embeddings]  # fmt: skip

    @torch.inference_mode()
    def decode(
        self,
        embedding: ImageEmbedding,
        text: TextEmbedding,
        boxes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Any:
        """The model's forward on a cached image and phrase (+ normalised cxcywh boxes [1, K, 4])."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return self.model(
            vision_embeds=embedding.vision,
            text_embeds=BaseModelOutputWithPooling(pooler_output=text.features),
            attention_mask=text.mask,
            input_boxes=boxes,
            input_boxes_labels=labels,
        )

    def postprocess(
        self, outputs: Any, original_size: tuple[int, int], threshold: float | None = None
    ) -> ConceptInstances:
        """Instances above the score threshold, masks at the image's size, boxes in pixels, best first."""
        threshold = self.score_threshold if threshold is None else float(threshold)
        height, width = original_size
        scores = outputs.pred_logits[0].float().sigmoid()
        if outputs.presence_logits is not None:
            scores = scores * outputs.presence_logits[0].float().sigmoid()
        keep = torch.nonzero(scores > threshold).flatten()
        keep = keep[torch.argsort(-scores[keep], stable=True)]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=scores.device)
        boxes = outputs.pred_boxes[0, keep].float() * scale
        probabilities = outputs.pred_masks[0, keep].float().sigmoid()
        masks = np.zeros((len(keep), height, width), dtype=bool)
        for start in range(0, len(keep), UPSCALE_CHUNK):
            chunk = probabilities[None, start : start + UPSCALE_CHUNK]
            upscaled = F.interpolate(chunk, size=(height, width), mode="bilinear", align_corners=False)[0]
            masks[start : start + UPSCALE_CHUNK] = (upscaled > self.mask_threshold).cpu().numpy()
        return ConceptInstances(masks, boxes.cpu().numpy(), scores[keep].cpu().numpy())

    def _exemplars(
        self, boxes: Any, labels: Any, original_size: tuple[int, int]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """XYXY pixel boxes (Kx4) and labels (K) -> normalised cxcywh [1, K, 4] and labels [1, K]."""
        if boxes is None or len(boxes) == 0:
            if labels is not None and len(labels):
                raise PromptShapeError("exemplar labels were given without exemplar boxes")
            return None, None
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.ones(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels).astype(np.int64)
        if labels.shape != (len(boxes),):
            raise PromptShapeError(f"{len(boxes)} exemplar boxes need {len(boxes)} labels, got shape {labels.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise PromptValueError("exemplar labels are 1 (positive) or 0 (negative)")
        height, width = original_size
        xyxy = torch.tensor(boxes, dtype=torch.float32) / torch.tensor([width, height, width, height])
        x0, y0, x1, y1 = xyxy.unbind(-1)
        cxcywh = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)
        return cxcywh[None].to(self.device, self.dtype), torch.from_numpy(labels)[None].to(self.device)


def _rgb(image: Any) -> np.ndarray:
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PromptShapeError(f"a concept model takes HxWx3 uint8 RGB images, got {image.dtype} {image.shape}")
    return image


# --- building ----------------------------------------------------------------------------------
def build_sam3(folder: str | os.PathLike[str], dtype: str = "float32") -> Sam3Concepts:
    """A concept model from a folder in the Hugging Face layout (``config.json``, weights, tokenizer
    files, optionally ``preprocessor_config.json``), as ``save_pretrained`` writes it.

    ``dtype``: float32 (default) or bfloat16. Attention runs through PyTorch's SDPA.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise WeightsNotFoundError(f"{folder} holds no config.json: give a SAM 3 folder in the Hugging Face layout")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    family = MODEL_TYPES.get(model_type)
    if family is None:
        raise ConfigError(f"{folder}: model_type {model_type!r} is not a SAM 3 concept model ({sorted(MODEL_TYPES)})")
    install_roi_align()
    if family == "sam3":
        from transformers.models.sam3.modeling_sam3 import Sam3Model as model_class
    else:
        from transformers.models.sam3_lite_text.modeling_sam3_lite_text import Sam3LiteTextModel as model_class
    from transformers import CLIPTokenizer

    model = model_class.from_pretrained(
        str(folder), local_files_only=True, attn_implementation="sdpa", dtype=DTYPES[dtype]
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    return Sam3Concepts(model.eval(), tokenizer, processor_spec(folder, model.config.image_size)).eval()


def processor_spec(folder: Path, default_size: int) -> ImageSpec:
    """Side, mean, std and rescale factor from the folder's processor config (preprocessor_config.json,
    or processor_config.json's image_processor); transformers' Sam3ImageProcessor defaults otherwise."""
    config: dict[str, Any] = {}
    if (folder / "preprocessor_config.json").is_file():
        config = json.loads((folder / "preprocessor_config.json").read_text())
    elif (folder / "processor_config.json").is_file():
        config = json.loads((folder / "processor_config.json").read_text()).get("image_processor", {})
    size = config.get("size") or {}
    if size and size.get("height") != size.get("width"):
        raise ConfigError(f"{folder}: SAM 3 takes square inputs, the processor config says {size}")
    if int(size.get("height", default_size)) != default_size:
        raise ConfigError(f"{folder}: the processor's image size {size} is not the model's {default_size}")
    return ImageSpec(
        default_size,
        tuple(float(v) for v in config.get("image_mean", HALF)),  # type: ignore[arg-type]
        tuple(float(v) for v in config.get("image_std", HALF)),  # type: ignore[arg-type]
        float(config.get("rescale_factor", RESCALE)),
    )


# --- what torchvision would do -----------------------------------------------------------------
def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor | Sequence[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """``torchvision.ops.roi_align``: [N, C, H, W] features, boxes (a list of [K_i, 4] XYXY per image, or
    [K, 5] with the image index first) -> [K, C, out_h, out_w], bins averaged over bilinear samples."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    if isinstance(boxes, torch.Tensor):
        rois = boxes
    else:
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])
    dtype = input.dtype
    features = input.float()
    rois = rois.float()
    height, width = features.shape[-2:]
    offset = 0.5 if aligned else 0.0
    start_x, start_y, end_x, end_y = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    roi_w, roi_h = end_x - start_x, end_y - start_y
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.int64)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.int64)
    else:
        grid_h, grid_w = torch.ceil(roi_h / out_h).long(), torch.ceil(roi_w / out_w).long()
    samples_h = max(int(grid_h.max()) if len(rois) else 1, 1)
    samples_w = max(int(grid_w.max()) if len(rois) else 1, 1)
    iy, ix = torch.arange(samples_h, device=rois.device), torch.arange(samples_w, device=rois.device)
    ph, pw = torch.arange(out_h, device=rois.device), torch.arange(out_w, device=rois.device)
    # sample coordinates: y [K, out_h, samples_h], x [K, out_w, samples_w]
    y = start_y[:, None, None] + ph[None, :, None] * bin_h[:, None, None] + (
        (iy[None, None, :] + 0.5) * bin_h[:, None, None] / grid_h.clamp(min=1)[:, None, None]
    )
    x = start_x[:, None, None] + pw[None, :, None] * bin_w[:, None, None] + (
        (ix[None, None, :] + 0.5) * bin_w[:, None, None] / grid_w.clamp(min=1)[:, None, None]
    )
    y_used = (iy[None, None, :] < grid_h[:, None, None]) & (y >= -1.0) & (y <= height)
    x_used = (ix[None, None, :] < grid_w[:, None, None]) & (x >= -1.0) & (x <= width)
    y_low, y_high, ly = _bilinear_axis(y, height)
    x_low, x_high, lx = _bilinear_axis(x, width)
    image = rois[:, 0].long()
    planes = features[image]  # [K, C, H, W]

    def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        # rows [K, out_h, samples_h], cols [K, out_w, samples_w] -> [K, C, out_h, out_w, samples_h, samples_w]
        k, c = planes.shape[:2]
        flat = planes.reshape(k, c, -1)
        index = rows[:, :, None, :, None] * width + cols[:, None, :, None, :]  # [K, oh, ow, sh, sw]
        picked = torch.gather(flat, 2, index.reshape(k, 1, -1).expand(k, c, -1))
        return picked.reshape(k, c, *index.shape[1:])

    hy, hx = 1.0 - ly, 1.0 - lx
    wy, wx = _along_y, _along_x
    value = (
        wy(hy) * wx(hx) * gather(y_low, x_low)
        + wy(hy) * wx(lx) * gather(y_low, x_high)
        + wy(ly) * wx(hx) * gather(y_high, x_low)
        + wy(ly) * wx(lx) * gather(y_high, x_high)
    )
    used = wy(y_used) & wx(x_used)
    count = (grid_h * grid_w).clamp(min=1).to(value.dtype)[:, None, None, None]
    return (torch.where(used, value, 0.0).sum((-1, -2)) / count).to(dtype)


def _along_y(t: torch.Tensor) -> torch.Tensor:
    return t[:, None, :, None, :, None]  # [K, out_h, samples_h] -> [K, 1, out_h, 1, samples_h, 1]


def _along_x(t: torch.Tensor) -> torch.Tensor:
    return t[:, None, None, :, None, :]  # [K, out_w, samples_w] -> [K, 1, 1, out_w, 1, samples_w]


def _bilinear_axis(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Low and high sample indices and the weight of the high one along one axis, clamped as the kernel."""
    coord = coord.clamp(min=0.0)
    low = coord.long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, size - 1, low + 1)
    coord = torch.where(at_edge, low.to(coord.dtype), coord)
    return low, high, coord - low


def install_roi_align() -> None:
    """Give the SAM 3 modelling modules ``torchvision.ops.roi_align`` when torchvision is absent."""
    import importlib

    for name in ("transformers.models.sam3.modeling_sam3", "transformers.models.sam3_lite_text.modeling_sam3_lite_text"):
        module = importlib.import_module(name)
        if getattr(module, "torchvision", None) is None:
            module.torchvision = SimpleNamespace(ops=SimpleNamespace(roi_align=roi_align))
