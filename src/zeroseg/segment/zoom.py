"""Zoom-In for click sessions: the model sees a crop around the object instead of the whole photo.

A small object covers a few cells of the image embedding, so its mask comes out blocky and corrections
barely move it. As RITM's Zoom-In (Sofiiuk et al. 2022), once a first prediction says where the object
is (or a box says so), the photo is cropped around it (its box widened by ``expansion``) and the
crop is embedded at the model's full input size; later clicks are answered in that crop and the
mask is pasted back. The crop stays while the object's box stays inside it, so its embedding is
computed once per object (the Predictor caches it like any image).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from zeroseg.segment.predictor import Predictor

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)

DEFAULT_EXPANSION = 2.0
"""How much wider and taller than the object (with its clicks) the crop is (RITM uses 1.4; chosen on
validation objects, docs/models/lite.md)."""
DEFAULT_MIN_SIDE = 0.3
"""The crop's sides are at least this share of the photo's longer side (too small a crop loses context)."""
DEFAULT_MAX_SHARE = 0.7
"""A crop covering more than this share of the photo's area is not worth a second embedding: no zoom."""


def zoom_box(
    shape: Sequence[int],
    mask: np.ndarray | None,
    points: np.ndarray | None,
    box: Sequence[float] | None = None,
    expansion: float = DEFAULT_EXPANSION,
    min_side: float = DEFAULT_MIN_SIDE,
) -> Box | None:
    """The crop (x0, y0, x1, y1) around ``mask``'s pixels, ``points`` (N x 2, x y) and ``box``, widened
    by ``expansion`` about its centre, at least ``min_side`` x the photo's longer side, inside the photo;
    None when there is nothing to frame."""
    height, width = int(shape[0]), int(shape[1])
    xs: list[float] = []
    ys: list[float] = []
    if mask is not None and mask.any():
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        xs += [cols[0], cols[-1] + 1]
        ys += [rows[0], rows[-1] + 1]
    if points is not None and len(points):
        xs += [float(np.min(points[:, 0])), float(np.max(points[:, 0])) + 1]
        ys += [float(np.min(points[:, 1])), float(np.max(points[:, 1])) + 1]
    if box is not None:
        xs += [float(box[0]), float(box[2])]
        ys += [float(box[1]), float(box[3])]
    if not xs:
        return None
    smallest = min_side * max(height, width)
    sides = []
    for low, high, limit in ((min(xs), max(xs), width), (min(ys), max(ys), height)):
        centre, side = (low + high) / 2, min(max((high - low) * expansion, smallest), limit)
        start = int(round(min(max(centre - side / 2, 0), limit - side)))
        sides.append((start, min(start + int(round(side)), limit)))
    (x0, x1), (y0, y1) = sides
    return x0, y0, x1, y1


def _inside(inner: Box, outer: Box) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@dataclass
class ZoomIn:
    """One object's click session on a :class:`Predictor` with Zoom-In.

    Call :meth:`set_image` per photo and :meth:`start_object` per object, then :meth:`predict` with all
    the clicks so far. The first ``skip_clicks`` clicks are answered on the whole photo (without a box);
    from then on in a crop around the object, chosen anew only when the object's box leaves it.
    """

    predictor: Predictor
    expansion: float = DEFAULT_EXPANSION
    min_side: float = DEFAULT_MIN_SIDE
    max_share: float = DEFAULT_MAX_SHARE
    skip_clicks: int = 1

    def __post_init__(self) -> None:
        self._image: np.ndarray | None = None
        self.start_object()

    def set_image(self, image: np.ndarray) -> None:
        """The photo of the next objects (embedded whole at once, as the first clicks need it)."""
        self.predictor.set_image(image)
        self._image = np.asarray(image)
        self.start_object()

    def start_object(self) -> None:
        """Forget the previous object's crop and mask."""
        self.crop: Box | None = None
        self.mask: np.ndarray | None = None

    def predict(
        self,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: Sequence[float] | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`Predictor.predict` (masks at the photo's size), in the object's crop once zoomed.

        ``mask_input`` (low-resolution logits returned by the previous call) is used as it is while the
        crop stays the same; in a new crop the previous mask takes its place (``Predictor.mask_to_input``).
        """
        if self._image is None:
            raise RuntimeError("call set_image first")
        height, width = self._image.shape[:2]
        clicks = 0 if point_coords is None else len(point_coords)
        crop = self.crop
        if box is not None or clicks > self.skip_clicks:
            wanted = zoom_box(self._image.shape, self.mask, point_coords, box, self.expansion, self.min_side)
            if wanted is not None and (wanted[2] - wanted[0]) * (wanted[3] - wanted[1]) > self.max_share * height * width:
                wanted = None
            # keep the crop while the object (and clicks) fit inside it: one embedding per object
            tight = zoom_box(self._image.shape, self.mask, point_coords, box, 1.0, 0.0)
            if wanted is None:
                crop = None
            elif crop is None or tight is None or not _inside(tight, crop):
                crop = wanted
        same_frame = crop == self.crop
        self.crop = crop
        x0, y0, x1, y1 = crop if crop is not None else (0, 0, width, height)
        self.predictor.set_image(np.ascontiguousarray(self._image[y0:y1, x0:x1]))
        if mask_input is not None and not same_frame and self.mask is not None:
            mask_input = self.predictor.mask_to_input(self.mask[y0:y1, x0:x1])  # the previous mask, in the new crop
        offset = np.array([x0, y0], dtype=np.float32)
        masks, scores, low_res = self.predictor.predict(
            point_coords=None if point_coords is None else np.asarray(point_coords, np.float32) - offset,
            point_labels=point_labels,
            box=None if box is None else np.asarray(box, np.float32) - np.tile(offset, 2),
            mask_input=mask_input,
            multimask_output=multimask_output,
        )
        full = np.zeros((len(masks), height, width), dtype=masks.dtype)
        full[:, y0:y1, x0:x1] = masks
        self.mask = full[int(np.argmax(scores))].astype(bool)
        return full, scores, low_res
