"""Text prompts: "a red car" -> masks.

With a concept model (SAM 3, ``model.concepts``), the model itself finds every instance of the phrase
(:func:`zeroseg.segment.concept.concept_masks`). With a promptable model, two kinds of candidate masks
are named, and those the phrase wins are its instances: the namer's dense embeddings say roughly where
the phrase beats the rest of its vocabulary (and the background), and each connected region of that map
prompts the model with a box and points; and the image's segment-everything masks (:func:`proposals`)
hold the instances a region merges or that no grid cell gives the phrase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from zeroseg.errors import PromptValueError
from zeroseg.io import load_image
from zeroseg.models.text import clean_names
from zeroseg.segment.amg import mask_iou_matrix
from zeroseg.segment.concept import Exemplar, concept_masks, is_concept_model
from zeroseg.segment.naming import Namer, resize_grid
from zeroseg.segment.pipeline import proposals
from zeroseg.segment.predictor import Predictor
from zeroseg.segment.record import Segment
from zeroseg.vocabulary import name_key, strip_article

DEFAULT_THRESHOLD = 0.5  # the phrase must win the softmax against the rest of the vocabulary
NMS_IOU = 0.7  # masks overlapping a better one by more than this mask IoU are duplicates
# Each drawn mask is named as a segment is (dense head + ImageNet classifier) among the phrase and the
# namer's other names; it is kept only when the phrase wins, so a phrase that matches nothing finds nothing.
DEFAULT_VERIFY = True
# Besides its box, each region's strongest local peaks (one grid cell apart at least) prompt the model with a
# point alone, so a region that merges several instances (a crowd, a shelf of books) can give each one.
DEFAULT_POINTS_PER_REGION = 4
DEFAULT_MAX_INSTANCES = 10  # regions, and masks returned
MIN_SUPPORT = 1e-3  # a mask's phrase-map mean counts at least this in its rank (a mask nowhere on the map still ranks)
BOX_PAD_CELLS = 1.0  # a region's box prompt is widened by this many grid cells of the embedder on each side
# When the namer knows no other name than the phrase, these everyday things and surfaces compete with it
# (a phrase alone against the background matches something in almost every photo).
CONTEXT_NAMES = (
    "person", "face", "hand", "animal", "dog", "cat", "bird", "horse", "car", "bus", "truck", "bicycle",
    "motorcycle", "boat", "airplane", "train", "chair", "table", "sofa", "bed", "bottle", "cup", "plate",
    "food", "plant", "flower", "tree", "grass", "sky", "cloud", "water", "road", "sidewalk", "building",
    "wall", "floor", "ceiling", "window", "door", "sign", "book", "screen", "bag", "box", "toy", "clothes",
    "rock", "sand", "snow", "mountain", "fence", "light",
)


def phrase_map(image: Any, phrase: str, namer: Namer) -> np.ndarray:
    """[H, W] float32 in [0, 1]: the phrase's softmax share against the namer's other names and background.

    With nothing to compare against (a vocabulary of just the phrase, no background), the phrase's
    cosine similarity rescaled to [0, 1] over the image instead.
    """
    names = clean_names([phrase])
    if not names:
        raise PromptValueError("the phrase is empty")
    embedding = namer.embed(image)
    # instances, not pixels: the mask gamma (none unless the namer was asked to calibrate masks)
    classes = namer.classes(names + _others(names[0], namer.vocabulary), namer.mask_calibration)
    if len(classes[0]) > 1:
        share = namer.grid_logits(embedding, classes).softmax(0)[:1]
    else:
        cosine = torch.tensordot(classes[0], embedding.features, dims=([1], [0]))
        share = (cosine - cosine.min()) / (cosine.max() - cosine.min()).clamp_min(1e-6)
    return resize_grid(share, embedding.image_size)[0].clamp(0, 1).numpy().astype(np.float32)


def text_to_masks(
    image: Any,
    phrase: str | None,
    predictor: Predictor | None = None,
    namer: Namer | None = None,
    max_instances: int | None = None,
    threshold: float | None = None,
    *,
    model: Any = None,
    exemplars: Iterable[Exemplar] = (),
    verify: bool = DEFAULT_VERIFY,
    points_per_region: int = DEFAULT_POINTS_PER_REGION,
) -> list[Segment]:
    """Segments of the instances of `phrase` in `image`, best first.

    With a concept model as ``model`` (SAM 3): **every** instance the model finds, as
    :func:`~zeroseg.segment.concept.concept_masks` (label the phrase, label score and predicted IoU
    the instance score, ``prompt`` ``{"text": ...}``); ``exemplars`` ``[(box, positive), ...]`` join
    the phrase (or replace it: ``phrase`` None), ``threshold`` is the instance score to pass
    (default the model's) and ``max_instances`` (default all) cuts the list. No `predictor` or
    `namer` is needed.

    Otherwise (``predictor`` and ``namer``, or ``model`` with ``namer``, a Predictor then made for
    it), at most ``max_instances`` (default :data:`DEFAULT_MAX_INSTANCES`): each connected region where
    :func:`phrase_map` reaches `threshold` (default 0.5) becomes a prompt (its box and its peak pixel); of
    the model's multimask outputs the one that ranks best is kept, the rank being predicted IoU x IoU of
    the mask with the region. Its ``points_per_region`` strongest local peaks also prompt the model, a
    point alone each (the output most inside the region kept; no ``box``), so that merged instances
    come apart; duplicates are removed by mask IoU.
    With ``verify`` (the default), the image's :func:`proposals` join them, and each mask is named among
    the phrase and the namer's other names (:data:`CONTEXT_NAMES` when it has none) as
    :meth:`~zeroseg.segment.naming.Namer.mask_logits` names segments, and kept only when the phrase wins;
    each instance is a separate segment. The regions' masks come first, then the proposals, each ranked by
    match x the square root of the mask's area x the mean of :func:`phrase_map` over it, so a confident
    whole instance where the phrase map points comes first.
    A segment's ``label`` is the phrase, ``label_score`` how well the mask matches it (with ``verify``
    the phrase's share of the mask's naming softmax, else the mean of :func:`phrase_map` over the mask,
    in [0, 1]), ``predicted_iou`` the model's score, ``prompt`` the ``text`` and the ``box`` (XYXY) and
    ``points`` ([[x, y, 1]]) that drew the mask, ``source`` "assisted". No match: ``[]``.
    """
    concept_model = model if model is not None else getattr(predictor, "model", None)
    if is_concept_model(concept_model):
        found = concept_masks(image, concept_model, phrase, exemplars, threshold)
        return found if max_instances is None else found[:max_instances]
    if list(exemplars):
        raise PromptValueError("exemplar boxes need a concept model (SAM 3); give clicks or boxes to a predictor")
    if phrase is None:
        raise PromptValueError("a text prompt needs a phrase")
    if predictor is None and model is not None:
        predictor = Predictor(model)
    if predictor is None or namer is None:
        raise PromptValueError("a text prompt needs a concept model, or a promptable model (or predictor) and a namer")
    max_instances = DEFAULT_MAX_INSTANCES if max_instances is None else max_instances
    image = load_image(image)
    typed = clean_names([phrase])
    if not typed:
        raise PromptValueError("the phrase is empty")
    label = typed[0]
    query = strip_article(label)  # "a cup" is about a cup: matched as "cup", labelled as typed
    share = phrase_map(image, query, namer)
    grid = namer.embed(image).features.shape[-2:]
    min_area = share.size / (grid[0] * grid[1]) / 4  # a quarter grid cell: below the embedder's resolution
    regions = _regions(share, DEFAULT_THRESHOLD if threshold is None else threshold, min_area, max_instances)
    if not regions and not verify:
        return []

    predictor.set_image(image)
    candidates = _region_candidates(predictor, regions, share, grid, points_per_region)
    keep = _mask_nms(candidates.masks, candidates.scores, NMS_IOU)
    candidates = candidates.take(keep)
    if verify:
        # the image's segment-everything masks are candidates too: they hold the instances a region merges
        # and those no grid cell gives the phrase
        candidates = candidates.join(_proposal_candidates(image, predictor))
        match = match_scores(image, query, candidates.masks, namer)
        named = [k for k, m in enumerate(match) if m is not None]
        candidates = candidates.take(named)
        scores = np.array([match[k] for k in named], dtype=np.float64)
        # of two near-copies, the one the phrase map pointed at stays (match in [0, 1], + 1 for a region's)
        order = scores + ~candidates.proposed
        candidates = candidates.take(_mask_nms(candidates.masks, order, NMS_IOU), scores)
    else:
        candidates.scores = _mean_over(share, candidates.masks)
    # the masks the phrase map points at first, then the proposals; each by match x sqrt(area), not match
    # alone: the first mask is the instance more often (coco128 and CamVid val, docs/zero-shot.md),
    # and, when named, by the phrase map's mean over the mask: a mask the phrase wins as a whole but not pixel by
    # pixel (a piece of saucer or table named "spoon") goes down the list
    rank = candidates.scores * np.sqrt(candidates.masks.sum((1, 2)))
    if verify:
        rank = rank * np.maximum(_mean_over(share, candidates.masks), MIN_SUPPORT)
    keep = np.lexsort((-rank, candidates.proposed))[:max_instances]
    model = predictor.model
    return [
        Segment(
            candidates.masks[k],
            predicted_iou=float(candidates.ious[k]),
            prompt={"text": label, **candidates.prompts[k]},
            label=label,
            label_score=float(candidates.scores[k]),
            source="assisted",
            model_name=getattr(model, "name", None),
            model_version=getattr(model, "version", None),
        )
        for k in keep
    ]


@dataclasses.dataclass
class _Candidates:
    """Candidate masks [N, H, W] of a text prompt, with their predicted IoU, a score, the prompt of each and
    whether it is one of the image's :func:`proposals` (else a region's)."""

    masks: np.ndarray
    ious: np.ndarray
    scores: np.ndarray
    prompts: list[dict[str, Any]]
    proposed: np.ndarray

    def take(self, keep: Sequence[int], scores: np.ndarray | None = None) -> _Candidates:
        keep = list(keep)
        return _Candidates(self.masks[keep], self.ious[keep], self.scores[keep] if scores is None else scores[keep],
                           [self.prompts[k] for k in keep], self.proposed[keep])

    def join(self, other: _Candidates) -> _Candidates:
        return _Candidates(np.concatenate([self.masks, other.masks]), np.concatenate([self.ious, other.ious]),
                           np.concatenate([self.scores, other.scores]), self.prompts + other.prompts,
                           np.concatenate([self.proposed, other.proposed]))

    @staticmethod
    def empty(size: tuple[int, ...]) -> _Candidates:
        return _Candidates(np.zeros((0, *size), bool), np.zeros(0), np.zeros(0), [], np.zeros(0, bool))


def _region_candidates(
    predictor: Predictor, regions: list[np.ndarray], share: np.ndarray, grid: tuple[int, int], points_per_region: int
) -> _Candidates:
    """Each region's box-and-peak prompt (the output that ranks best by predicted IoU x IoU with the region)
    and its ``points_per_region`` peaks' point prompts (the output most inside the region)."""
    size = share.shape
    if not regions:
        return _Candidates.empty(size)
    boxes, points = (np.array(p, dtype=np.float64) for p in zip(*(_prompt(r, share) for r in regions)))
    cell = max(size[0] / grid[0], size[1] / grid[1])
    pad = BOX_PAD_CELLS * cell  # the region's edge is only as sharp as the embedder's grid
    boxes = np.clip(boxes + np.array([-pad, -pad, pad, pad]), 0, [size[1], size[0]] * 2)
    masks, ious, _ = predictor.predict_batch(
        point_coords=points[:, None], point_labels=np.ones((len(points), 1)), boxes=boxes, multimask_output=True
    )
    stacked = np.stack(regions)[:, None]  # [B, 1, H, W] against the [B, C, H, W] candidates
    overlap = (masks & stacked).sum((-2, -1)) / np.maximum((masks | stacked).sum((-2, -1)), 1)
    scores = ious * overlap
    rows, best = np.arange(len(masks)), scores.argmax(1)
    found = _Candidates(masks[rows, best], ious[rows, best], scores[rows, best],
                        [{"box": b.tolist(), "points": [[*p.tolist(), 1.0]]} for b, p in zip(boxes, points)],
                        np.zeros(len(masks), bool))
    peaks = [(k, p) for k, r in enumerate(regions) for p in _peaks(r, share, points_per_region, cell)]
    if not peaks:
        return found
    xy = np.array([p for _, p in peaks], dtype=np.float64)
    masks, ious, _ = predictor.predict_batch(
        point_coords=xy[:, None], point_labels=np.ones((len(xy), 1)), multimask_output=True
    )
    inside = np.stack([regions[k] for k, _ in peaks])[:, None]
    scores = ious * (masks & inside).sum((-2, -1)) / np.maximum(masks.sum((-2, -1)), 1)
    rows, pick = np.arange(len(masks)), scores.argmax(1)
    return found.join(_Candidates(masks[rows, pick], ious[rows, pick], scores[rows, pick],
                                  [{"points": [[*p.tolist(), 1.0]]} for p in xy], np.zeros(len(xy), bool)))


