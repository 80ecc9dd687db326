"""Graph-cut refinement of a prompted mask: GrabCut inside a band around the predicted boundary.

A small decoder places a boundary to within a few pixels and can ignore a correction click next to an
almost right mask. As in deep interactive object selection (Xu et al., CVPR 2016), the network's mask
becomes the initial labelling of GrabCut (Rother et al., 2004; zeroseg's one wrapper is
:func:`zeroseg.models.grabcut.grabcut`): pixels deeper inside or outside the mask than a band are fixed,
the band is "probably" foreground or background, every click pins a small disc, and GrabCut's colour
models and graph cut place the boundary. The model decides the shape; the image's colours decide the
edge. The work region is the mask's box widened by twice the band, so the colour models are local and
the cost follows the object's size. A box prompt bounds the object itself: outside it is background, and
inside it everything but the mask's core is left to the cut, which can then also grow a mask the model
made too small.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from zeroseg.models.grabcut import grabcut, pin_clicks, upsample_mask

BAND = 0.1
"""Half-width of the free band as a fraction of the square root of the mask's area (10 pixels for
a 100x100 object): wide enough to move a coarse boundary, narrow enough to keep the model's shape."""
MIN_BAND = 3.0  # pixels
BOX_CORE = 0.5
"""With a box prompt only the mask's core, this fraction of the band deep, is fixed as foreground and
the rest of the box is left to the cut (outside the box is background): the cut can then also grow
an under-segmented mask up to the box. Chosen on held-out objects (box mIoU 0.789 -> 0.824; 0.2-0.5
are alike, an unfixed core lets GrabCut fill the box: 0.65)."""
ITERATIONS = 1  # one colour-model fit and cut: as good as 3 or 5 on held-out objects, and 2-3x faster
CLICK_RADIUS = 3  # pixels pinned around each click
MAX_SIDE = 192
"""The work region is downscaled to this longer side: the cut's cost stops growing with the object, and
on held-out objects 192 clicks as well as 256, 320 or 640 at a fraction of the cost (docs/models/lite.md)."""
_POOL: ThreadPoolExecutor | None = None  # cuts of one click's candidates run side by side (OpenCV frees the GIL)


class GraphCutRefiner:
    """Refines bool masks of one ``HxWx3`` uint8 image with GrabCut around their boundaries."""

    def __init__(
        self,
        image: np.ndarray,
        band: float = BAND,
        iterations: int = ITERATIONS,
        click_radius: int = CLICK_RADIUS,
        max_side: int = MAX_SIDE,
        seed: int = 0,
    ) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"GraphCutRefiner needs an HxWx3 uint8 image, got {image.dtype} {image.shape}")
        self.image = image
        self.band = band
        self.iterations = iterations
        self.click_radius = click_radius
        self.max_side = max_side
        self.seed = seed

    def __call__(
        self,
        mask: np.ndarray,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> np.ndarray:
        """A bool ``HxW`` mask and its prompts (``Nx2`` x/y pixels with labels 1 = object,
        0 = background, -1 = none; an XYXY box) -> the refined bool mask. An empty mask, or one the
        cut would empty (a shape thinner than the band on colours that do not set it apart), is
        returned as it is."""
        height, width = self.image.shape[:2]
        if mask.shape != (height, width):
            raise ValueError(f"a {mask.shape} mask does not match the {height}x{width} image")
        area = int(np.count_nonzero(mask))
        if area == 0:
            return mask.copy()
        bounds = None if box is None else np.asarray(box, dtype=np.float64).reshape(4)
        # with a box, "band" is the depth of the fixed core (BOX_CORE); else the free band on both sides
        band = max(MIN_BAND, self.band * (1.0 if bounds is None else BOX_CORE) * np.sqrt(area))
        clicks = _clicks(points, labels)

        # Work region: the mask's box, the object clicks and the prompt box, widened by twice the band.
        ys, xs = np.nonzero(mask)
        xs = np.concatenate([xs, [x for x, y, positive in clicks if positive]])
        ys = np.concatenate([ys, [y for x, y, positive in clicks if positive]])
        if bounds is not None:
            xs = np.concatenate([xs, np.clip(bounds[[0, 2]], 0, width - 1)])
            ys = np.concatenate([ys, np.clip(bounds[[1, 3]], 0, height - 1)])
        margin = int(np.ceil(2 * band)) + self.click_radius
        x0, x1 = max(0, int(xs.min()) - margin), min(width, int(xs.max()) + margin + 1)
        y0, y1 = max(0, int(ys.min()) - margin), min(height, int(ys.max()) + margin + 1)
        scale = min(1.0, self.max_side / max(x1 - x0, y1 - y0))

        region = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)  # OpenCV needs C order
        inside = cv2.distanceTransform(region, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        trimap = np.where(region > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        trimap[inside > band] = cv2.GC_FGD
        if bounds is None:
            outside = cv2.distanceTransform(1 - region, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            trimap[outside > band] = cv2.GC_BGD
        else:
            bx0, by0, bx1, by1 = bounds
            cols, rows = np.arange(x0, x1), np.arange(y0, y1)
            out_x = (cols < np.floor(bx0)) | (cols > np.ceil(bx1))
            out_y = (rows < np.floor(by0)) | (rows > np.ceil(by1))
            trimap[out_y[:, None] | out_x[None, :]] = cv2.GC_BGD
        pixels = self.image[y0:y1, x0:x1]
        if scale < 1.0:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
            trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
        pixels = np.ascontiguousarray(pixels)
        centres = [(round((x - x0) * scale), round((y - y0) * scale), positive) for x, y, positive in clicks]
        pin_clicks(trimap, centres, self.click_radius)

        foreground = grabcut(pixels, trimap, self.iterations, self.seed)
        if foreground is None:
            return mask.copy()  # GrabCut needs pixels of both kinds to fit its colour models
        if scale < 1.0:
            foreground = upsample_mask(foreground, (x1 - x0, y1 - y0))
        if not foreground.any():
            return mask.copy()  # the colours could not tell the object apart: keep the model's shape
        refined = np.zeros_like(mask, dtype=bool)
        refined[y0:y1, x0:x1] = foreground
        return refined


def refine_all(
    refiner: GraphCutRefiner,
    masks: np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> np.ndarray:
    """``refiner`` on each of ``masks`` (CxHxW, one prompt's candidates), the cuts on parallel threads."""
    global _POOL
    if len(masks) < 2:
        return np.stack([refiner(mask, points, labels, box) for mask in masks])
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(3, os.cpu_count() or 1), thread_name_prefix="graph-cut")
    return np.stack(list(_POOL.map(lambda mask: refiner(mask, points, labels, box), masks)))


def _clicks(points: np.ndarray | None, labels: np.ndarray | None) -> list[tuple[float, float, bool]]:
    """(x, y, is_object) of every labelled point (label -1 pads a ragged batch and is skipped)."""
    if points is None or labels is None:
        return []
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    kinds = np.asarray(labels).reshape(-1)
    return [(float(x), float(y), bool(k == 1)) for (x, y), k in zip(coords, kinds) if k in (0, 1)]
