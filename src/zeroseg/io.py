"""Image loading and mask encodings.

Masks are bool HxW arrays in memory and COCO RLE (pycocotools, ``counts`` as str) on disk and on
the wire.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a bool HxW mask as a JSON-ready COCO RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def masks_to_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode an NxHxW bool stack in one pycocotools call."""
    masks = np.asarray(masks, dtype=np.uint8)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes counts or uncompressed list counts) to bool HxW."""
    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE without decoding it."""
    if isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(rle))
