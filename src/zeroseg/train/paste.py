"""Copies of an object pasted next to it, in the cached backbone features: a lesson in telling instances apart.

On COCO-style photos the lite model's first click most often fails by running over a *neighbouring instance
of the same kind* (two zebras, a group of people). Copy-paste augmentation (Ghiasi et al., 2021) multiplies
such scenes; here it works on the frozen backbone features that training caches, so it costs no backbone
pass: the features under one sampled object are copied to a place beside it (touching or slightly
overlapping, as crowds do), every target of that photo loses what the copy covers (the copy is in front), and
the copy itself is no one's target. The tuned blocks and the neck then see two alike things side by side and
must answer a click on one with that one only.
"""
from __future__ import annotations

import numpy as np
import torch

MIN_KEPT = 0.5
"""A paste is dropped if it would hide more than half of any target of the photo."""
GAP = (0.6, 1.0)
"""The copy's offset, as a share of the object's extent along the offset: overlapping (< 1) to touching (1)."""


def _cells(mask: np.ndarray, factor: int) -> np.ndarray:
    """A bool mask -> cells of ``factor`` x ``factor`` that are at least half covered."""
    h, w = (s // factor * factor for s in mask.shape)
    blocks = mask[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3)) >= 0.5


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def _offset(cells: np.ndarray, valid: tuple[int, int], rng: np.random.Generator) -> tuple[int, int] | None:
    """A shift in cells that puts the object's copy beside it, inside the image's ``valid`` cells."""
    ys, xs = np.nonzero(cells)
    extent = (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    for axis, sign in rng.permutation([(0, 1), (0, -1), (1, 1), (1, -1)]):
        step = max(1, int(round(extent[axis] * rng.uniform(*GAP))))
        jitter = int(rng.integers(-(extent[1 - axis] // 4), extent[1 - axis] // 4 + 1))
        dy, dx = (sign * step, jitter) if axis == 0 else (jitter, sign * step)
        if ys.min() + dy >= 0 and ys.max() + dy < valid[0] and xs.min() + dx >= 0 and xs.max() + dx < valid[1]:
            return int(dy), int(dx)
    return None


def paste_copies(
    features: list[torch.Tensor],
    levels: int,
    targets: np.ndarray,
    valid: np.ndarray,
    counts: np.ndarray,
    prob: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """With probability ``prob`` per photo, paste a copy of one of its sampled objects beside it.

    ``features``: per level (photos, C, h, w), changed in place on the first ``levels`` (the frozen ones,
    finest first; the coarsest of them sets the paste's cells). ``targets``: (prompts, G, G) bool on the
    low-resolution grid, ``valid`` the same grid's cells of real image (not padding), ``counts[i]`` prompts
    per photo in order. Returns the targets with the copies' cells removed.
    """
    targets = targets.copy()
    grid = targets.shape[-1]
    coarse = features[levels - 1].shape[-1]
    if grid % coarse:
        raise ValueError(f"target grid {grid} is not a multiple of the feature grid {coarse}")
    factor = grid // coarse
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for photo, (start, count) in enumerate(zip(starts, counts)):
        if rng.random() >= prob:
            continue
        own = targets[start : start + count]
        cells = _cells(own[int(rng.integers(count))], factor)
        if cells.sum() == 0:
            continue
        image = _cells(valid[start], factor)
        offset = _offset(cells, (int(image.any(1).sum()), int(image.any(0).sum())), rng)
        if offset is None:
            continue
        copy = _shift(cells, *offset)
        covered = np.kron(copy, np.ones((factor, factor), bool))
        kept = (own & ~covered).sum(axis=(1, 2)) / own.sum(axis=(1, 2))
        if kept.min() < MIN_KEPT:
            continue
        for f in features[:levels]:
            r = f.shape[-1] // coarse
            source = torch.from_numpy(np.kron(cells, np.ones((r, r), bool)))
            dest = torch.from_numpy(np.kron(copy, np.ones((r, r), bool)))
            f[photo][:, dest] = f[photo][:, source]
        targets[start : start + count] = own & ~covered
    return targets
