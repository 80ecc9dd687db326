"""Zoom-In for click sessions: the model sees a crop around the object instead of the whole photo.

A small object covers a few cells of the image embedding, so its mask comes out blocky and corrections
barely move it. As RITM's Zoom-In (Sofiiuk et al. 2022), once a first prediction says where the object
is (or a box says so), the photo is cropped around it (its box widened by ``expansion``) and the
crop is embedded at the model's full input size; later clicks are answered in that crop and the
mask is pasted back. The crop stays while the object's box stays inside it, so its embedding is
computed once per object (the Predictor caches it like any image). With ``first_look`` (opt-in), an
object's first click is also answered in a crop around it, kept for a small object (:func:`first_look`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from zeroseg.segment import box_choice

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
FIRST_LOOK_MAX_FILL = 0.25
"""A first look's close-up answer stands only for a mask covering at most this share of its crop: larger
ones are parts of something the crop cuts (chosen on validation objects, docs/models/lite.md)."""
FIRST_LOOK_SPILL = 3.0
"""... and only when the whole photo's answer is at least this many times larger (it spilled over the small
object); a close-up mask near the whole answer's size is more often a part of it (docs/models/lite.md)."""


def _extent(mask: np.ndarray | None, points: np.ndarray | None, box: Sequence[float] | None) -> Box | None:
    """The tight box around ``mask``'s pixels, ``points`` and ``box`` (None: nothing given)."""
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
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def _widen(extent: Box, shape: Sequence[int], expansion: float, min_side: float) -> Box:
    height, width = int(shape[0]), int(shape[1])
    smallest = min_side * max(height, width)
    sides = []
    for low, high, limit in ((extent[0], extent[2], width), (extent[1], extent[3], height)):
        centre, side = (low + high) / 2, min(max((high - low) * expansion, smallest), limit)
        start = int(round(min(max(centre - side / 2, 0), limit - side)))
        sides.append((start, min(start + int(round(side)), limit)))
    (x0, x1), (y0, y1) = sides
    return x0, y0, x1, y1


def _inside(inner: Box, outer: Box) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@dataclass(frozen=True)
class ZoomSettings:
    """When and how far to zoom (defaults chosen on validation objects, docs/models/lite.md)."""

    expansion: float = DEFAULT_EXPANSION
    min_side: float = DEFAULT_MIN_SIDE
    max_share: float = DEFAULT_MAX_SHARE
    skip_clicks: int = 1  # clicks answered on the whole photo (without a box) before zooming
    first_look: bool = False  # an object's first click also answered close up (:func:`first_look`; opt-in)


def choose_crop(
    shape: Sequence[int],
    mask: np.ndarray | None,
    points: np.ndarray | None,
    box: Sequence[float] | None,
    current: Box | None,
    settings: ZoomSettings = ZoomSettings(),
) -> Box | None:
    """The crop for the next prediction of an object (None: the whole photo).

    The first ``skip_clicks`` clicks without a box stay on the whole photo; then the crop frames the
    object's current ``mask``, the clicks and the box, and ``current`` is kept while they fit inside it
    (one embedding per object). A crop covering over ``max_share`` of the photo is not worth it.
    """
    clicks = 0 if points is None else len(points)
    if box is None and clicks <= settings.skip_clicks and current is None:
        return None
    tight = _extent(mask, points, box)
    if tight is None:
        return None
    wanted = _widen(tight, shape, settings.expansion, settings.min_side)
    if (wanted[2] - wanted[0]) * (wanted[3] - wanted[1]) > settings.max_share * shape[0] * shape[1]:
        return None
    if current is not None and _inside(tight, current):
        return current
    return wanted


