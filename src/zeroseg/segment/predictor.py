"""Embed an image once, then predict masks for many prompts.

:class:`Predictor` is a drop-in for the reference ``SamPredictor``: same methods, arguments,
shapes and dtypes. It adds prompt validation with specific errors, a batched entry point
(:meth:`Predictor.predict_batch`) and an LRU cache of image embeddings, so setting an image seen
before skips the image encoder.

It depends only on the promptable interface (``img_size``, ``transform``, ``mask_input_size``,
``embed``, ``image_embedding``, ``decode_prompts``, ``postprocess_masks``, ``mask_threshold``,
``image_format``), which zeroseg's ``Sam`` (SAM 1, MobileSAM, lite) offers and the adapters over
transformers models (``zeroseg.models.hf.adapter``: SAM 2.1, SAM-HQ, EdgeTAM, SAM 3's tracker)
offer through the models' own forward passes.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.errors import ImageError, NoImageSetError, PromptShapeError
from zeroseg.io import image_key, load_image
from zeroseg.segment import box_choice
from zeroseg.segment.graph_cut import GraphCutRefiner, refine_all
from zeroseg.segment.refine import EdgeRefiner
from zeroseg.segment.validation import check_boxes, check_mask_input, check_points

PRIOR_LOGIT = 8.0
"""Magnitude of the logits a given mask becomes as ``mask_input`` (:meth:`Predictor.mask_to_input`)."""

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]
TorchPrediction = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Embedding:
    features: Any  # a 1xCxhxw tensor, or an adapter's embedding
    original_size: tuple[int, int]
    input_size: tuple[int, int]


class Predictor:
    """Predict masks from point, box and mask prompts on one image embedded once.

    Arguments:
      model: a promptable model: zeroseg's ``Sam`` (e.g. built by ``zeroseg.models.sam.build_from_config``)
        or an adapter (``zeroseg.models.hf.build_hf_segmenter``).
      cache_size: how many image embeddings to keep (least recently used are dropped); 0 disables.
      refine_edges: snap the masks of :meth:`predict` / :meth:`predict_batch` to the image's edges
        (:class:`~zeroseg.segment.refine.EdgeRefiner`); by default the model's ``refine_edges``
        (on for the lite model, off for SAM, whose outputs then equal the reference's). It needs the
        original pixels, so images given to :meth:`set_torch_image` directly are not refined.
      graph_cut: refine the boolean masks of :meth:`predict` (one prompt: the interactive path) with
        GrabCut around their boundaries, clicks pinned (:class:`~zeroseg.segment.graph_cut.GraphCutRefiner`);
        by default the model's ``graph_cut`` (its preset's: ``hub.load_model`` sets it). The returned
        low-resolution masks then encode the cut masks (:meth:`mask_to_input`); logits
        (``return_logits``) and :meth:`predict_batch` stay the model's own.
      cut_alternatives: with several masks for one prompt, cut them all (True) or only the best-scored
        one, the one a person sees first (False: the app's first click shows its mask sooner).
      box_choice: answer a box alone (no points, no mask input, one mask) as :mod:`~zeroseg.segment.box_choice`
        says: a large box with whichever of the decoder's four outputs fits it best rather than its single-mask
        output, a small box together with a click at its centre; by default the model's ``box_choice`` (its
        preset's).
    """

    def __init__(
        self,
        model: nn.Module,
        cache_size: int = 8,
        refine_edges: bool | None = None,
        graph_cut: bool | None = None,
        cut_alternatives: bool = True,
        box_choice: bool | None = None,
    ) -> None:
        self.model = model
        self.cut_alternatives = cut_alternatives
        self.box_choice = getattr(model, "box_choice", False) if box_choice is None else box_choice
        self.refine_edges = getattr(model, "refine_edges", False) if refine_edges is None else refine_edges
        self.graph_cut = getattr(model, "graph_cut", False) if graph_cut is None else graph_cut
        if not callable(getattr(model, "decode_prompts", None)):
            raise TypeError(f"{type(model).__name__} is not a promptable model (it has no decode_prompts)")
        self._img_size: int = model.img_size
        self.transform = model.transform
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], _Embedding] = OrderedDict()
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- image -----------------------------------------------------------------------------
    def set_image(self, image: Any, image_format: str = "RGB") -> None:
        """Embed an image: an HxWx3 uint8 array in ``image_format`` ('RGB' or 'BGR'), or a path,
        bytes or PIL image (decoded as RGB, so ``image_format`` does not apply to them). Other
        arrays that :func:`zeroseg.io.load_image` accepts are converted the same way."""
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if not isinstance(image, np.ndarray):
            image_format = "RGB"
        image = load_image(image)
        if image_format != self.model.image_format:
            image = image[..., ::-1]

        key = self._cache_key(image)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self._use(cached)
        else:
            self._embed(image)
            if self.cache_size > 0:
                self._cache[key] = _Embedding(self.features, self.original_size, self.input_size)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self._image = image if self.refine_edges or self.graph_cut else None
        self._refiner = None

    def _embed(self, image: np.ndarray) -> None:
        input_image = torch.as_tensor(self.transform.apply_image(image), device=self.device)
        input_image = input_image.permute(2, 0, 1).contiguous()[None, :, :, :]
        self.set_torch_image(input_image, image.shape[:2])

    @torch.inference_mode()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        """Embed a 1x3xHxW image already resized with :attr:`transform` (not normalised)."""
        img_size = self._img_size
        shape = tuple(transformed_image.shape)
        if len(shape) != 4 or shape[0] != 1 or shape[1] != 3 or max(shape[2:]) != img_size:
            raise ImageError(f"set_torch_image expects a 1x3xHxW tensor with longest side {img_size}, got {shape}")
        self.reset_image()
        features = self.model.embed(transformed_image)
        self._use(_Embedding(features, tuple(int(s) for s in original_image_size[:2]), shape[2:]))

    def get_image_embedding(self) -> torch.Tensor:
        """The embedding of the current image, 1xCxHxW."""
        self._require_image()
        return self.model.image_embedding(self.features)

    def reset_image(self) -> None:
        """Forget the current image (cached embeddings stay available)."""
        self.is_image_set = False
        self.features: Any = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        self._image: np.ndarray | None = None  # the original RGB image, kept for edge refinement
        self._refiner: EdgeRefiner | None = None

    def clear_cache(self) -> None:
        """Drop every cached embedding (e.g. after changing the model's weights in place)."""
        self._cache.clear()

    # --- prompts ---------------------------------------------------------------------------
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        """Predict masks for one prompt on the current image.

        Arguments:
          point_coords: Nx2 (x, y) pixels of the original image.
          point_labels: N labels, 1 = foreground, 0 = background.
          box: XYXY pixels (4 values).
          mask_input: 1xHxW low-resolution logits, e.g. a ``low_res_masks`` entry of an earlier call.
          multimask_output: return 3 masks for an ambiguous prompt instead of 1.
          return_logits: return mask logits instead of booleans.

        Returns masks CxHxW (bool, or float32 logits) at the original size, iou_predictions C
        (float32) and low_res_masks Cxhxw float32 logits (256x256 for SAM), with C = 3 or 1. With
        :attr:`graph_cut`, the masks (or only the best-scored one, see ``cut_alternatives``) are refined
        and low_res_masks are their :meth:`mask_to_input`, so that the next click refines the mask the
        user saw.
        """
        xyxy = None if box is None else np.asarray(box, np.float64).reshape(-1)
        box_alone = self.box_choice and xyxy is not None and (point_coords is None or len(point_coords) == 0) \
            and mask_input is None and not multimask_output and not return_logits and self.original_size is not None
        if box_alone:  # a small box: click its centre too
            point_coords, point_labels = box_choice.with_centre_click(None, None, xyxy, self.original_size)
            box_alone = point_coords is None
        prompts = self._prompts_to_torch(point_coords, point_labels, box, mask_input, batched=False)
        masks, iou_predictions, low_res_masks = self.predict_torch(*prompts, multimask_output, return_logits)
        masks, low_res_masks = masks[0].cpu().numpy(), low_res_masks[0].cpu().numpy()
        scores = iou_predictions[0].cpu().numpy()
        if box_alone and box_choice.chooses(xyxy, masks.shape[-2:]):
            more, more_scores, more_low = self.predict_torch(*prompts, True, False)
            masks = np.concatenate([masks, more[0].cpu().numpy()])
            scores = np.concatenate([scores, more_scores[0].cpu().numpy()])
            low_res_masks = np.concatenate([low_res_masks, more_low[0].cpu().numpy()])
            best = int(np.argmax(box_choice.box_fit_scores(masks, scores, xyxy)))
            masks, scores, low_res_masks = masks[best:best + 1], scores[best:best + 1], low_res_masks[best:best + 1]
        if self.graph_cut and not return_logits and self._image is not None:
            cut = range(len(masks)) if self.cut_alternatives else [int(np.argmax(scores))]
            masks[cut] = refine_all(GraphCutRefiner(self._image), masks[cut], point_coords, point_labels, box)
            for i in cut:
                low_res_masks[i] = self.mask_to_input(masks[i])[0]
        return masks, scores, low_res_masks

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        """Predict masks for B prompts in one decoder call; prompt i of each kind goes to item i.

        Arguments:
          point_coords: BxNx2 (x, y) pixels; point_labels: BxN in {1, 0, -1}, where -1 pads a
            ragged batch (a padding point is embedded as "not a point", which is close to but not
            exactly the same as leaving it out).
          boxes: Bx4 XYXY pixels.
          mask_input: Bx1xHxW low-resolution logits.
          multimask_output, return_logits: as in :meth:`predict`.

        Returns masks BxCxHxW, iou_predictions BxC and low_res_masks BxCxhxw (numpy).
        """
        prompts = self._prompts_to_torch(point_coords, point_labels, boxes, mask_input, batched=True)
        masks, iou_predictions, low_res_masks = self.predict_torch(*prompts, multimask_output, return_logits)
        return masks.cpu().numpy(), iou_predictions.cpu().numpy(), low_res_masks.cpu().numpy()

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> TorchPrediction:
        """Predict masks for batched prompts already in the resized frame (see :attr:`transform`).

        point_coords BxNx2, point_labels BxN, boxes Bx4, mask_input Bx1xHxW; returns masks BxCxHxW
        at the original size, iou_predictions BxC and low_res_masks BxCxhxw, all on the device.
        """
        low_res_masks, iou_predictions = self.decode_torch(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        masks = self.refine(self.upscale_masks(low_res_masks))
        if not return_logits:
            masks = masks > self.model.mask_threshold
        limit = getattr(self.model, "low_res_logit_limit", None)  # SAM 2 models: as Meta's predictor
        if limit is not None:
            low_res_masks = low_res_masks.clamp(-limit, limit)
        return masks, iou_predictions, low_res_masks

    @torch.inference_mode()
    def decode_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder half of :meth:`predict_torch`: low-resolution mask logits BxCxhxw and predicted
        IoU BxC, before upscaling (callers that drop masks by score upscale only the kept ones)."""
        self._require_image()
        return self.model.decode_prompts(
            self.features, point_coords, point_labels, boxes, mask_input, multimask_output
        )

    @torch.inference_mode()
    def upscale_masks(self, low_res_masks: torch.Tensor, max_side: int | None = None) -> torch.Tensor:
        """Low-resolution logits ``(..., h, w)`` -> logits at the current image's original size, or with
        ``max_side`` at that size scaled down to at most ``max_side`` pixels a side (a quick look: the
        padding, at the bottom and right as in SAM's frame, is cropped in the low-resolution grid and the rest
        resized once)."""
        self._require_image()
        shape = low_res_masks.shape
        flat = low_res_masks.reshape(-1, 1, *shape[-2:])
        height, width = self.original_size
        scale = 1.0 if max_side is None else max_side / max(height, width)
        if scale < 1.0:
            size = self._img_size
            rows = max(1, round(self.input_size[0] * shape[-2] / size))
            cols = max(1, round(self.input_size[1] * shape[-1] / size))
            target = (max(1, round(height * scale)), max(1, round(width * scale)))
            masks = F.interpolate(flat[..., :rows, :cols], target, mode="bilinear", align_corners=False)
        else:
            masks = self.model.postprocess_masks(flat, self.input_size, self.original_size)
        return masks.reshape(*shape[:-2], *masks.shape[-2:])

    def refine(self, masks: torch.Tensor) -> torch.Tensor:
        """Upscaled mask logits ``(..., H, W)`` snapped to the current image's edges when
        :attr:`refine_edges` is on (and the original pixels are known); unchanged otherwise."""
        if not self.refine_edges or self._image is None or masks.numel() == 0:
            return masks
        if self._refiner is None:
            self._refiner = EdgeRefiner(self._image)
        return self._refiner(masks)

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """A bool HxW mask of the current image as a 1xhxw ``mask_input`` (logits +/- PRIOR_LOGIT).

        The mask goes through the model's own input frame: resized like the image (longest side to
        the encoder's size), padded at the bottom and right, then shrunk to the mask-input size.
        """
        self._require_image()
        if tuple(mask.shape) != self.original_size:
            raise PromptShapeError(f"a {tuple(mask.shape)} mask does not match the image {self.original_size}")
        height, width = self.input_size
        side = self._img_size
        frame = np.zeros((side, side), np.float32)
        frame[:height, :width] = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        out_h, out_w = self.model.mask_input_size
        small = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)
        return ((small * 2.0 - 1.0) * PRIOR_LOGIT)[None].astype(np.float32)

    # --- helpers ---------------------------------------------------------------------------
    def _use(self, embedding: _Embedding) -> None:
        self.features = embedding.features
        self.original_size = embedding.original_size
        self.input_size = embedding.input_size
        self.is_image_set = True

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise NoImageSetError("no image is set: call set_image(...) before predicting")

    def _cache_key(self, image: np.ndarray) -> tuple[Any, ...]:
        """Content hash of the pixels plus what determines the embedding besides them."""
        model_id = getattr(self.model, "name", None) or f"{type(self.model).__qualname__}@{id(self.model):x}"
        return *image_key(image), model_id, str(self.device)

    def _prompts_to_torch(
        self, point_coords: Any, point_labels: Any, boxes: Any, mask_input: Any, batched: bool
    ) -> tuple[torch.Tensor | None, ...]:
        """Validate prompts in original-image pixels and turn them into batched model inputs."""
        self._require_image()
        size = self.original_size
        coords_torch = labels_torch = boxes_torch = mask_torch = None
        batch_sizes: list[tuple[str, int]] = []
        if point_coords is not None or point_labels is not None:
            if point_coords is None:
                raise PromptShapeError("point_coords must be given with point_labels")
            coords, labels = check_points(point_coords, point_labels, size, batched)
            coords = self.transform.apply_coords(coords, size)
            coords_torch = torch.as_tensor(coords, dtype=torch.float, device=self.device)
            labels_torch = torch.as_tensor(labels, dtype=torch.int, device=self.device)
            if not batched:
                coords_torch, labels_torch = coords_torch[None], labels_torch[None]
            batch_sizes.append(("point_coords", len(coords_torch)))
        if boxes is not None:
            boxes = self.transform.apply_boxes(check_boxes(boxes, size, batched), size)
            boxes_torch = torch.as_tensor(boxes, dtype=torch.float, device=self.device)
            batch_sizes.append(("boxes", len(boxes_torch)))
        if mask_input is not None:
            mask = check_mask_input(mask_input, tuple(self.model.mask_input_size), batched)
            mask_torch = torch.as_tensor(mask, device=self.device)
            if not batched:
                mask_torch = mask_torch[None]
            batch_sizes.append(("mask_input", len(mask_torch)))
        if batched:
            _check_same_batch(batch_sizes)
        return coords_torch, labels_torch, boxes_torch, mask_torch


def _check_same_batch(sizes: list[tuple[str, int]]) -> None:
    if not sizes:
        raise PromptShapeError("predict_batch needs at least one of point_coords, boxes or mask_input")
    if len({n for _, n in sizes}) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sizes)
        raise PromptShapeError(f"prompts must have the same batch size B: {listed}")
