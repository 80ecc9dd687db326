"""Naming masks with the backbone's own ImageNet-1k classifier, mapped to any names through text (ConSE).

ConSE (Norouzi et al., 2014) turns a closed-set classifier into a zero-shot one: an image's class
probabilities are carried over to new names through the similarity of the class names and the new names
in a text space. Here each mask's crop is classified by :meth:`EfficientNetLite.classify`; the top-k of
its 1,000 ImageNet probabilities are kept and each ImageNet class passes its probability on to the user's
names in proportion to ``softmax(cos(class text, name text) / temperature)``, or mostly to the name WordNet
puts above it where there is one (text alone sends many kinds astray: a junco to "vase", a Saluki to
"person"; WordNet knows a junco is a bird). The result is a
distribution over the user's names, which :class:`zeroseg.segment.naming.Namer` mixes with the dense
head's mask score.

The crop is the mask's bounding box made square (``context`` times its longer side, centred), with every
pixel outside the mask set to grey (zero after the backbone's normalisation), resized to 160 x 160
(the classifier was trained at 224; 160 halves the cost and was as accurate on validation). The
settings were chosen on validation data (docs/zero-shot.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.models.lite.backbone import PIXEL_MEAN, PIXEL_STD, EfficientNetLite
from zeroseg.models.lite.imagenet_classes import IMAGENET_CLASSES

CROP_SIZE = 160  # below the classifier's 224: half the cost, as accurate on validation
CROP_CONTEXT = 1.0  # crop side / the mask box's longer side
CROP_FILL = 127.0  # grey outside the mask: 0 after (x - 127) / 128
MIN_CROP = 16  # pixels: the smallest crop side taken from the image
TOP_K = 20  # ImageNet classes that pass their probability on
TRANSFER_TEMPERATURE = 0.05  # cosine units: how sharply an ImageNet class picks among the names
CLASSIFY_BATCH = 16
WORDNET_WEIGHT = 0.75  # share of a class's probability that goes to the name WordNet puts above it


def imagenet_names() -> list[str]:
    """The first WordNet lemma of each ImageNet class, in output order ("tench", "goldfish", ...)."""
    return [entry.split(", ")[0] for entry in IMAGENET_CLASSES]


def mask_crop(image: np.ndarray, mask: np.ndarray, context: float = CROP_CONTEXT, size: int = CROP_SIZE) -> np.ndarray:
    """float32 [size, size, 3] crop of ``image`` (uint8 HxWx3) around the non-empty ``mask`` (bool HxW):
    the square of ``context`` times the box's longer side, centred on the box, grey outside the mask and
    outside the image."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = max(int(round(max(y1 - y0, x1 - x0, MIN_CROP) * context)), 1)
    top, left = int(round((y0 + y1 - side) / 2)), int(round((x0 + x1 - side) / 2))
    height, width = mask.shape
    ya, yb, xa, xb = max(top, 0), min(top + side, height), max(left, 0), min(left + side, width)
    crop = np.full((side, side, 3), CROP_FILL, dtype=np.float32)
    inside = mask[ya:yb, xa:xb, None]
    crop[ya - top : yb - top, xa - left : xb - left] = np.where(inside, image[ya:yb, xa:xb], CROP_FILL)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


@torch.inference_mode()
def classify_masks(
    backbone: EfficientNetLite, image: np.ndarray, masks: np.ndarray, context: float = CROP_CONTEXT
) -> torch.Tensor:
    """ImageNet log-probabilities [N, 1000] of the crop of each non-empty mask of ``masks`` [N, H, W]
    (:func:`mask_crop`), classified in batches of ``CLASSIFY_BATCH``."""
    if not len(masks):
        return torch.zeros(0, len(IMAGENET_CLASSES))
    device = next(backbone.parameters()).device
    mean = torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(masks), CLASSIFY_BATCH):
        crops = np.stack([mask_crop(image, m, context) for m in masks[start : start + CLASSIFY_BATCH]])
        x = (torch.from_numpy(crops).to(device).permute(0, 3, 1, 2) - mean) / std
        out.append(F.log_softmax(backbone.classify(x).float(), dim=1).cpu())
    return torch.cat(out)


def transfer(log_probs: torch.Tensor, share: torch.Tensor, top_k: int = TOP_K) -> torch.Tensor:
    """ImageNet log-probabilities [N, 1000] -> log-probabilities over the names [N, K].

    The top-k ImageNet classes of each row keep their probability (re-normalised); each hands it on to
    the names by its row of ``share`` [1000, K] (rows sum to 1: :func:`name_share`).
    """
    probs = log_probs.exp()
    top, index = probs.topk(min(top_k, probs.shape[1]), dim=1)
    top = top / top.sum(1, keepdim=True).clamp(min=1e-12)
    names = torch.einsum("nk,nkc->nc", top, share.float()[index])
    return names.clamp(min=1e-12).log()


