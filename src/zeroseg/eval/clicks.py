"""Simulated user clicks for interactive segmentation.

:func:`next_click` is the deterministic click robot of the RITM / f-BRS NoC protocol, used for
evaluation; :func:`sample_training_clicks` draws randomised clicks of the same kind for training.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np


class Click(NamedTuple):
    """One click in pixel coordinates of the image; ``positive`` marks the object."""

    x: int
    y: int
    positive: bool


def distance_to_boundary(region: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each region pixel to the nearest pixel outside the region.

    The region is padded with one background pixel first, so the image border counts as a boundary
    (a region touching the border is not treated as extending beyond it).
    """
    padded = np.pad(region.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance[1:-1, 1:-1]


def error_regions(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """False-negative and false-positive masks of ``pred`` against ``gt``, both outside ``ignore``."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = np.ones_like(gt) if ignore is None else ~np.asarray(ignore, dtype=bool)
    return gt & ~pred & valid, pred & ~gt & valid


def next_click(
    pred: np.ndarray,
    gt: np.ndarray,
    ignore: np.ndarray | None = None,
    clicked: Sequence[Click] = (),
) -> Click | None:
    """The next click of the NoC protocol: the error pixel farthest from its region's boundary.

    False negatives call for a positive click, false positives for a negative one; the error type
    whose deepest pixel is deeper wins (ties go to the positive click). Pixels already in
    ``clicked`` are not clicked again. Returns ``None`` when no error is left to click.
    """
    false_neg, false_pos = error_regions(pred, gt, ignore)
    fn_depth, fp_depth = distance_to_boundary(false_neg), distance_to_boundary(false_pos)
    for click in clicked:
        fn_depth[click.y, click.x] = fp_depth[click.y, click.x] = 0.0
    positive = fn_depth.max() >= fp_depth.max()
    depth = fn_depth if positive else fp_depth
    if depth.max() <= 0:
        return None
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return Click(int(x), int(y), bool(positive))


def _interior_sample(region: np.ndarray, rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` distinct (x, y) pixels of ``region``, drawn with probability proportional to
    their distance from the region's boundary (so clicks favour the interior, as people do)."""
    weights = distance_to_boundary(region).ravel().astype(np.float64)
    candidates = np.flatnonzero(weights)
    if candidates.size == 0:
        return []
    picks = rng.choice(
        candidates, size=min(n, candidates.size), replace=False,
        p=weights[candidates] / weights[candidates].sum(),
    )
    ys, xs = np.unravel_index(picks, region.shape)
    return [(int(x), int(y)) for x, y in zip(xs, ys)]


def _largest_component(region: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool mask (empty if the mask is empty)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(region, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def sample_training_clicks(
    gt: np.ndarray,
    pred: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    n: int = 1,
    ignore: np.ndarray | None = None,
) -> list[Click]:
    """Random clicks for training a click-prompted model.

    Without ``pred`` (the first interaction) the clicks are positive, inside the object and biased
    to its interior. With ``pred`` (a correction round) they fall in the largest connected error
    region — positive in a missed part, negative in a spurious one — again biased to its interior.
    Returns at most ``n`` distinct clicks, fewer if the region is smaller, none if there is no error.
    """
    rng = np.random.default_rng() if rng is None else rng
    gt = np.asarray(gt, dtype=bool)
    if pred is None:
        region, positive = (gt if ignore is None else gt & ~np.asarray(ignore, dtype=bool)), True
    else:
        false_neg, false_pos = error_regions(pred, gt, ignore)
        fn_part, fp_part = _largest_component(false_neg), _largest_component(false_pos)
        positive = fn_part.sum() >= fp_part.sum()
        region = fn_part if positive else fp_part
    return [Click(x, y, positive) for x, y in _interior_sample(region, rng, n)]
