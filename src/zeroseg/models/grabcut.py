"""GrabCut (Rother, Kolmogorov & Blake 2004): zeroseg's one wrapper of OpenCV's ``cv2.grabCut``.

:func:`grabcut` runs the cut from an initial label map, :func:`pin_clicks` marks clicks on such a map
and :func:`upsample_mask` brings a working-size result back to full size; the graph-cut refinement
(:mod:`zeroseg.segment.graph_cut`) and the classical interactive baseline
(:class:`zeroseg.eval.grabcut.GrabCutModel`) are built on them.
"""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def foreground(labels: np.ndarray) -> np.ndarray:
    """Bool map of the sure and probable foreground of a GrabCut label map."""
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def grabcut(image: np.ndarray, labels: np.ndarray, iterations: int, seed: int = 0) -> np.ndarray | None:
    """GrabCut an ``HxWx3`` uint8 image from the label map ``labels`` (``cv2.GC_*``, updated in place):
    the bool foreground, or None when the map holds only one kind (no colour models to fit). OpenCV's
    RNG is reseeded with ``seed``, so results are deterministic. Channel order does not matter."""
    fg = foreground(labels)
    if not fg.any() or fg.all():
        return None
    cv2.setRNGSeed(seed)
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(image, labels, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    return foreground(labels)


def pin_clicks(labels: np.ndarray, clicks: Iterable[tuple[int, int, bool]], radius: int) -> np.ndarray:
    """Mark a disc of ``radius`` around each ``(x, y, is_object)`` click as sure foreground or background."""
    for x, y, positive in clicks:
        cv2.circle(labels, (x, y), radius, cv2.GC_FGD if positive else cv2.GC_BGD, -1)
    return labels


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask resized to ``size`` (width, height): bilinear, then thresholded at one half."""
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5
