"""Edge-aware mask refinement: snap upscaled mask logits to the edges of the image.

A decoder that predicts masks on a coarse grid (the lite model's 128x128 logits, 5 pixels per cell
on a 640-pixel photo) can only place a boundary to within a cell or so; bilinear upscaling then
draws it smooth, not along the object's edge. He et al.'s colour guided filter ("Guided Image
Filtering", ECCV 2010) fits the mask probability, in every window, as a linear function of the
pixel colours, so the refined boundary follows colour edges at full resolution. It costs a few box
filters per mask; the image's own window statistics are computed once per image.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

EPS = 1e-3
"""Regulariser of the colour fit (colours in 0..1): windows whose colour varies less than about
sqrt(EPS) keep the (smoothed) input probability instead of following the image."""
RADIUS_FRACTION = 1 / 80
"""Window radius as a fraction of the image's long side: 8 pixels at 640, about 1.5 cells of a
128x128 low-resolution mask, so the window always spans the coarse boundary's uncertainty."""
_CLIP = 1e-4  # probabilities are clipped to [CLIP, 1 - CLIP] before going back to logits


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    side = 2 * radius + 1
    return cv2.boxFilter(x, -1, (side, side), normalize=True, borderType=cv2.BORDER_REFLECT)


class EdgeRefiner:
    """Refines mask logits of one image (``HxWx3`` uint8 RGB) with the colour guided filter."""

    def __init__(self, image: np.ndarray, radius: int | None = None, eps: float = EPS) -> None:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"EdgeRefiner needs an HxWx3 image, got shape {image.shape}")
        height, width = image.shape[:2]
        self.radius = radius if radius is not None else max(1, round(max(height, width) * RADIUS_FRACTION))
        self.shape = (height, width)
        guide = image.astype(np.float32) / 255.0
        self.guide = [np.ascontiguousarray(guide[..., k]) for k in range(3)]
        self.mean = [_box(g, self.radius) for g in self.guide]
        # Window covariance of the colours (+ eps on the diagonal), inverted in closed form.
        cov = {
            (i, j): _box(self.guide[i] * self.guide[j], self.radius) - self.mean[i] * self.mean[j]
            for i in range(3)
            for j in range(i, 3)
        }
        for i in range(3):
            cov[i, i] = cov[i, i] + eps
        a, b, c = cov[0, 0], cov[0, 1], cov[0, 2]
        d, e, f = cov[1, 1], cov[1, 2], cov[2, 2]
        inv = {
            (0, 0): d * f - e * e,
            (0, 1): c * e - b * f,
            (0, 2): b * e - c * d,
            (1, 1): a * f - c * c,
            (1, 2): b * c - a * e,
            (2, 2): a * d - b * b,
        }
        det = a * inv[0, 0] + b * inv[0, 1] + c * inv[0, 2]
        self.inverse = {k: v / det for k, v in inv.items()}

    def refine_probability(self, prob: np.ndarray) -> np.ndarray:
        """One ``HxW`` float32 probability map -> the refined map (not clipped to 0..1)."""
        r = self.radius
        mean_p = _box(prob, r)
        cov_p = [_box(g * prob, r) - m * mean_p for g, m in zip(self.guide, self.mean)]
        inv = self.inverse
        slope = [sum(inv[min(i, j), max(i, j)] * cov_p[j] for j in range(3)) for i in range(3)]
        offset = mean_p - sum(s * m for s, m in zip(slope, self.mean))
        return sum(_box(s, r) * g for s, g in zip(slope, self.guide)) + _box(offset, r)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(..., H, W)`` at the image's size -> refined logits, same shape and dtype."""
        if tuple(logits.shape[-2:]) != self.shape:
            raise ValueError(f"masks of size {tuple(logits.shape[-2:])} do not match the image {self.shape}")
        flat = torch.sigmoid(logits.detach().float()).reshape(-1, *self.shape).cpu().numpy()
        out = np.empty_like(flat)
        for k, prob in enumerate(flat):  # mask by mask into one array: whole-stack temporaries cost seconds
            out[k] = self.refine_probability(np.ascontiguousarray(prob))
        refined = torch.from_numpy(out).logit_(eps=_CLIP)  # clipped to [CLIP, 1 - CLIP], back to logits
        return refined.reshape(logits.shape).to(device=logits.device, dtype=logits.dtype)