def _proposal_candidates(image: np.ndarray, predictor: Predictor) -> _Candidates:
    """:func:`proposals` as candidates; they are scored by the naming check that follows (no score yet)."""
    found, masks = proposals(image, predictor)
    ious = np.array([s.predicted_iou or 0.0 for s in found], dtype=np.float64)
    return _Candidates(masks, ious, np.zeros(len(found)), [dict(s.prompt) for s in found], np.ones(len(found), bool))


def match_scores(image: Any, phrase: str, masks: np.ndarray, namer: Namer) -> list[float | None]:
    """For each mask [N, H, W]: the phrase's share of the mask's naming softmax among the phrase and the
    namer's other names (:data:`CONTEXT_NAMES` when it has none); None when another name wins. The
    background does not take part: :func:`phrase_map` already weighed it."""
    others = _others(phrase, namer.vocabulary) or _others(phrase, CONTEXT_NAMES, head=True)
    judge = namer.with_vocabulary([phrase, *others])
    logits, present = judge.mask_logits(image, masks)
    probs = logits[:, : len(judge.vocabulary)].softmax(1)  # names only: the region finder had the background
    return [float(p[0]) if ok and int(p.argmax()) == 0 else None for p, ok in zip(probs, present.tolist())]


def _others(phrase: str, names: Iterable[str], head: bool = False) -> list[str]:
    """The names that compete with ``phrase``: all but those naming the same thing ("cup" and "cups"
    against "cup"), which would split the phrase's own share; with ``head``, also not the phrase's last
    words ("car" against "red car")."""
    key = name_key(phrase)
    words = key.split()
    heads = {" ".join(words[i:]) for i in range(len(words))} if head else {key}
    return [name for name in names if name_key(name) not in heads]


