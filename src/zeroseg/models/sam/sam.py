"""The Segment Anything model: image encoder + prompt encoder + mask decoder.

Numerically equivalent to ``segment_anything/modeling/sam.py`` (also MobileSAM's, whose image
encoder is a TinyViT); buffer and sub-module names follow the official checkpoints.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.sam.mask_decoder import MaskDecoder
from zeroseg.models.sam.prompt_encoder import PromptEncoder
from zeroseg.models.transforms import ResizeLongestSide

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class Sam(nn.Module):
    """Predicts object masks from an image and prompts.

    ``image_encoder`` is any module with an ``img_size`` attribute mapping a padded, normalised
    ``(B, 3, img_size, img_size)`` image to the embedding the decoder expects.

    Besides the reference's ``forward``, it offers the promptable interface the ``Predictor`` drives
    (the one ``zeroseg.models.hf.adapter`` gives the transformers models): ``img_size``, ``transform``,
    ``mask_input_size``, ``embed``, ``image_embedding``, ``decode_prompts`` and ``postprocess_masks``.
    """

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    refine_edges: bool = False  # whether the Predictor snaps this model's masks to image edges by default
    graph_cut: bool = False  # whether Predictor.predict refines this model's masks with GrabCut by default
    box_choice: bool = False  # whether Predictor.predict answers a box with the output that fits it best

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: Sequence[float] = PIXEL_MEAN,
        pixel_std: Sequence[float] = PIXEL_STD,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.as_tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.as_tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        self._dense_pe: torch.Tensor | None = None  # the decoder's positional encoding, made once

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # --- the promptable interface (zeroseg.segment.Predictor) ----------------------------------
    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    @property
    def transform(self) -> ResizeLongestSide:
        """Original pixels -> the encoder's input frame (longest side ``img_size``)."""
        return ResizeLongestSide(self.img_size)

    @property
    def mask_input_size(self) -> tuple[int, int]:
        return tuple(self.prompt_encoder.mask_input_size)

    @torch.inference_mode()
    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """A resized 1x3xhxw image (0..255, from ``transform.apply_image``) -> its 1xCxHxW embedding."""
        return self.image_encoder(self.preprocess(image))

    def image_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding

    @torch.inference_mode()
    def decode_prompts(
        self,
        embedding: torch.Tensor,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts in the input frame on one embedded image -> low-resolution logits BxCxhxw and
        predicted IoU BxC."""
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse_embeddings, dense_embeddings = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        return self.mask_decoder(
            image_embeddings=embedding,
            image_pe=self._image_pe(),
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
        )

    def _image_pe(self) -> torch.Tensor:
        if self._dense_pe is None or self._dense_pe.device != self.device:
            self._dense_pe = self.prompt_encoder.get_dense_pe()
        return self._dense_pe

    @torch.inference_mode()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """Predict masks end to end, like the reference ``Sam.forward``.

        Args:
            batched_input: one dict per image with ``image`` (3xHxW, already resized so that its longest
                side is ``img_size``), ``original_size`` (H, W) and optionally ``point_coords`` (BxNx2),
                ``point_labels`` (BxN), ``boxes`` (Bx4) in the resized frame and ``mask_inputs``
                (Bx1x256x256 logits).
            multimask_output: predict several disambiguating masks instead of one.

        Returns:
            one dict per image with ``masks`` (BxCxHxW bool at the original size), ``iou_predictions``
            (BxC) and ``low_res_logits`` (BxCx256x256).
        """
        images = torch.stack([self.preprocess(record["image"]) for record in batched_input], dim=0)
        image_embeddings = self.image_encoder(images)

        outputs = []
        for record, embedding in zip(batched_input, image_embeddings):
            points = (record["point_coords"], record["point_labels"]) if "point_coords" in record else None
            sparse_embeddings, dense_embeddings = self.prompt_encoder(
                points=points, boxes=record.get("boxes"), masks=record.get("mask_inputs")
            )
            low_res_masks, iou_predictions = self.mask_decoder(
                image_embeddings=embedding.unsqueeze(0),
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse_embeddings,
                dense_prompt_embeddings=dense_embeddings,
                multimask_output=multimask_output,
            )
            masks = self.postprocess_masks(
                low_res_masks, input_size=record["image"].shape[-2:], original_size=record["original_size"]
            )
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou_predictions,
                    "low_res_logits": low_res_masks,
                }
            )
        return outputs

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """Upscale ``(B, C, h, w)`` decoder logits to the padded input, crop the padding (``input_size`` =
        the resized image's (H, W)) and resize to ``original_size`` (H, W); bilinear, no antialias."""
        size = self.image_encoder.img_size
        crop_h, crop_w = int(input_size[0]), int(input_size[1])
        low_h, low_w = masks.shape[-2:]
        if size % low_h == 0 and size % low_w == 0:
            # Upscale only the low-res rows/columns the crop keeps (+1 for the interpolation's right
            # neighbour). The scale stays size/low exactly, so the kept pixels are bit-identical.
            fh, fw = size // low_h, size // low_w
            rows, cols = min(low_h, -(-crop_h // fh) + 1), min(low_w, -(-crop_w // fw) + 1)
            masks = F.interpolate(masks[..., :rows, :cols], (rows * fh, cols * fw), mode="bilinear", align_corners=False)
        else:
            masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., :crop_h, :crop_w]
        original = (int(original_size[0]), int(original_size[1]))
        return F.interpolate(masks, original, mode="bilinear", align_corners=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a ``(..., 3, H, W)`` image (0..255 values, any dtype) and zero-pad it at the bottom
        and right to ``img_size`` x ``img_size``."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        size = self.image_encoder.img_size
        return F.pad(x, (0, size - w, 0, size - h))
