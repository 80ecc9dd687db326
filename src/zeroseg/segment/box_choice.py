"""How a box alone is answered: a large box's mask chosen among all the decoder's outputs by how well it fits
the box, and a small box helped by a click at its centre.

SAM answers a box with its single-mask output. A small model trained on tight boxes sometimes answers a
large, loosely drawn box (the way people draw them) with the box's surroundings, a sliver or nothing, while
one of its three multi-mask outputs holds the object. So the single output and the three compete: each by its
predicted IoU, less what no object of the box looks like: a mask running along the box's inner border
(the background inside the box), a mask outside the box, and a mask that fills almost none of it. The
weights were chosen on validation objects (docs/models/lite.md, "A box's mask chosen by its fit").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_BOX_SHARE = 0.25
"""Only a box covering at least this share of the image is chosen for: on smaller boxes (small objects,
boxes answered in a Zoom-In crop) the single-mask output does better on validation."""
SMALL_BOX_SHARE = 0.01
"""A box covering less than this share of the image also gets a positive click at its centre: a few cells of the
embedding say little about which thing in the box is meant, and the click says it (better on validation)."""

RING_DEPTH = 0.05
"""Depth of the box's inner border, as a share of the box's shorter side."""
RING_WEIGHT = 0.5
"""Penalty per unit share of the inner border that the mask covers."""
OUTSIDE_WEIGHT = 1.0
"""Penalty per unit share of the mask's area that lies outside the box."""
TINY_SHARE = 0.05
"""A mask covering less of the box than this is not the box's object ..."""
TINY_PENALTY = 1.0
"""... and loses this much."""
SINGLE_BONUS = 0.1
"""The single-mask output, trained for boxes, wins ties."""


def _share(box: Sequence[float], shape: tuple[int, ...]) -> float:
    """The share of an image of ``shape`` (H, W, ...) that an XYXY ``box`` covers."""
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) / (shape[0] * shape[1])


def chooses(box: Sequence[float], shape: tuple[int, ...]) -> bool:
    """Whether an XYXY ``box`` in an image of ``shape`` is large enough to choose its mask."""
    return _share(box, shape) >= MIN_BOX_SHARE


def centre_click(box: Sequence[float], shape: tuple[int, ...]) -> np.ndarray | None:
    """The (x, y) centre of a small XYXY ``box`` in an image of ``shape`` as a 1 x 2 point, None for a larger box."""
    if _share(box, shape) >= SMALL_BOX_SHARE:
        return None
    x0, y0, x1, y1 = box
    return np.array([[(x0 + x1) / 2, (y0 + y1) / 2]], dtype=np.float64)


def with_centre_click(
    point_coords: np.ndarray | None, point_labels: np.ndarray | None, box: Sequence[float] | None,
    shape: tuple[int, ...],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The points of a prompt, with :func:`centre_click` added when it is a small box alone in an image of
    ``shape``: callers that answer a box in a crop decide on the whole photo, as the rule was chosen."""
    if box is None or (point_coords is not None and len(point_coords) > 0):
        return point_coords, point_labels
    centre = centre_click(np.asarray(box, np.float64).reshape(-1), shape)
    return (point_coords, point_labels) if centre is None else (centre, np.array([1]))


def box_fit_scores(masks: np.ndarray, scores: np.ndarray, box: Sequence[float], single: int = 0) -> np.ndarray:
    """Predicted IoUs ``scores`` (N) of bool ``masks`` (N x H x W) for one XYXY ``box``, less the penalties
    above; mask ``single`` (the single-mask output) gets the bonus. The highest is the box's mask."""
    masks = np.asarray(masks, dtype=bool)
    height, width = masks.shape[-2:]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = sorted((min(max(x0, 0), width - 1), min(max(x1, 0), width - 1)))
    y0, y1 = sorted((min(max(y0, 0), height - 1), min(max(y1, 0), height - 1)))
    depth = max(1, int(RING_DEPTH * min(x1 - x0 + 1, y1 - y0 + 1)))
    inside = np.zeros((height, width), dtype=bool)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    ring = inside.copy()
    ring[y0 + depth:y1 + 1 - depth, x0 + depth:x1 + 1 - depth] = False

    flat = masks.reshape(len(masks), -1)
    area = flat.sum(axis=1)
    in_box = (flat & inside.ravel()).sum(axis=1)
    ring_share = (flat & ring.ravel()).sum(axis=1) / max(int(ring.sum()), 1)
    outside_share = (area - in_box) / np.maximum(area, 1)
    tiny = in_box < TINY_SHARE * inside.sum()
    fit = np.asarray(scores, dtype=np.float64) - RING_WEIGHT * ring_share - OUTSIDE_WEIGHT * outside_share
    fit -= TINY_PENALTY * tiny
    fit[single] += SINGLE_BONUS
    return fit