def name_share(
    class_text: torch.Tensor,
    name_text: torch.Tensor,
    names: Sequence[str] | None = None,
    temperature: float = TRANSFER_TEMPERATURE,
    wordnet_weight: float = WORDNET_WEIGHT,
) -> torch.Tensor:
    """[1000, K]: how each ImageNet class hands its probability to the K names (rows sum to 1).

    By text similarity, ``softmax(cos(class_text, name_text) / temperature)`` (``class_text`` [1000, D]
    and ``name_text`` [K, D] unit text embeddings in one space); a class that WordNet puts under some of
    the ``names`` (:func:`wordnet_kinds`: a tabby is a cat, a Saluki a dog) hands ``wordnet_weight`` of
    it to the nearest of them instead. Without ``names``, text similarity alone.
    """
    share = (class_text.float() @ name_text.float().T / temperature).softmax(1)
    if names is None:
        return share
    kinds = wordnet_kinds(names)
    known = kinds.sum(1, keepdim=True) > 0
    return torch.where(known, wordnet_weight * kinds + (1 - wordnet_weight) * share, share)


WORDNET_TABLE = Path(__file__).with_name("imagenet_wordnet.tsv")
"""The ImageNet classes' WordNet 3.0 synsets and all their hypernyms (``recipes/imagenet_wordnet.py``)."""


@functools.lru_cache(maxsize=1)
def _wordnet() -> tuple[list[tuple[str, ...]], list[dict[int, int]]]:
    """Every synset's lemmas (lower case) and, per ImageNet class, its synset and hypernyms with their
    distance from it (0: the class itself)."""
    lemmas, parents = [], []
    for line in WORDNET_TABLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, _, words, above = line.split("\t")
        lemmas.append(tuple(word.lower() for word in words.split("|")))
        parents.append([int(row) for row in above.split()])
    depths = []
    for row in range(len(IMAGENET_CLASSES)):  # breadth first: each hypernym at its shortest distance
        depth, frontier = {row: 0}, [row]
        while frontier:
            step = depth[frontier[0]] + 1
            frontier = [up for node in frontier for up in parents[node] if up not in depth]
            frontier = list(dict.fromkeys(frontier))
            depth.update((up, step) for up in frontier)
        depths.append(depth)
    return lemmas, depths


@functools.lru_cache(maxsize=1)
def _lemma_index() -> dict[str, list[int]]:
    """Lemma (lower case) -> the synsets (table rows) that have it."""
    index: dict[str, list[int]] = {}
    for node, words in enumerate(_wordnet()[0]):
        for word in words:
            index.setdefault(word, []).append(node)
    return index


def _forms(name: str) -> set[str]:
    """A name as WordNet may spell it: lower case, single spaces, its singular ("cups", "buses", "berries")
    and its plural ("cow" is among the lemmas of cattle as "cows")."""
    name = " ".join(name.lower().replace("_", " ").split())
    forms = {name, name + "s"}
    if name.endswith("ies"):
        forms.add(name[:-3] + "y")
    if name.endswith("es"):
        forms.add(name[:-2])
    if name.endswith("s") and not name.endswith("ss"):
        forms.add(name[:-1])
    return forms


def wordnet_kinds(names: Sequence[str]) -> torch.Tensor:
    """[1000, K]: for each ImageNet class, an equal share for the names that WordNet puts nearest above
    it (a name among the lemmas of the class's synset or of its closest hypernym that has one of the
    names); a row of zeros where no name is the class or above it."""
    by_lemma, depths = _lemma_index(), _wordnet()[1]
    nodes = [{node for form in _forms(name) for node in by_lemma.get(form, ())} for name in names]
    kinds = torch.zeros(len(IMAGENET_CLASSES), len(names))
    for row, depth in enumerate(depths):
        found = [min((depth[n] for n in own if n in depth), default=None) for own in nodes]
        nearest = min((d for d in found if d is not None), default=None)
        if nearest is None:
            continue
        chosen = [k for k, d in enumerate(found) if d == nearest]
        kinds[row, chosen] = 1.0 / len(chosen)
    return kinds


# Text-space cover: a name's nearest ImageNet class name at least this cosine apart (template-averaged
# MiniLM) counts as the same thing ("tv" ~ "television", "airplane" ~ "airliner"); below it near names
# are often other things ("water" ~ "water ouzel", "dog" ~ "dogsled").
COVER_COSINE = 0.88


def imagenet_coverage(
    names: list[str], name_text: torch.Tensor | None = None, class_text: torch.Tensor | None = None
) -> dict[str, list[str]]:
    """For each name, the ImageNet-1k classes (first lemma) that already cover it: those WordNet puts
    under the name (the name's own synset or a kind of it: cow ~ ox, sheep ~ ram; :func:`wordnet_kinds`
    of the name alone), plus, given unit text embeddings of the names [K, D] and of the 1,000 classes
    [1000, D], the nearest class when its cosine reaches :data:`COVER_COSINE` (tv ~ television, which
    WordNet files elsewhere). An empty list: the backbone's pretraining has no class for the name."""
    classes = imagenet_names()
    nearest: list[tuple[int, float]] = []
    if name_text is not None and class_text is not None:
        cosine = name_text.float() @ class_text.float().T
        best, index = cosine.max(1)
        nearest = list(zip(index.tolist(), best.tolist()))
    covered: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        found = [classes[row] for row in wordnet_kinds([name])[:, 0].nonzero().flatten().tolist()]
        if nearest and nearest[k][1] >= COVER_COSINE and classes[nearest[k][0]] not in found:
            found.append(classes[nearest[k][0]])
        covered[name] = found
    return covered
