"""Segment everything: prompt a grid of points and keep the good, distinct masks.

:class:`MaskGenerator` behaves like the reference ``SamAutomaticMaskGenerator`` (same arguments,
record keys, filters and order). For each crop (the whole image, plus overlapping crops when
``crop_n_layers > 0``) it embeds the crop once, decodes the grid points in batches with three masks
each, drops masks by predicted IoU, by stability and when they touch an inner crop edge, removes
duplicates with box NMS, and finally removes duplicates across crops (preferring smaller crops).
Masks are held as COCO RLE between stages to bound memory.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zeroseg.io import load_image, mask_to_rle, masks_to_rles, rle_area, rle_to_mask
from zeroseg.segment.amg import (
    MaskData,
    batch_iterator,
    batched_mask_to_box,
    batched_nms,
    box_area,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from zeroseg.segment.predictor import Predictor

OUTPUT_MODES = ("binary_mask", "coco_rle")
PRE_REFINE_NMS = 0.9
"""With edge refinement on, box NMS at this IoU removes a crop's near-copies before refinement, which
then costs per distinct mask rather than per candidate; the crop's own NMS runs on the refined masks."""
COARSE_SIDE = 256
"""With edge refinement on, the candidates' stability, boxes and crop-edge test (which only decide what
reaches refinement) are computed on masks at most this many pixels a side, not at the crop's full size:
upscaling and thresholding every candidate at full size cost much of segment-everything's time. The
survivors are upscaled, refined and filtered again at full size."""


