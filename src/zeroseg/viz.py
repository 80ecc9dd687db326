"""Overlays for people checking masks: coloured masks with contours, labels, prompt points and boxes.

Pillow only. Masks are coloured in one vectorised pass: each pixel takes the colour of the smallest
mask covering it (small objects stay visible on top of large ones), and contours are drawn where
that owner changes.
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 of a drawn caption or a prompt point's surroundings

POSITIVE = (40, 220, 60)
NEGATIVE = (235, 40, 40)
_GOLDEN = 0.618033988749895
ANCHOR_GRID = 128  # cells a side on which a caption's place inside its mask is found
OUTLINE_SHADE = 0.55  # outlines of masks coloured by label: darker, so masks of one name stay apart


def mask_colors(n: int) -> np.ndarray:
    """``n`` distinct, saturated RGB colours (n x 3 uint8); neighbours in the list differ most."""
    hues = (np.arange(n) * _GOLDEN + 0.11) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, 0.75 if i % 2 else 0.95, 0.95 if i % 3 else 0.8) for i, h in enumerate(hues)]
    return (np.asarray(rgb, dtype=np.float64).reshape(n, 3) * 255).round().astype(np.uint8)


def overlay(
    image: np.ndarray | Image.Image,
    masks: np.ndarray | Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    scores: Sequence[float] | None = None,
    points: np.ndarray | Sequence[Sequence[float]] | None = None,
    boxes: np.ndarray | Sequence[Sequence[float]] | None = None,
    alpha: float = 0.5,
    by_label: bool = False,
) -> Image.Image:
    """Draw masks and prompts over an image and return a new RGB image.

    Arguments:
      image: HxWx3 uint8 array or PIL image.
      masks: NxHxW bools (or one HxW mask); mask i gets colour ``mask_colors(N)[i]``, or with ``by_label``
        its label's colour (masks of one name read as one thing; their outlines, darker, still part them).
      labels, scores: optional per-mask text, drawn inside each mask ("cat 0.93"); a None score is left out.
        A mask lying mostly inside a larger one of the same label gets no caption (a part named as its whole
        would repeat the whole's).
      points: Kx2 (x, y) positive points, or Kx3 (x, y, label) with label 1 = positive (green) and
        0 = negative (red).
      boxes: Kx4 XYXY boxes; box i is drawn in mask i's colour (box i usually prompted mask i).
      alpha: mask opacity.
    """
    base = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    height, width = base.shape[:2]
    stack = np.asarray(masks, dtype=bool).reshape(-1, height, width)
    colors = mask_colors(max(len(stack), len(boxes) if boxes is not None else 0))
    if by_label and labels is not None:
        colors = _label_colors(list(labels), len(colors))

    owner = _owner_map(stack)
    painted = owner >= 0
    blended = base.astype(np.float32)
    blended[painted] = (1.0 - alpha) * blended[painted] + alpha * colors[owner[painted]]
    edges = _edges(owner)
    blended[edges] = colors[owner[edges]] * (OUTLINE_SHADE if by_label else 1.0)

    canvas = Image.fromarray(blended.round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    scale = max(1.0, min(height, width) / 300.0)
    if boxes is not None:
        for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
            draw.rectangle(box.tolist(), outline=tuple(int(c) for c in colors[i]), width=round(2 * scale))
    radius = 4 * scale
    marks = [] if points is None else np.atleast_2d(np.asarray(points, dtype=np.float64))[:, :2].tolist()
    if labels is not None or scores is not None:
        keep_clear = [(x - 2 * radius, y - 2 * radius, x + 2 * radius, y + 2 * radius) for x, y in marks]
        _draw_captions(draw, stack, _captions(len(stack), labels, scores), round(11 * scale), keep_clear, labels,
                       one_per_region=by_label)
    if points is not None:  # last: prompts stay visible
        _draw_points(draw, np.asarray(points, dtype=np.float64), radius=radius)
    return canvas


def name_captions(segments: Sequence[object]) -> tuple[list[str], list[float | None]]:
    """:func:`overlay`'s ``labels`` and ``scores`` for named segments (``label``, ``label_score``): a segment's
    name and how well it matched; an unnamed segment gets no caption."""
    labels = [getattr(s, "label", None) or "" for s in segments]
    return labels, [getattr(s, "label_score", None) if label else None for s, label in zip(segments, labels)]


def _label_colors(labels: list[str], n: int) -> np.ndarray:
    """n x 3 uint8: one colour per distinct label (in order of first use), a colour of its own for each
    unlabelled mask."""
    names = list(dict.fromkeys(label for label in labels if label))
    palette = mask_colors(len(names) + n)
    index = {name: i for i, name in enumerate(names)}
    labelled = labels + [""] * (n - len(labels))
    return palette[[index[label] if label else len(names) + i for i, label in enumerate(labelled)]]


def _owner_map(stack: np.ndarray) -> np.ndarray:
    """HxW index of the smallest mask covering each pixel, -1 where no mask does."""
    if len(stack) == 0:
        return np.full(stack.shape[1:], -1, dtype=np.int64)
    order = np.argsort(stack.reshape(len(stack), -1).sum(axis=1), kind="stable")  # small first
    first = stack[order].argmax(axis=0)  # first (smallest) covering mask in that order
    return np.where(stack.any(axis=0), order[first], -1)


def _edges(owner: np.ndarray) -> np.ndarray:
    """Pixels inside a mask whose 4-neighbour belongs to another mask or to the background."""
    padded = np.pad(owner, 1, mode="constant", constant_values=-1)
    centre = padded[1:-1, 1:-1]
    differs = (
        (padded[:-2, 1:-1] != centre)
        | (padded[2:, 1:-1] != centre)
        | (padded[1:-1, :-2] != centre)
        | (padded[1:-1, 2:] != centre)
    )
    return differs & (owner >= 0)


def _draw_points(draw: ImageDraw.ImageDraw, points: np.ndarray, radius: float) -> None:
    points = np.atleast_2d(points)
    positive = points[:, 2] > 0 if points.shape[1] >= 3 else np.ones(len(points), dtype=bool)
    for (x, y), is_positive in zip(points[:, :2], positive):
        draw.ellipse(
            [x - radius, y - radius, x + radius, y + radius],
            fill=POSITIVE if is_positive else NEGATIVE,
            outline=(255, 255, 255),
            width=max(1, round(radius / 4)),
        )


def _captions(n: int, labels: Sequence[str] | None, scores: Sequence[float] | None) -> list[str]:
    parts = [[] for _ in range(n)]
    for i in range(n):
        if labels is not None and labels[i]:
            parts[i].append(str(labels[i]))
        if scores is not None and scores[i] is not None:
            parts[i].append(f"{float(scores[i]):.2f}")
    return [" ".join(p) for p in parts]


PART_SHARE = 0.8
"""A mask with at least this share of its pixels inside a larger mask of the same label is a part of it."""


def _draw_captions(
    draw: ImageDraw.ImageDraw,
    stack: np.ndarray,
    captions: list[str],
    size: int,
    keep_clear: Sequence[Box] = (),
    labels: Sequence[str] | None = None,
    one_per_region: bool = False,
) -> None:
    """Each mask's caption at its anchor, larger masks first; a caption that would cover one already
    drawn is left out, so crowded small masks do not bury each other's text, and so is the caption of a
    part of a larger mask with the same label (with ``one_per_region``, of any mask that overlaps or
    touches a larger one with its label: in one colour they read as one region). A caption that would
    hide a prompt point (``keep_clear``) moves just below or above it."""
    font = ImageFont.load_default(size=max(10, size))
    placed: list[Box] = []
    larger: list[int] = []
    for i in sorted(range(len(stack)), key=lambda i: -int(stack[i].sum())):
        mask, caption = stack[i], captions[i]
        wholes = [j for j in larger if labels is not None and labels[i] and labels[j] == labels[i]]
        larger.append(i)
        if not caption or not mask.any():
            continue
        pixels = np.flatnonzero(_grown(mask) if one_per_region else mask)  # a part is small: its own pixels
        needed = 1 if one_per_region else PART_SHARE * len(pixels)
        if any(np.count_nonzero(stack[j].reshape(-1)[pixels]) >= needed for j in wholes):
            continue
        x, y = _inside(draw, *_anchor(mask), caption, font)
        left, top, right, bottom = draw.textbbox((x, y), caption, font=font, anchor="mm")
        step = bottom - top + 4 + max((b[3] - b[1] for b in keep_clear), default=0)
        for dy in (0, step, -step):
            box = (left - 2, top - 2 + dy, right + 2, bottom + 2 + dy)
            if not any(_overlap(box, b) for b in keep_clear):
                break
        else:
            box, dy = (left - 2, top - 2, right + 2, bottom + 2), 0
        if any(_overlap(box, b) for b in placed):
            continue
        placed.append(box)
        draw.rectangle(list(box), fill=(0, 0, 0))
        draw.text((x, y + dy), caption, fill=(255, 255, 255), font=font, anchor="mm")


def _grown(mask: np.ndarray) -> np.ndarray:
    """The mask and its 8 neighbours (pixels touching it)."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return np.any([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0)


def _inside(draw: ImageDraw.ImageDraw, x: int, y: int, caption: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    """The caption's centre moved, if need be, so that its box lies within the picture (a mask at the
    picture's edge would otherwise get a cut-off caption)."""
    width, height = draw.im.size
    left, top, right, bottom = draw.textbbox((x, y), caption, font=font, anchor="mm")
    x += max(0, 2 - left) - max(0, right + 2 - width)
    y += max(0, 2 - top) - max(0, bottom + 2 - height)
    return round(x), round(y)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _anchor(mask: np.ndarray) -> tuple[int, int]:
    """Where a mask's caption goes: among its deepest pixels (farthest from its edge, on a grid of at most
    :data:`ANCHOR_GRID` cells a side), the one closest to its centroid, so a ring's caption sits on the
    ring's widest part, not beside the hole (or on whatever the hole holds)."""
    step = max(1, -(-max(mask.shape) // ANCHOR_GRID))
    grid = mask[::step, ::step]
    if not grid.any():  # a mask thinner than the grid's step
        grid, step = mask, 1
    deepest = grid
    while True:  # peel the outer pixels off until nothing is left; the last layer is the deepest
        padded = np.pad(deepest, 1)
        inner = deepest & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        if not inner.any():
            break
        deepest = inner
    ys, xs = np.nonzero(mask)
    gy, gx = np.nonzero(deepest)
    best = np.argmin((gx * step - xs.mean()) ** 2 + (gy * step - ys.mean()) ** 2)
    x, y = gx[best] * step, gy[best] * step
    nearest = np.argmin((xs - x) ** 2 + (ys - y) ** 2)  # a mask pixel, whatever the grid rounded
    return int(xs[nearest]), int(ys[nearest])


def label_map_overlay(
    image: np.ndarray | Image.Image,
    labels: np.ndarray,
    names: Sequence[str],
    alpha: float = 0.55,
    none_name: str = "(none)",
) -> Image.Image:
    """Colour a semantic label map over an image and add a legend panel on the right.

    ``labels`` is HxW int: an index into ``names``, or -1 for "none of these" (left uncoloured).
    The legend lists the names present, largest first, with their share of the image.
    """
    base = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    height, width = base.shape[:2]
    labels = np.asarray(labels).reshape(height, width)
    colors = mask_colors(max(len(names), 1))
    painted = labels >= 0
    blended = base.astype(np.float32)
    blended[painted] = (1.0 - alpha) * blended[painted] + alpha * colors[labels[painted]]
    edges = _edges(labels)
    blended[edges & painted] = colors[labels[edges & painted]]

    counts = np.bincount(labels[painted].ravel(), minlength=len(names)) if painted.any() else np.zeros(len(names))
    rows = [(names[i], tuple(int(c) for c in colors[i]), counts[i] / labels.size) for i in np.argsort(-counts)]
    rows = [row for row in rows if row[2] > 0]
    if not painted.all():
        rows.append((none_name, None, 1.0 - painted.mean()))

    scale = max(1.0, min(height, width) / 300.0)
    font = ImageFont.load_default(size=max(10, round(11 * scale)))
    line = round(16 * scale)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max((probe.textlength(f"{n}  {share:.0%}", font=font) for n, _, share in rows), default=0)
    panel = round(text_width + line * 2)
    canvas = Image.new("RGB", (width + panel, max(height, line * (len(rows) + 1))), (255, 255, 255))
    canvas.paste(Image.fromarray(blended.round().astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (name, color, share) in enumerate(rows):
        y = line // 2 + k * line
        swatch = [width + line // 3, y, width + line // 3 + line * 2 // 3, y + line * 2 // 3]
        draw.rectangle(swatch, fill=color or (255, 255, 255), outline=(0, 0, 0))
        draw.text((width + line + line // 3, y), f"{name}  {share:.0%}", fill=(0, 0, 0), font=font)
    return canvas