def _mean_over(share: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[N]: the mean of the phrase map ``share`` [H, W] over each mask [N, H, W] (0 for an empty mask)."""
    return np.array([float(share[m].mean()) if m.any() else 0.0 for m in masks])


def _regions(share: np.ndarray, threshold: float, min_area: float, max_instances: int) -> list[np.ndarray]:
    """Bool masks of the connected regions where `share` >= threshold, largest phrase mass (sum of
    share) first, at most `max_instances`, ignoring regions under `min_area` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((share >= threshold).astype(np.uint8), connectivity=8)
    regions = [labels == i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    regions.sort(key=lambda region: float(share[region].sum()), reverse=True)
    return regions[:max_instances]


def _prompt(region: np.ndarray, share: np.ndarray) -> tuple[list[int], list[int]]:
    """The region's XYXY box and its peak (x, y): the pixel maximising share x distance to the region's
    border, so a plateau of equal shares gives its middle rather than a corner."""
    ys, xs = np.nonzero(region)
    depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(share * depth), share.shape)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], [int(x), int(y)]


def _peaks(region: np.ndarray, share: np.ndarray, count: int, spacing: float) -> list[tuple[int, int]]:
    """Up to ``count`` (x, y) local maxima of share x depth inside ``region``, ``spacing`` pixels apart."""
    if count <= 0:
        return []
    depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    value = (share * depth).astype(np.float32)
    size = max(int(spacing) * 2 + 1, 3)
    top = cv2.dilate(value, np.ones((size, size), np.uint8))
    ys, xs = np.nonzero((value >= top) & region & (value > 0))
    order = np.argsort(-value[ys, xs], kind="stable")
    chosen: list[tuple[int, int]] = []
    for i in order:
        x, y = int(xs[i]), int(ys[i])
        if all((x - a) ** 2 + (y - b) ** 2 >= spacing**2 for a, b in chosen):
            chosen.append((x, y))
        if len(chosen) == count:
            break
    return chosen


def _mask_nms(masks: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of masks [N, H, W] kept by greedy NMS on mask IoU, best score first; empty masks dropped."""
    if not len(masks):
        return []
    iou = mask_iou_matrix(masks, masks)
    nonempty = masks.reshape(len(masks), -1).any(1)
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if nonempty[i] and all(iou[i, j] <= iou_threshold for j in keep):
            keep.append(int(i))
    return keep