class MaskGenerator:
    """Generate masks for a whole image from a grid of point prompts.

    Arguments (as the reference):
      model: a SAM-interface model, or a :class:`Predictor` to share its embedding cache (its
        current image is reset by :meth:`generate`).
      points_per_side: grid points along each side (points_per_side**2 prompts); None to use
        ``point_grids`` instead.
      points_per_batch: points decoded together (memory vs speed).
      pred_iou_thresh: keep masks whose predicted IoU is above this (0 disables).
      stability_score_thresh: keep masks whose stability score is at least this (0 disables).
      stability_score_offset: logit offset used by the stability score.
      box_nms_thresh: box IoU above which duplicate masks of one crop are dropped.
      crop_n_layers: extra crop layers; layer i has (2**i)**2 crops.
      crop_nms_thresh: box IoU above which duplicates across crops are dropped.
      crop_overlap_ratio: overlap of the first layer's crops, as a fraction of the short side.
      crop_n_points_downscale_factor: layer i uses points_per_side / factor**i points a side.
      point_grids: explicit normalised (x, y) grids in [0, 1], one per crop layer.
      min_mask_region_area: if > 0, fill holes and drop islands smaller than this many pixels.
      output_mode: "binary_mask" (bool HxW) or "coco_rle" (``{"size", "counts"}``).
      progress: show a progress bar over point batches.
    """

    def __init__(
        self,
        model: nn.Module | Predictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        progress: bool = False,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if point_grids is not None and len(point_grids) < crop_n_layers + 1:
            raise ValueError(f"point_grids needs a grid per crop layer ({crop_n_layers + 1}), got {len(point_grids)}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if points_per_side is not None:
            point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        self.point_grids = point_grids
        self.predictor = model if isinstance(model, Predictor) else Predictor(model)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.progress = progress

    @torch.inference_mode()
    def generate(self, image: Any) -> list[dict[str, Any]]:
        """Masks of an image (HxWx3 uint8 RGB array, path, bytes or PIL image), in the reference's
        order: by predicted IoU, and with crop layers, masks of smaller crops first.

        Each record has ``segmentation`` (bool HxW, or COCO RLE), ``area`` (pixels), ``bbox``
        (XYWH), ``predicted_iou``, ``point_coords`` ([[x, y]], the prompt), ``stability_score`` and
        ``crop_box`` (XYWH of the crop that produced the mask).
        """
        image = load_image(image)
        data = self._generate_masks(image)
        if self.min_mask_region_area > 0:
            data = self._remove_small_regions(data, max(self.box_nms_thresh, self.crop_nms_thresh))
        return [
            {
                "segmentation": rle if self.output_mode == "coco_rle" else rle_to_mask(rle),
                "area": rle_area(rle),
                "bbox": box_xyxy_to_xywh(data["boxes"][i]).tolist(),
                "predicted_iou": data["iou_preds"][i].item(),
                "point_coords": [data["points"][i].tolist()],
                "stability_score": data["stability_score"][i].item(),
                "crop_box": box_xyxy_to_xywh(data["crop_boxes"][i]).tolist(),
            }
            for i, rle in enumerate(data["rles"])
        ]

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        n_batches = sum(-(-len(self.point_grids[layer]) // self.points_per_batch) for layer in layer_idxs)
        if self.predictor.refine_edges:  # each crop's edge refinement is one more step (_process_crop)
            n_batches += len(crop_boxes)
        data = MaskData()
        with tqdm(total=n_batches, disable=not self.progress, desc="segment everything", unit="step") as bar:
            for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
                data.cat(self._process_crop(image, crop_box, layer_idx, bar))

        if len(crop_boxes) > 1:  # duplicates across crops: prefer masks from smaller crops
            keep = batched_nms(
                data["boxes"].float(),
                1 / box_area(data["crop_boxes"]),
                torch.zeros(len(data["boxes"])),
                iou_threshold=self.crop_nms_thresh,
            )
            data.filter(keep)
        data.to_numpy()
        return data

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer_idx: int, bar: tqdm) -> MaskData:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = crop.shape[:2]
        self.predictor.set_image(crop)

        points_for_crop = self.point_grids[layer_idx] * np.array(crop_size)[None, ::-1]
        data = MaskData()
        for (points,) in batch_iterator(self.points_per_batch, points_for_crop):
            data.cat(self._process_batch(points, crop_size, crop_box, image.shape[:2]))
            bar.update()

        if "low_res" in data:  # near-copies go first, then the rest are refined (and NMS'd as refined)
            data.filter(self._nms(data, max(self.box_nms_thresh, PRE_REFINE_NMS)))
            self._refine_kept(data, crop_box, image.shape[:2])
            bar.update()
        data.filter(self._nms(data, self.box_nms_thresh))
        self.predictor.reset_image()
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor(crop_box).repeat(len(data["rles"]), 1)
        return data

    def _process_batch(
        self, points: np.ndarray, crop_size: tuple[int, int], crop_box: list[int], orig_size: tuple[int, int]
    ) -> MaskData:
        predictor = self.predictor
        # float64 points, like the reference (its prompt encoder normalises them before casting)
        in_points = torch.as_tensor(predictor.transform.apply_coords(points, crop_size), device=predictor.device)
        in_labels = torch.ones(len(in_points), dtype=torch.int, device=predictor.device)
        low_res, iou_preds = predictor.decode_torch(in_points[:, None, :], in_labels[:, None], multimask_output=True)
        data = MaskData(
            masks=low_res.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(low_res.shape[1], axis=0)),
        )
        del low_res

        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)
        refined = predictor.refine_edges  # edge refinement waits for the masks that survive NMS (_refine_kept)
        if refined:
            data["low_res"] = data["masks"]
        # Upscaling is the costly part: only masks that passed the IoU filter get it, and only a quick look
        # (COARSE_SIDE) when the survivors are upscaled again for refinement.
        data["masks"] = predictor.upscale_masks(data["masks"], max_side=COARSE_SIDE if refined else None)
        self._threshold(data, crop_box, orig_size, encode=not refined)
        return data

    def _threshold(self, data: MaskData, crop_box: list[int], orig_size: tuple[int, int], encode: bool = True) -> None:
        """Upscaled logits in ``data["masks"]`` (at the crop's size, or smaller: boxes are scaled to the
        crop) -> stability filter, boxes, crop-edge filter and, with ``encode``, RLEs (masks still to be
        refined need only their boxes, for NMS)."""
        predictor = self.predictor
        orig_h, orig_w = orig_size
        threshold = predictor.model.mask_threshold
        data["stability_score"] = calculate_stability_score(data["masks"], threshold, self.stability_score_offset)
        # one filter, on the binary masks (filtering the float logits first copied them whole)
        data["masks"] = data["masks"] > threshold
        data["boxes"] = batched_mask_to_box(data["masks"])
        crop_h, crop_w = crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]
        mask_h, mask_w = data["masks"].shape[-2:]
        if (mask_h, mask_w) != (crop_h, crop_w):  # inclusive pixel indices of the smaller masks -> the crop's
            scale = torch.tensor([crop_w / mask_w, crop_h / mask_h] * 2)
            data["boxes"] = ((data["boxes"] + torch.tensor([0, 0, 1, 1])) * scale - torch.tensor([0, 0, 1, 1])).round().long()
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if self.stability_score_thresh > 0.0:
            keep &= data["stability_score"] >= self.stability_score_thresh
        data.filter(keep)

        if encode:
            masks = uncrop_masks(data["masks"], crop_box, orig_h, orig_w)
            data["rles"] = masks_to_rles(masks.cpu().numpy()) if len(masks) else []
        del data["masks"]

    @staticmethod
    def _nms(data: MaskData, threshold: float) -> torch.Tensor:
        return batched_nms(data["boxes"].float(), data["iou_preds"], torch.zeros(len(data["boxes"])), threshold)

    def _refine_kept(self, data: MaskData, crop_box: list[int], orig_size: tuple[int, int]) -> None:
        """Snap the masks that survived the crop's NMS to the image's edges (the predictor's edge
        refinement) and threshold them again: refining only the survivors, not every candidate,
        is what keeps segment-everything affordable with refinement on."""
        low_res = data["low_res"]
        del data["low_res"]
        data["masks"] = self.predictor.refine(self.predictor.upscale_masks(low_res))
        self._threshold(data, crop_box, orig_size)

    def _remove_small_regions(self, data: MaskData, nms_thresh: float) -> MaskData:
        """Fill small holes and drop small islands of every mask, then remove the duplicates this
        creates with box NMS that prefers unchanged masks."""
        if not data["rles"]:
            return data
        boxes, unchanged, new_rles = [], [], {}
        for i, rle in enumerate(data["rles"]):
            mask, filled = remove_small_regions(rle_to_mask(rle), self.min_mask_region_area, mode="holes")
            mask, trimmed = remove_small_regions(mask, self.min_mask_region_area, mode="islands")
            if filled or trimmed:
                new_rles[i] = mask_to_rle(mask)
            unchanged.append(float(not (filled or trimmed)))
            boxes.append(batched_mask_to_box(torch.from_numpy(mask)))
        boxes = torch.stack(boxes)
        keep = batched_nms(boxes.float(), torch.as_tensor(unchanged), torch.zeros(len(boxes)), nms_thresh)
        for i in keep.tolist():
            if i in new_rles:
                data["rles"][i] = new_rles[i]
                data["boxes"][i] = boxes[i].numpy()
        data.filter(keep)
        return data
