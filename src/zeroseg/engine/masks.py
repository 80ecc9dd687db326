"""Masks as the store keeps them: canonical compressed COCO RLE, checked before pycocotools sees it.

pycocotools trusts its input: a malformed RLE string can make it read past the string or give
areas larger than the image. :func:`canonical_rle` parses ``counts`` itself (vectorised), checks
that the runs cover the image exactly, and re-encodes them the way pycocotools encodes a mask, so
one mask has one stored string and equal masks compare equal as text.

:func:`polygons_to_rle` rasterises COCO polygons with pycocotools; :func:`mask_to_polygons` traces
outer boundaries back. For editing, :func:`mask_to_rings` and :func:`rings_to_mask` turn a mask into
rings (outer boundaries and holes alike) and back by the even-odd rule, exactly; :func:`stroke_mask`
is a round brush along a polyline and :func:`components` splits a mask into its connected parts.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import cv2
from pycocotools import mask as mask_utils

from zeroseg.errors import DatasetError

MaskLike = np.ndarray | Mapping[str, Any]
"""A bool HxW array, or a COCO RLE dict (``counts`` as str, bytes or an uncompressed list)."""

_MAX_GROUP = 7  # characters of one encoded run: 35 bits, more than any image has pixels


def canonical_rle(mask: MaskLike, height: int, width: int) -> dict[str, Any]:
    """``mask`` as a canonical ``{"size": [h, w], "counts": str}`` for an image of that size.

    Raises DatasetError for a wrong size, a malformed RLE or a non-mask array.
    """
    if isinstance(mask, np.ndarray):
        if mask.shape != (height, width):
            raise DatasetError(f"mask of shape {mask.shape} does not fit a {width}x{height} image")
        if mask.dtype != bool and not (mask.dtype.kind in "ui" and np.isin(mask, (0, 1)).all()):
            raise DatasetError(f"a mask must be bool (or 0/1 integers), got {mask.dtype}")
        return _encode(mask)
    if not isinstance(mask, Mapping) or "size" not in mask or "counts" not in mask:
        raise DatasetError("a mask must be a bool HxW array or a COCO RLE dict with 'size' and 'counts'")
    size = _size(mask["size"])
    if size != [height, width]:
        raise DatasetError(f"RLE of size {size} (h, w) does not fit a {width}x{height} image")
    counts = mask["counts"]
    if isinstance(counts, (bytes, bytearray)):
        counts = bytes(counts).decode("latin-1")
    if isinstance(counts, str):
        runs = _parse_counts(counts)
    elif isinstance(counts, Sequence):
        runs = _int_runs(counts)
    else:
        raise DatasetError(f"RLE counts must be a string or a list of integers, not {type(counts).__name__}")
    if runs.size and runs.min() < 0:
        raise DatasetError("RLE has negative run lengths")
    if int(runs.sum()) != height * width:
        raise DatasetError(f"RLE runs cover {int(runs.sum())} pixels, the image has {height * width}")
    return _compress(_merge_empty_runs(runs), height, width)


def rle_area_bbox(rle: Mapping[str, Any]) -> tuple[float, list[float]]:
    """Pixel count and tight XYWH box of a canonical RLE (box [0, 0, 0, 0] when empty)."""
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return float(mask_utils.area(coded)), [float(v) for v in mask_utils.toBbox(coded)]


def polygons_to_rle(polygons: Any, height: int, width: int) -> dict[str, Any]:
    """Rasterise COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (their union) as pycocotools does.

    Parts with fewer than three points cover no pixels and are ignored (pycocotools would read a
    4-number part as a box).
    """
    parts = _checked_rings(polygons)
    if not parts:
        return _encode(np.zeros((height, width), dtype=bool))
    merged = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    return {"size": [height, width], "counts": merged["counts"].decode("ascii")}


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer boundaries of a bool mask as COCO polygons that rasterise back to the same pixels.

    The mask is upsampled 2x so that contours run along pixel edges (vertices at quarter-pixel
    offsets); holes are filled.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return []
    y0, x0 = int(ys.min()), int(xs.min())
    crop = np.asarray(mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1], dtype=np.uint8)
    doubled = crop.repeat(2, axis=0).repeat(2, axis=1)
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([x0, y0], dtype=np.float64)
    return [((c.reshape(-1, 2) + 0.5) / 2.0 + offset).ravel().tolist() for c in contours]


MAX_NESTING = 64  # rings inside holes inside rings ...: deeper masks keep their innermost levels as pixels lost


def mask_to_rings(mask: np.ndarray) -> list[list[float]]:
    """Rings ``[[x0, y0, x1, y1, ...], ...]`` (image pixels) whose even-odd rasterisation
    (:func:`rings_to_mask`) is exactly ``mask``: outer boundaries, then the boundaries of holes, of
    islands in holes, and so on."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    rings: list[list[float]] = []
    rest = mask
    for _ in range(MAX_NESTING):
        if not rest.any():
            break
        level = [ring for ring in mask_to_polygons(rest) if len(ring) >= 6]
        if not level:
            break
        rings += level
        rest = rest ^ _rasterise(level, height, width)  # what the rings cover and the mask does not: holes
    return rings


