"""`Segment`: the one record of a mask and what is known about it, shared by every zeroseg face.

In memory a segment's mask is a bool HxW array, on the wire and on disk a COCO RLE; each is made from
the other on first use and kept. :meth:`Segment.to_sam_dict` gives the reference
``SamAutomaticMaskGenerator`` record for drop-in users; :meth:`Segment.to_dict` / :meth:`Segment.from_dict`
are the JSON form (RLE mask).
"""
from __future__ import annotations

import math
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any

import numpy as np

from zeroseg.io import mask_to_rle, rle_area, rle_bbox, rle_to_mask


@dataclass(eq=False)
class Segment:
    """One mask with its scores, the prompt that made it, its name and its provenance.

    Give the mask as a bool HxW array or a COCO RLE (``{"size": [h, w], "counts": str}``); ``bbox``
    (XYWH) and ``area`` default to the mask's.

      predicted_iou, stability_score: the model's quality scores (None when a person drew it).
      prompt: what made it: ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1], "text": str,
        "exemplars": [[x0, y0, x1, y1, 1 (more like this) | 0 (not like this)], ...]}`` (keys present only
        when used).
      crop_box: XYWH crop of the image the model saw (segment-everything's crop layers).
      label, label_score: its name and how well the name matched (None: not named).
      source: manual | assisted | auto | import.
      model_name, model_version: the model that made it.
    """

    segmentation: InitVar[np.ndarray | dict[str, Any]]
    bbox: list[float] | None = None
    area: float | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None
    prompt: dict[str, Any] = field(default_factory=dict)
    crop_box: list[float] | None = None
    label: str | None = None
    label_score: float | None = None
    source: str = "auto"
    model_name: str | None = None
    model_version: str | None = None
    _mask: np.ndarray | None = field(default=None, init=False, repr=False)
    _rle: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self, segmentation: np.ndarray | dict[str, Any]) -> None:
        if isinstance(segmentation, dict):
            self._rle = {"size": list(segmentation["size"]), "counts": _text(segmentation["counts"])}
        else:
            mask = np.asarray(segmentation)
            if mask.ndim != 2:
                raise ValueError(f"a segment's mask is H x W, got shape {mask.shape}")
            self._mask = mask.astype(bool, copy=False)
        if self.bbox is None:
            self.bbox = [float(v) for v in rle_bbox(self.rle)]
        if self.area is None:
            self.area = int(self._mask.sum()) if self._mask is not None else rle_area(self.rle)

    # --- the mask, both ways ------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The mask as bool HxW (decoded from the RLE on first use)."""
        if self._mask is None:
            self._mask = rle_to_mask(self._rle)  # type: ignore[arg-type]
        return self._mask

    @property
    def rle(self) -> dict[str, Any]:
        """The mask as COCO RLE with a str ``counts`` (encoded on first use)."""
        if self._rle is None:
            self._rle = mask_to_rle(self._mask)  # type: ignore[arg-type]
        return self._rle

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return tuple(self._mask.shape) if self._mask is not None else tuple(self._rle["size"])  # type: ignore[index, return-value]

    def with_(self, **changes: Any) -> Segment:
        """A copy with some fields changed (the mask is shared, not copied)."""
        copy = replace(self, segmentation=self.rle if self._mask is None else self._mask, **changes)
        if self._rle is not None:
            copy._rle = self._rle
        return copy

    # --- other forms ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field, the mask as ``segmentation`` (COCO RLE)."""
        out: dict[str, Any] = {"segmentation": self.rle}
        for f in fields(self):
            if f.init:
                out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {"segmentation", *(f.name for f in fields(cls) if f.init)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_sam_dict(self, rle: bool = False) -> dict[str, Any]:
        """The reference ``SamAutomaticMaskGenerator`` record (bool mask, or COCO RLE with ``rle``)."""
        return {
            "segmentation": self.rle if rle else self.mask,
            "area": self.area,
            "bbox": self.bbox,
            "predicted_iou": self.predicted_iou,
            "point_coords": [p[:2] for p in self.prompt.get("points", [])],
            "stability_score": self.stability_score,
            "crop_box": self.crop_box,
        }

    @classmethod
    def from_sam_dict(cls, record: dict[str, Any], **provenance: Any) -> Segment:
        """A segment from a ``SamAutomaticMaskGenerator`` record (its point becomes a positive click)."""
        points = [[*map(float, p[:2]), 1.0] for p in record.get("point_coords") or []]
        return cls(
            record["segmentation"],
            bbox=[float(v) for v in record["bbox"]],
            area=int(record["area"]),
            predicted_iou=_float(record.get("predicted_iou")),
            stability_score=_float(record.get("stability_score")),
            prompt={"points": points} if points else {},
            crop_box=record.get("crop_box"),
            label=record.get("label"),
            label_score=_float(record.get("label_score")),
            **provenance,
        )


def _text(counts: Any) -> Any:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> JSON-ready Python values; NaN -> None."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
