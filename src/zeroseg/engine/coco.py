"""COCO instances JSON <-> :class:`~zeroseg.segment.record.Segment`: the one COCO writer and reader.

The store's exports and imports (``engine/export.py``) and the CLI's ``everything`` both go through
here, so a file written by one reads back in the other with its scores. Besides COCO's own keys an
annotation keeps what zeroseg knows of the mask: ``score`` (predicted IoU), ``stability_score``,
``label_score``, ``source``, ``model_name``, ``model_version``, ``point_coords`` and ``crop_box``
(present only when known; COCO tools ignore them).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from zeroseg.segment.record import Segment

UNLABELLED = "object"
"""Category name of masks that have no label."""

# COCO annotation key -> Segment field, for the extra keys zeroseg keeps.
_SCORES = {
    "score": "predicted_iou",
    "stability_score": "stability_score",
    "label_score": "label_score",
    "source": "source",
    "model_name": "model_name",
    "model_version": "model_version",
    "crop_box": "crop_box",
}


def annotation(
    segment: Segment, *, id: int, image_id: int, category_id: int, segmentation: Any = None, iscrowd: bool = False
) -> dict[str, Any]:
    """One COCO annotation of a segment; ``segmentation`` replaces its RLE (e.g. with polygons)."""
    out: dict[str, Any] = {
        "id": id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segment.rle if segmentation is None else segmentation,
        "area": segment.area,
        "bbox": segment.bbox,
        "iscrowd": int(iscrowd),
    }
    for key, name in _SCORES.items():
        value = getattr(segment, name)
        if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
            out[key] = value
    points = segment.prompt.get("points")
    if points:
        out["point_coords"] = [list(p[:2]) for p in points]
    return out


def categories_for(labels: Iterable[str | None], known: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """``known`` categories (ids kept, in id order) plus one per new label, with the next free ids in
    name order; unlabelled masks are :data:`UNLABELLED`."""
    categories = sorted((dict(c) for c in known), key=lambda c: c["id"])
    taken = {c["name"] for c in categories}
    next_id = max((c["id"] for c in categories), default=0) + 1
    for name in sorted({label or UNLABELLED for label in labels} - taken):
        categories.append({"id": next_id, "name": name, "supercategory": ""})
        next_id += 1
    return categories


def document(
    images: Sequence[tuple[dict[str, Any], Sequence[Segment | tuple[Segment, dict[str, Any]]]]],
    *,
    categories: Sequence[dict[str, Any]] = (),
    info: dict[str, Any] | None = None,
    first_id: int = 1,
) -> dict[str, Any]:
    """A COCO instances document of ``(image entry, its segments)`` pairs; an image entry has at least
    ``id``, ``file_name``, ``width`` and ``height``. Categories: see :func:`categories_for`.

    Annotation ids count from ``first_id``. A segment may come as ``(segment, options)``, where
    ``options`` are :func:`annotation` keywords that replace the defaults (``id``, ``segmentation``,
    ``iscrowd``).
    """
    pairs = [(image, [item if isinstance(item, tuple) else (item, {}) for item in items]) for image, items in images]
    cats = categories_for((s.label for _, items in pairs for s, _ in items), categories)
    ids = {c["name"]: c["id"] for c in cats}
    annotations, next_id = [], first_id
    for image, items in pairs:
        for segment, options in items:
            given = {"id": next_id, "image_id": image["id"], "category_id": ids[segment.label or UNLABELLED]}
            annotations.append(annotation(segment, **{**given, **options}))
            next_id += 1
    return {
        "info": dict(info or {}),
        "licenses": [],
        "images": [dict(image) for image, _ in pairs],
        "annotations": annotations,
        "categories": cats,
    }


def segment_of(ann: dict[str, Any], category: str | None, rle: dict[str, Any]) -> Segment:
    """The segment of one COCO annotation (``rle``: its mask, already decoded from any encoding);
    the category :data:`UNLABELLED` means no label."""
    kept = {name: ann[key] for key, name in _SCORES.items() if ann.get(key) is not None}
    points = ann.get("point_coords") or []
    return Segment(
        rle,
        bbox=[float(v) for v in ann["bbox"]] if ann.get("bbox") is not None else None,
        area=ann.get("area"),
        prompt={"points": [[float(x), float(y), 1.0] for x, y in points]} if points else {},
        label=None if category in (None, UNLABELLED) else category,
        **{"source": "manual", **kept},
    )