def rings_to_mask(rings: Any, height: int, width: int) -> np.ndarray:
    """Rasterise rings by the even-odd rule: a pixel is in the mask if it lies inside an odd number
    of rings (so a ring inside another cuts a hole). Rings of fewer than three points are ignored."""
    return _rasterise(_checked_rings(rings), height, width)


def stroke_mask(points: Sequence[Sequence[float]], radius: float, height: int, width: int) -> np.ndarray:
    """The pixels (by their centres) within ``radius`` of the polyline through ``points``: a round
    brush dragged along it (one point: a disc)."""
    if radius <= 0 or not np.isfinite(radius):
        raise DatasetError(f"a brush radius must be a positive number, got {radius}")
    path = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if path.size == 0 or not np.isfinite(path).all():
        raise DatasetError("a stroke needs at least one finite point")
    out = np.zeros((height, width), dtype=bool)
    for a, b in zip(path, path[1:] if len(path) > 1 else path):
        x0, x1 = sorted((a[0], b[0]))
        y0, y1 = sorted((a[1], b[1]))
        cols = np.arange(max(int(np.floor(x0 - radius)), 0), min(int(np.ceil(x1 + radius)) + 1, width))
        rows = np.arange(max(int(np.floor(y0 - radius)), 0), min(int(np.ceil(y1 + radius)) + 1, height))
        if cols.size == 0 or rows.size == 0:
            continue
        px, py = np.meshgrid(cols + 0.5, rows + 0.5)
        d = b - a
        length = float(d @ d)
        t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length, 0, 1) if length > 0 else 0.0
        near = (px - a[0] - t * d[0]) ** 2 + (py - a[1] - t * d[1]) ** 2 <= radius * radius
        out[np.ix_(rows, cols)] |= near
    return out


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected parts of a bool mask, largest first."""
    count, labels = cv2.connectedComponents(np.asarray(mask, dtype=np.uint8), connectivity=8)
    parts = [labels == i for i in range(1, count)]
    return sorted(parts, key=lambda part: -int(part.sum()))


def _checked_rings(rings: Any) -> list[list[float]]:
    if not isinstance(rings, list) or not all(isinstance(p, list) for p in rings):
        raise DatasetError("polygons must be a list of [x0, y0, x1, y1, ...] lists")
    parts = []
    for part in rings:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in part):
            raise DatasetError("a polygon must be a flat list of x, y numbers")
        coords = np.asarray(part, dtype=np.float64)
        if coords.size % 2 or not np.isfinite(coords).all():
            raise DatasetError("a polygon must be a flat list of finite x, y numbers")
        if coords.size >= 6:
            parts.append(coords.tolist())
    return parts


def _rasterise(rings: list[list[float]], height: int, width: int) -> np.ndarray:
    """XOR of each ring's pycocotools rasterisation: the even-odd rule."""
    out = np.zeros((height, width), dtype=bool)
    if rings:
        decoded = mask_utils.decode(mask_utils.frPyObjects(rings, height, width))
        out = np.bitwise_xor.reduce(decoded.astype(bool), axis=2)
    return out


def _encode(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _size(size: Any) -> list[int]:
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        raise DatasetError(f"RLE size must be [height, width] integers, got {size!r}")
    return [int(size[0]), int(size[1])]


def _int_runs(counts: Sequence[Any]) -> np.ndarray:
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
        raise DatasetError("uncompressed RLE counts must be integers")
    return np.asarray(counts, dtype=np.int64).reshape(-1)


def _parse_counts(counts: str) -> np.ndarray:
    """Run lengths of a compressed COCO RLE string (the inverse of pycocotools' rleToString).

    Each value is a little-endian group of 5-bit chunks (char - 48), bit 0x20 = more chunks follow,
    bit 0x10 of the last chunk = negative; from the third value on, values are deltas to the run
    two places back.
    """
    if not counts.isascii():
        raise DatasetError("RLE counts string has characters outside the COCO alphabet")
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if codes.min() < 0 or codes.max() > 63:
        raise DatasetError("RLE counts string has characters outside the COCO alphabet")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise DatasetError("RLE counts string is truncated")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUP:
        raise DatasetError("RLE counts string holds an impossibly large run")
    group = np.repeat(np.arange(ends.size), lengths)
    shift = 5 * (np.arange(codes.size) - starts[group])
    values = np.zeros(ends.size, dtype=np.int64)
    np.add.at(values, group, (codes & 0x1F) << shift)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def _merge_empty_runs(runs: np.ndarray) -> np.ndarray:
    """Drop zero-length runs after the first (merging their neighbours), as pycocotools' encoder would."""
    if runs.size < 2 or runs[1:].all():
        return runs
    runs = [int(r) for r in runs]
    out = runs[:1]
    index = 1
    while index < len(runs):
        if runs[index] == 0 and index + 1 < len(runs):
            out[-1] += runs[index + 1]
            index += 2
        elif runs[index] == 0:
            index += 1
        else:
            out.append(runs[index])
            index += 1
    return np.asarray(out, dtype=np.int64)


def _compress(runs: np.ndarray, height: int, width: int) -> dict[str, Any]:
    if runs.size == 0:  # an image has at least one pixel, so only a 0-pixel RLE gets here
        raise DatasetError("RLE has no runs")
    coded = mask_utils.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)
    return {"size": [height, width], "counts": coded["counts"].decode("ascii")}
