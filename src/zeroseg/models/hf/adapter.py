"""The promptable-adapter interface that zeroseg's Predictor drives, over a transformers model.

An adapter holds the transformers model unchanged (``adapter.model``) and adds what the Predictor
needs around its own entry points (``get_image_embeddings`` once per image, then ``forward`` with
``image_embeddings=`` per prompt batch):

- ``img_size``, ``transform`` (original pixels -> the model's input frame), ``mask_input_size``,
  ``mask_threshold``, ``image_format``, ``low_res_logit_limit``;
- ``embed(image)``: a resized 1x3xhxw uint8 image -> an :class:`Embedding` (kept in the Predictor's
  cache), normalised and padded as the model's processor does;
- ``decode_prompts(embedding, points, labels, boxes, masks, multimask)``: prompts already in the
  input frame -> low-resolution logits BxCxhxw and predicted IoU BxC (float32);
- ``postprocess_masks(masks, input_size, original_size)``: logits Nx1xhxw -> the original size;
- ``image_embedding(embedding)``: the 1xCxhxw image embedding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zeroseg.errors import ModelError
from zeroseg.models.hf.common import ImageSpec, ResizeTransform, model_input, upscale_masks


@dataclass(frozen=True)
class Embedding:
    """An image embedded once: the image embedding 1xCxhxw and the extra features the model's
    decoder reads (SAM 2's high-resolution features, SAM-HQ's early ViT features)."""

    image: torch.Tensor
    extras: tuple[torch.Tensor, ...] = ()


class PromptableAdapter(nn.Module):
    """Base of the adapters: prompt batching, dtype and mask upscaling; subclasses say how the
    model embeds an image and which forward arguments carry the embedding."""

    image_format = "RGB"
    mask_threshold = 0.0
    low_res_logit_limit: float | None = None
    """Returned low-resolution logits are clamped to +/- this (Meta's SAM 2 predictors); None: not."""

    def __init__(self, model: nn.Module, spec: ImageSpec, family: str) -> None:
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.family = family
        self.img_size = spec.side
        self.transform = ResizeTransform(spec)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def mask_input_size(self) -> tuple[int, int]:
        raise NotImplementedError

    # --- what subclasses provide ------------------------------------------------------------
    def _embed(self, pixel_values: torch.Tensor) -> Embedding:
        raise NotImplementedError

    def _embedding_arguments(self, embedding: Embedding, batch: int) -> dict[str, Any]:
        """The forward's keyword arguments that carry ``embedding``, repeated for ``batch`` images."""
        raise NotImplementedError

    def _forward_options(self) -> dict[str, Any]:
        return {}

    # --- the interface ----------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, image: torch.Tensor) -> Embedding:
        """A resized 1x3xhxw image (0..255, from ``transform.apply_image``) -> its embedding."""
        return self._embed(model_input(image.to(self.device), self.spec, self.dtype))

    def image_embedding(self, embedding: Embedding) -> torch.Tensor:
        return embedding.image

    @torch.inference_mode()
    def decode_prompts(
        self,
        embedding: Embedding,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts (points BxNx2 and labels BxN, boxes Bx4, mask_input Bx1xhxw, in the input
        frame) on one image -> low-resolution logits BxCxhxw and predicted IoU BxC, float32.

        The B prompts go to the model as B objects of one image, as its processor batches them;
        with mask inputs and B > 1 they go as B images of one object each (the models add a dense
        prompt per image)."""
        sizes = [len(t) for t in (point_coords, boxes, mask_input) if t is not None]
        if not sizes:
            raise ValueError("decode_prompts needs points, boxes or a mask input")
        batch = sizes[0]
        per_image = mask_input is not None and batch > 1

        def layout(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor[:, None] if per_image else tensor[None]

        device = self.device
        inputs: dict[str, Any] = self._embedding_arguments(embedding, batch if per_image else 1)
        if point_coords is not None:
            inputs["input_points"] = layout(point_coords.to(device, torch.float32))
            inputs["input_labels"] = layout(point_labels.to(device, torch.int64))
        if boxes is not None:
            inputs["input_boxes"] = layout(boxes.to(device, torch.float32))
        if mask_input is not None:
            inputs["input_masks"] = mask_input.to(device, self.dtype)
        out = self.model(multimask_output=multimask_output, **inputs, **self._forward_options())
        low_res, iou = out.pred_masks, out.iou_scores
        low_res, iou = (low_res[:, 0], iou[:, 0]) if per_image else (low_res[0], iou[0])
        return low_res.float(), iou.float()

    def compile_prompts(self) -> None:
        """Compile the model's prompt path (its ``forward`` on an image embedding) with
        ``torch.compile`` and run it once for each kind of prompt the app sends.

        An opt-in for long sessions (``zeroseg serve --compile``): the fused kernels answer a click
        faster, but compiling costs tens of seconds on a CPU, paid here rather than at a user's first
        click. The image encoder stays eager (it is bound by its matrix products). Each new kind of
        prompt later compiles once on first use (e.g. segment-everything's point batches)."""
        self.model.compile()
        side = self.img_size
        try:
            embedding = self.embed(torch.zeros(1, 3, side, side, dtype=torch.uint8))
            point, label = torch.full((1, 1, 2), side / 2), torch.ones(1, 1, dtype=torch.int64)
            low_res, _ = self.decode_prompts(embedding, point, label, None, None, multimask_output=True)
            points, labels = torch.cat([point, point / 2], 1), torch.tensor([[1, 0]])
            self.decode_prompts(embedding, points, labels, None, low_res[:, :1], multimask_output=False)
            box = torch.tensor([[side / 4, side / 4, side * 3 / 4, side * 3 / 4]])
            self.decode_prompts(embedding, None, None, box, None, multimask_output=False)
        except Exception as err:  # inductor needs a C++ compiler; anything it raises means "run without"
            raise ModelError(f"torch.compile failed for {self.family} ({type(err).__name__}: {err}); "
                             "run without compiling (no --compile)") from err

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Low-resolution logits Nx1xhxw -> Nx1xHxW at ``original_size``, as the model's processor."""
        return upscale_masks(masks, original_size, self.spec, input_size)


def expand(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """A 1x... tensor seen as batch x ... (no copy)."""
    return tensor if batch == 1 else tensor.expand(batch, *tensor.shape[1:])