def predict_in_crop(
    predictor: Predictor,
    image: np.ndarray | None,
    crop: Box | None,
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
    box: Sequence[float] | None,
    mask_input: np.ndarray | None,
    prior: np.ndarray | None,
    multimask_output: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`Predictor.predict` on ``image``'s ``crop``, prompts and masks in the photo's pixels: masks
    NxHxW at the photo's size, scores, low-res logits of the crop. The predictor is left holding the crop;
    ``crop`` None is the whole photo, which the predictor must hold already (``image`` is then not needed).

    ``mask_input`` are logits of an earlier prediction in this same frame; else ``prior``, a bool mask at
    the photo's size (e.g. an earlier prediction in another frame), guides the decoder.
    """
    if crop is None:
        if mask_input is None and prior is not None:
            mask_input = predictor.mask_to_input(prior)
        box = None if box is None else np.asarray(box, np.float64)
        return predictor.predict(point_coords, point_labels, box, mask_input, multimask_output)
    if image is None:
        raise ValueError("a crop needs the photo")
    if getattr(predictor, "box_choice", False) and mask_input is None and prior is None:
        # a small box is clicked at its centre as on the whole photo, where the rule was chosen (in the crop
        # the box covers more; on the whole photo the Predictor applies the rule itself)
        point_coords, point_labels = box_choice.with_centre_click(point_coords, point_labels, box, image.shape)
    x0, y0, x1, y1 = crop
    predictor.set_image(np.ascontiguousarray(image[y0:y1, x0:x1]))
    if mask_input is None and prior is not None:
        mask_input = predictor.mask_to_input(prior[y0:y1, x0:x1])
    offset = np.array([x0, y0], dtype=np.float32)
    masks, scores, low_res = predictor.predict(
        point_coords=None if point_coords is None else np.asarray(point_coords, np.float32) - offset,
        point_labels=point_labels,
        box=None if box is None else np.asarray(box, np.float32) - np.tile(offset, 2),
        mask_input=mask_input,
        multimask_output=multimask_output,
    )
    full = np.zeros((len(masks), *image.shape[:2]), dtype=masks.dtype)
    full[:, y0:y1, x0:x1] = masks
    return full, scores, low_res


def is_first_click(point_labels: np.ndarray | None, box: Sequence[float] | None, guided: bool) -> bool:
    """A new object's first prompt: one object click, no box, no earlier mask."""
    return box is None and not guided and point_labels is not None and len(point_labels) == 1 and point_labels[0] == 1


def first_look(
    predictor: Predictor,
    image: np.ndarray,
    point_coords: np.ndarray,
    point_labels: np.ndarray,
    settings: ZoomSettings = ZoomSettings(),
    multimask_output: bool = True,
) -> tuple[Box | None, np.ndarray, np.ndarray, np.ndarray]:
    """An object's first click answered close up: ``(crop, masks, scores, low_res)`` as :func:`predict_in_crop`.

    A small object covers a cell or two of the photo's embedding, and the first click's mask then spills
    over its surroundings. So the click is answered on the whole photo and again in the smallest crop
    (``settings.min_side``) centred on it. The close-up answer stands when its best mask shows a small
    object that the whole photo's answer spilled over: it touches none of the crop's edges inside the
    photo, covers at most :data:`FIRST_LOOK_MAX_FILL` of the crop, and the whole photo's best mask is at
    least :data:`FIRST_LOOK_SPILL` times larger. Otherwise the whole photo's answer stands (``crop``
    None), as without a first look. The predictor holds the photo on entry and the answer's frame on return.
    """
    whole = predict_in_crop(predictor, None, None, point_coords, point_labels, None, None, None, multimask_output)
    crop = choose_crop(image.shape, None, point_coords, None, None, replace(settings, skip_clicks=0))
    if crop is None:
        return None, *whole
    masks, scores, low_res = predict_in_crop(
        predictor, image, crop, point_coords, point_labels, None, None, None, multimask_output
    )
    top = masks[int(np.argmax(scores))]
    area, spilled = np.count_nonzero(top), np.count_nonzero(whole[0][int(np.argmax(whole[1]))])
    crop_area = (crop[2] - crop[0]) * (crop[3] - crop[1])
    fits = not _touches_inner_edge(top, crop) and area <= FIRST_LOOK_MAX_FILL * crop_area
    if fits and spilled >= FIRST_LOOK_SPILL * area:
        return crop, masks, scores, low_res
    predictor.set_image(image)  # back to the whole photo (a cache hit)
    return None, *whole


def _touches_inner_edge(mask: np.ndarray, crop: Box) -> bool:
    """Whether ``mask`` (photo-sized) has pixels on an edge of ``crop`` that is not the photo's edge."""
    x0, y0, x1, y1 = crop
    height, width = mask.shape
    inside = mask[y0:y1, x0:x1]
    edges = [inside[:, 0] if x0 > 0 else None, inside[0] if y0 > 0 else None,
             inside[:, -1] if x1 < width else None, inside[-1] if y1 < height else None]  # fmt: skip
    return any(edge is not None and bool(edge.any()) for edge in edges)


@dataclass
class ZoomIn:
    """One object's click session on a :class:`Predictor` with Zoom-In (the evaluation's model).

    Call :meth:`set_image` per photo and :meth:`start_object` per object, then :meth:`predict` with all
    the clicks so far (:func:`choose_crop` says where).
    """

    predictor: Predictor
    settings: ZoomSettings = ZoomSettings()

    def __post_init__(self) -> None:
        self._image: np.ndarray | None = None
        self.start_object()

    def set_image(self, image: np.ndarray) -> None:
        """The photo of the next objects (embedded whole at once, as the first clicks need it)."""
        self.predictor.set_image(image)
        self._image = np.asarray(image)
        self._held: Box | None = None  # the crop the predictor holds (None: the whole photo)
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
        crop stays the same; in a new crop the previous mask takes its place.
        """
        if self._image is None:
            raise RuntimeError("call set_image first")
        guided = mask_input is not None or self.mask is not None
        if self.settings.first_look and is_first_click(point_labels, box, guided):
            if self._held is not None:
                self.predictor.set_image(self._image)
            crop, masks, scores, low_res = first_look(
                self.predictor, self._image, point_coords, point_labels, self.settings, multimask_output
            )
            self.crop = self._held = crop
            self.mask = masks[int(np.argmax(scores))].astype(bool)
            return masks, scores, low_res
        crop = choose_crop(self._image.shape, self.mask, point_coords, box, self.crop, self.settings)
        same_frame = crop == self.crop
        if crop is None and self._held is not None:
            self.predictor.set_image(self._image)  # back to the whole photo (a cache hit)
        self.crop = self._held = crop
        prior = None if mask_input is None or same_frame else self.mask
        masks, scores, low_res = predict_in_crop(
            self.predictor, self._image, crop, point_coords, point_labels, box,
            mask_input if same_frame else None, prior, multimask_output,
        )  # fmt: skip
        self.mask = masks[int(np.argmax(scores))].astype(bool)
        return masks, scores, low_res
