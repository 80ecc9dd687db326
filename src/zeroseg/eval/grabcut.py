"""GrabCut as a classical interactive-segmentation baseline: clicks or a box -> mask (the
:class:`~zeroseg.eval.interactive.InteractiveModel` protocol), on :mod:`zeroseg.models.grabcut`."""
from __future__ import annotations

import cv2
import numpy as np

from zeroseg.errors import ImageError, NoImageSetError, PromptValueError
from zeroseg.eval.clicks import Click
from zeroseg.eval.interactive import Box
from zeroseg.models.grabcut import foreground, grabcut, pin_clicks, upsample_mask


class GrabCutModel:
    """Clicks or a box -> GrabCut labels -> mask.

    Labels start from a prior — the previous mask, else the box, else a disc around the first
    positive click — marked "probably foreground" on "probably background"; outside a box is
    background for sure (so a box alone is GrabCut's own rectangle initialisation), and each click
    pins a small disc as sure foreground / background.
    Images are downscaled so their longer side is at most ``max_side`` (GrabCut is slow on big
    images); masks are returned at full size. OpenCV's RNG is reseeded per call, so results are
    deterministic. The low-res output is the mask at working size, fed back as the next prior.
    """

    supports_box = True

    def __init__(
        self,
        iterations: int = 5,
        click_radius: float = 5.0,
        seed_radius: float = 0.1,
        max_side: int = 640,
        rng_seed: int = 0,
    ) -> None:
        """``click_radius`` is in image pixels; ``seed_radius`` is the prior disc's radius as a
        fraction of the image's shorter side."""
        self.iterations = iterations
        self.click_radius = click_radius
        self.seed_radius = seed_radius
        self.max_side = max_side
        self.rng_seed = rng_seed
        self._image: np.ndarray | None = None
        self._full_size = (0, 0)
        self._scale = 1.0

    def set_image(self, image: np.ndarray) -> None:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        self._full_size = (h, w)
        self._scale = min(1.0, self.max_side / max(h, w))
        work_size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
        # OpenCV's GrabCut expects BGR, but the colour models are symmetric in channel order.
        self._image = np.ascontiguousarray(cv2.resize(image, work_size, interpolation=cv2.INTER_AREA))

    def predict(
        self, clicks: list[Click], prev_low_res: np.ndarray | None = None, box: Box | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._image is None:
            raise NoImageSetError("call set_image before predict")
        labels = self._labels(clicks, prev_low_res, box)
        cut = grabcut(self._image, labels, self.iterations, self.rng_seed)
        low_res = (foreground(labels) if cut is None else cut).astype(np.float32)
        h, w = self._full_size
        return upsample_mask(low_res, (w, h)), low_res

    def _labels(self, clicks: list[Click], prev_low_res: np.ndarray | None, box: Box | None) -> np.ndarray:
        """GrabCut's initial label map at working size."""
        assert self._image is not None
        h, w = self._image.shape[:2]
        labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        in_box = None if box is None else self._box_region(box)
        positives = [c for c in clicks if c.positive]
        if prev_low_res is not None:
            prior = cv2.resize(np.asarray(prev_low_res, np.float32).reshape(prev_low_res.shape[-2:]), (w, h))
            labels[prior > 0.5] = cv2.GC_PR_FGD
        elif in_box is not None:
            labels[in_box] = cv2.GC_PR_FGD
        elif positives:
            centre = self._to_work(positives[0])
            cv2.circle(labels, centre, max(1, round(self.seed_radius * min(h, w))), cv2.GC_PR_FGD, -1)
        if in_box is not None:
            labels[~in_box] = cv2.GC_BGD
        radius = max(1, round(self.click_radius * self._scale))
        return pin_clicks(labels, [(*self._to_work(click), click.positive) for click in clicks], radius)

    def _to_work(self, click: Click) -> tuple[int, int]:
        """A click's pixel at working size."""
        h, w = self._full_size
        if not (0 <= click.x < w and 0 <= click.y < h):
            raise PromptValueError(f"click ({click.x}, {click.y}) is outside the {w}x{h} image")
        return round(click.x * self._scale), round(click.y * self._scale)

    def _box_region(self, box: Box) -> np.ndarray:
        """Bool mask of the pixels inside an XYXY box (inclusive bounds), at working size."""
        assert self._image is not None
        h, w = self._image.shape[:2]
        x0, y0, x1, y1 = (round(v * self._scale) for v in box)
        if x0 > x1 or y0 > y1:
            raise PromptValueError(f"box {box} is inverted")
        region = np.zeros((h, w), dtype=bool)
        region[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
        return region
