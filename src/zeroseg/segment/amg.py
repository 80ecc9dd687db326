"""Building blocks of automatic mask generation: point grids, crops, mask statistics and NMS.

Boxes are XYXY unless a name says XYWH; points are (x, y). Masks stay torch tensors until they are
compressed to COCO RLE with pycocotools (see :mod:`zeroseg.io`).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch

# torchvision's CPU batched_nms switches to a per-category loop above this many boxes and then
# re-sorts the kept boxes by score; we mirror that so the order of tied scores is the same.
_TORCHVISION_LOOP_MIN_BOXES = 1000


class MaskData:
    """Per-mask columns (tensors, arrays or lists of equal length) filtered and joined together."""

    def __init__(self, **columns: torch.Tensor | np.ndarray | list[Any]) -> None:
        self._columns = dict(columns)

    def __getitem__(self, key: str) -> Any:
        return self._columns[key]

    def __setitem__(self, key: str, value: torch.Tensor | np.ndarray | list[Any]) -> None:
        self._columns[key] = value

    def __delitem__(self, key: str) -> None:
        del self._columns[key]

    def __contains__(self, key: str) -> bool:
        return key in self._columns

    def filter(self, keep: torch.Tensor) -> None:
        """Keep rows by a bool mask or by indices (which may also reorder them)."""
        keep = torch.as_tensor(keep)
        index = keep.nonzero().flatten() if keep.dtype == torch.bool else keep
        index = index.cpu()
        for key, column in self._columns.items():
            if isinstance(column, torch.Tensor):
                self._columns[key] = column[index.to(column.device)]
            elif isinstance(column, np.ndarray):
                self._columns[key] = column[index.numpy()]
            else:
                self._columns[key] = [column[i] for i in index.tolist()]

    def cat(self, other: MaskData) -> None:
        """Append the rows of ``other``."""
        for key, column in other._columns.items():
            mine = self._columns.get(key)
            if mine is None:
                self._columns[key] = column
            elif isinstance(column, torch.Tensor):
                self._columns[key] = torch.cat([mine, column])
            elif isinstance(column, np.ndarray):
                self._columns[key] = np.concatenate([mine, column])
            else:
                self._columns[key] = mine + column

    def to_numpy(self) -> None:
        for key, column in self._columns.items():
            if isinstance(column, torch.Tensor):
                self._columns[key] = column.cpu().numpy()


# --- prompts and crops ----------------------------------------------------------------------
def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) points (x, y) evenly spaced in [0, 1]^2, cell centres, row-major (x fastest)."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has ``int(n_per_side / scale_per_layer**i)`` points a side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """XYXY crop boxes and their layer index: the whole image, then (2**i)**2 overlapping crops
    in layer i (i = 1..n_layers). Crops overlap by ``overlap_ratio`` of the short side in layer
    1, less in later layers."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]
    for layer in range(1, n_layers + 1):
        n_per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / n_per_side))
        crop_w = math.ceil((overlap * (n_per_side - 1) + im_w) / n_per_side)
        crop_h = math.ceil((overlap * (n_per_side - 1) + im_h) / n_per_side)
        x0s = [int((crop_w - overlap) * i) for i in range(n_per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(n_per_side)]
        for x0, y0 in product(x0s, y0s):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(layer)
    return crop_boxes, layer_idxs


def batch_iterator(batch_size: int, *arrays: Sequence[Any]) -> Iterator[list[Any]]:
    """Yield aligned slices of at most ``batch_size`` rows of each array."""
    if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("batch_iterator needs one or more arrays of the same length")
    for start in range(0, len(arrays[0]), batch_size):
        yield [a[start : start + batch_size] for a in arrays]


# --- mask statistics -------------------------------------------------------------------------
def calculate_stability_score(masks: torch.Tensor, mask_threshold: float, threshold_offset: float) -> torch.Tensor:
    """IoU of the masks binarised at ``threshold +- offset`` (the tighter one lies inside the
    looser one, so the IoU is a ratio of pixel counts)."""
    inner = (masks > mask_threshold + threshold_offset).sum(dim=(-2, -1), dtype=torch.int32)
    outer = (masks > mask_threshold - threshold_offset).sum(dim=(-2, -1), dtype=torch.int32)
    return inner / outer


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY int64 boxes (inclusive pixel indices) of ...xHxW bool masks; [0, 0, 0, 0] if empty."""
    height, width = masks.shape[-2:]
    if height == 0 or width == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    top, bottom = _first_last(masks.any(dim=-1))
    left, right = _first_last(masks.any(dim=-2))
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    return boxes * masks.flatten(-2).any(dim=-1, keepdim=True)


def _first_last(flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the first and last True along the last axis."""
    index = torch.arange(flags.shape[-1], device=flags.device)
    first = torch.where(flags, index, flags.shape[-1]).amin(dim=-1)
    last = torch.where(flags, index, -1).amax(dim=-1)
    return first, last


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of XYXY boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_xyxy_to_xywh(boxes: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """XYXY -> XYWH for a box (4) or boxes (..., 4)."""
    xywh = boxes.clone() if isinstance(boxes, torch.Tensor) else np.array(boxes)
    xywh[..., 2:] = boxes[..., 2:] - boxes[..., :2]
    return xywh


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """Which boxes (in crop coordinates) lie within ``atol`` pixels of a crop edge that is not also
    an edge of the original image: such masks are probably cut off by the crop."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop_edge = (boxes - crop).abs() <= atol
    near_image_edge = (boxes - orig).abs() <= atol
    return (near_crop_edge & ~near_image_edge).any(dim=1)


# --- crop frame -> image frame --------------------------------------------------------------
def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    x0, y0 = crop_box[:2]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    x0, y0 = crop_box[:2]
    return points + torch.tensor([x0, y0], device=points.device)


def uncrop_masks(masks: torch.Tensor, crop_box: list[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Place ...xhxw crop masks into zero ...xorig_hxorig_w image masks."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    full = masks.new_zeros(*masks.shape[:-2], orig_h, orig_w)
    full[..., y0:y1, x0:x1] = masks
    return full


# --- post-processing ------------------------------------------------------------------------
def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``mode="islands"``) smaller than
    ``area_thresh`` pixels (8-connectivity). If every island is small, the largest is kept.

    Returns the mask and whether it changed.
    """
    import cv2

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    working = (mask ^ fill_holes).astype(np.uint8)
    n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]  # label 0 is the background of `working`
    small = [label + 1 for label, size in enumerate(sizes) if size < area_thresh]
    if not small:
        return mask, False
    if fill_holes:
        keep_labels = [0, *small]
    else:
        keep_labels = [label for label in range(1, n_labels) if label not in small]
        if not keep_labels:
            keep_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, keep_labels), True


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of every mask of ``a`` [N, H, W] with every mask of ``b`` [M, H, W] (bool); 0 for two empty masks."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    return inter / np.maximum(fa.sum(1)[:, None] + fb.sum(1)[None] - inter, 1)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression within each category ``idxs``, as torchvision.ops.batched_nms.

    Boxes are visited by descending score; a box is dropped if its IoU with a kept box of the same
    category is above ``iou_threshold``. Returns the kept indices (int64) by descending score.

    Ties follow torchvision on CPU: it orders scores with torch's default sort, which is not
    stable, so equal scores come out in that sort's order; we make the same call (exactly the same
    order for one category, as the mask generator uses). IoU is computed in the boxes' floating
    dtype and compared with the threshold in float64, as torchvision's kernel does.
    """
    device = boxes.device
    boxes, scores, idxs = boxes.cpu(), scores.cpu(), idxs.cpu()
    order = torch.sort(scores, descending=True).indices
    sorted_boxes = boxes[order].numpy()
    categories = idxs[order].numpy()
    x0, y0, x1, y1 = sorted_boxes.T
    areas = (x1 - x0) * (y1 - y0)
    alive = np.ones(len(order), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty boxes: IoU NaN, never suppresses
        for i in range(len(order)):
            if not alive[i]:
                continue
            rest = np.flatnonzero(alive[i + 1 :]) + i + 1
            w = np.maximum(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0)
            h = np.maximum(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0)
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            overlapping = (iou.astype(np.float64) > iou_threshold) & (categories[rest] == categories[i])
            alive[rest[overlapping]] = False
    keep = order[torch.from_numpy(alive)]
    if len(boxes) > _TORCHVISION_LOOP_MIN_BOXES:
        keep = keep.sort().values
        keep = keep[torch.sort(scores[keep], descending=True).indices]
    return keep.to(device)

