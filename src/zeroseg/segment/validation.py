"""Checks for user prompts, so a malformed prompt fails early with a message that says what to fix.

Points are (x, y) pixels and boxes XYXY pixels of the original image; both must lie inside the
image, bounds inclusive (0 <= x <= width, 0 <= y <= height), and a box must have an area
(x0 < x1 and y0 < y1: an inverted or zero-width/height box is refused). Point labels are 1 (foreground) or 0
(background); batched calls also accept -1, which marks a padding point in a ragged batch (the
prompt encoder embeds it as "not a point", like the padding point SAM adds itself).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zeroseg.errors import PromptShapeError, PromptValueError

PADDING_LABEL = -1


def check_points(
    coords: Any, labels: Any, image_size: tuple[int, int], batched: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate points (Nx2, or BxNx2 when batched) and their labels (N or BxN).

    Returns float64 coordinates and int64 labels.
    """
    if labels is None:
        raise PromptShapeError("point_labels must be given with point_coords (1 = foreground, 0 = background)")
    layout = "BxNx2" if batched else "Nx2"
    coords = _as_float_array(coords, "point_coords")
    if coords.ndim != (3 if batched else 2) or coords.shape[-1] != 2 or coords.shape[-2] == 0:
        raise PromptShapeError(
            f"point_coords must have shape {layout} with N >= 1 (x, y pixels), got shape {coords.shape}"
        )
    labels = _as_float_array(labels, "point_labels")
    if labels.shape != coords.shape[:-1]:
        raise PromptShapeError(
            f"point_labels must have shape {layout[:-2]} matching point_coords {coords.shape}, "
            f"got shape {labels.shape}"
        )
    _check_finite(coords, "point_coords")
    allowed = (PADDING_LABEL, 0, 1) if batched else (0, 1)
    bad = ~np.isin(labels, allowed)
    if bad.any():
        raise PromptValueError(
            f"point_labels must be in {set(allowed)} (1 = foreground, 0 = background"
            f"{', -1 = padding' if batched else ''}), got {labels[bad][0]!r}"
        )
    labels = labels.astype(np.int64)
    _check_inside(coords[labels != PADDING_LABEL], image_size, "point")
    return coords, labels


def check_boxes(boxes: Any, image_size: tuple[int, int], batched: bool = False) -> np.ndarray:
    """Validate XYXY boxes: one box (4 or 1x4), or Bx4 when batched, each with x0 < x1 and y0 < y1.
    Returns (N, 4) float64."""
    boxes = _as_float_array(boxes, "box")
    if batched:
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
            raise PromptShapeError(f"boxes must have shape Bx4 (XYXY pixels) with B >= 1, got shape {boxes.shape}")
    elif boxes.shape not in ((4,), (1, 4)):
        raise PromptShapeError(f"box must have 4 values (XYXY pixels), got shape {boxes.shape}")
    boxes = boxes.reshape(-1, 4)
    _check_finite(boxes, "box")
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = (width <= 0) | (height <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if width[i] < 0 or height[i] < 0:
            problem = "is inverted"
        else:
            problem = f"has no area (zero {'width' if width[i] == 0 else 'height'})"
        raise PromptValueError(
            f"box {boxes[i].tolist()} {problem}: boxes are XYXY (x0, y0, x1, y1) pixels "
            "with x0 < x1 and y0 < y1"
        )
    _check_inside(boxes.reshape(-1, 2), image_size, "box corner")
    return boxes


def check_mask_input(mask_input: Any, mask_size: tuple[int, int], batched: bool = False) -> np.ndarray:
    """Validate low-resolution mask logits: 1xHxW, or Bx1xHxW when batched. Returns float32."""
    mask_input = _as_float_array(mask_input, "mask_input")
    h, w = mask_size
    expected = f"Bx1x{h}x{w}" if batched else f"1x{h}x{w}"
    spatial_ok = mask_input.shape[-3:] == (1, h, w)
    if mask_input.ndim != (4 if batched else 3) or not spatial_ok or mask_input.shape[0] == 0:
        raise PromptShapeError(
            f"mask_input must have shape {expected} (low-resolution logits such as a previous "
            f"low_res_masks entry), got shape {mask_input.shape}"
        )
    _check_finite(mask_input, "mask_input")
    return mask_input.astype(np.float32)


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptShapeError(f"{name} must be a numeric array: {exc}") from None


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.isfinite(array).all():
        raise PromptValueError(f"{name} contains NaN or infinite values")


def _check_inside(points: np.ndarray, image_size: tuple[int, int], what: str) -> None:
    """Reject (x, y) points outside [0, width] x [0, height]."""
    height, width = image_size
    outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
    if outside.any():
        x, y = points[outside][0]
        raise PromptValueError(
            f"{what} ({x:g}, {y:g}) is outside the image of width {width} and height {height}; "
            f"coordinates are (x, y) pixels with 0 <= x <= {width} and 0 <= y <= {height}"
        )
