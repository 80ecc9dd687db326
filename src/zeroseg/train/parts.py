"""Machine-made part targets: colour-coherent pieces of a labelled object.

None of the labelled training sets draws the parts of an animal or a thing (a cat's eye, a dog's nose, a
wheel), so a model trained on them answers a click on an eye with the whole head and segment-everything
finds no parts. Like SAM's data engine and UnSAM (Wang et al., 2024), training can add unsupervised
targets: the image is over-segmented once (Felzenszwalb and Huttenlocher's graph segmentation), each
segment is cut by the object's mask, and the pieces that are a modest share of the object and differ clearly
in colour from the object around them become extra targets. The labelled objects stay the main signal; a click in a
part is ambiguous, which the decoder's three masks are for.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.color import rgb2lab
from skimage.segmentation import felzenszwalb

SCALE = 200.0
"""Felzenszwalb's scale at the training resolution: larger gives fewer, bigger segments."""
MIN_SHARE, MAX_SHARE = 0.02, 0.35
"""A part covers this share of its object: smaller pieces are texture, larger ones halves of it."""
MIN_PIXELS = 256
"""Smallest part, in pixels at the training resolution (a few cells of the decoder's low-resolution grid)."""
MIN_CONTRAST = 10.0
"""A part's mean colour differs from the object around it by at least this CIELAB distance (clearly visible)."""
RING = np.ones((7, 7), np.uint8)
"""A part's surroundings: the object's pixels within 3 pixels of it."""
MAX_PARTS = 3
"""Parts kept per object, the most distinct in colour first."""


class ImageParts:
    """One image's over-segmentation, cut into parts of each of its objects (same size as the image)."""

    def __init__(self, image: np.ndarray, scale: float = SCALE) -> None:
        self.segments = felzenszwalb(image, scale=scale, sigma=0.8, min_size=MIN_PIXELS // 4)
        self.lab = rgb2lab(image)

    def of(self, mask: np.ndarray, max_parts: int = MAX_PARTS) -> list[np.ndarray]:
        """Bool masks of ``mask``'s parts, at most ``max_parts``, the most distinct from their surroundings first."""
        area = int(mask.sum())
        if area * MAX_SHARE < MIN_PIXELS:
            return []
        ys, xs = np.nonzero(mask)
        window = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        inside, segments, lab = mask[window], self.segments[window], self.lab[window]
        counts = np.bincount(segments[inside])
        share = counts / area
        candidates = np.flatnonzero((share >= MIN_SHARE) & (share <= MAX_SHARE) & (counts >= MIN_PIXELS))
        scored = []
        for label in candidates:
            part = _largest_component((segments == label) & inside)
            ring = cv2.dilate(part.astype(np.uint8), RING).astype(bool) & ~part & inside
            if part.sum() < MIN_PIXELS or not ring.any():
                continue
            contrast = float(np.linalg.norm(lab[part].mean(0) - lab[ring].mean(0)))
            if contrast >= MIN_CONTRAST:
                scored.append((contrast, part))
        parts = []
        for _, part in sorted(scored, key=lambda t: -t[0])[:max_parts]:
            full = np.zeros_like(mask)
            full[window] = part
            parts.append(full)
        return parts


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))
