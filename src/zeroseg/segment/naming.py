"""Zero-shot naming: pixels and masks get free-text names by comparing dense image embeddings with text.

A :class:`Namer` holds a vocabulary embedded once by the embedder's own text encoder. A pixel's logits
are cosine(pixel embedding, name embedding) / temperature, computed on the embedder's coarse grid and
resized bilinearly to the image (logits are resized, never features). A mask is named from the mean
unit embedding of the grid cells it covers. Two zero-shot devices can decide between names; a namer from
:func:`load_namer` uses them as docs/zero-shot.md measured best on a user's whole vocabulary:

- background: an embedder with a learned background embedding (ZSI/ViLD) adds it as a "none" class;
  `background_threshold` also leaves a pixel or mask unnamed when its best softmax score is below it.
- calibrated stacking (Chao et al., 2016): `calibration` is subtracted from the cosine of every name seen
  in training, which counters the bias of a trained head towards seen names. The zero-shot evaluation
  protocol (seen / unseen / harmonic mean) uses the embedder's fitted gammas for pixels and masks;
  :func:`load_namer` uses the fitted gamma for pixels and a smaller one for masks unless asked
  (:data:`DEFAULT_MASK_CALIBRATION`): the fitted one costs accuracy on a user's whole vocabulary.

Masks and pixels also get the opinion of the backbone's ImageNet-1k classifier when the embedder has one
(`classifier=True`, the default): ImageNet probabilities are carried over to the vocabulary through the
text space, and through WordNet for the classes it files under a name (ConSE;
:mod:`zeroseg.models.lite.imagenet`). A mask's crop is classified, and its score is
``log_softmax(dense logits) + classifier_weight * log p_classifier(name)``; a pixel takes the classifier's
opinion of its grid cell (the classifier without its pooling), weighted by `pixel_classifier_weight`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.errors import PromptShapeError, PromptValueError
from zeroseg.io import image_key, load_image
from zeroseg.models.lite import imagenet
from zeroseg.models.text import clean_names
from zeroseg.models.vl.base import DenseEmbedder, DenseEmbedding, mask_cover, pool_masks
from zeroseg.segment.concept_naming import ConceptNamer
from zeroseg.segment.vocabulary_namer import MASK_BATCH, VocabularyNamer
from zeroseg.vocabulary import name_key, strip_article

DEFAULT_TEMPERATURE = 0.01
# What a namer does unless asked (load_namer, the CLI, the app, the data engine): chosen for top-1 naming
# accuracy on a user's whole vocabulary, measured on validation data (docs/zero-shot.md).
DEFAULT_CALIBRATE = False
# Pixels (label_pixels, dense labelling) are calibrated by default even so: on pixels the embedder's
# pixel gamma is right more often on a whole vocabulary (docs/zero-shot.md), while on masks it is not.
DEFAULT_PIXEL_CALIBRATE = True
# Masks not calibrated with the embedder's fitted gamma still get this smaller one (cosine units) against the
# names it was trained on: with the ImageNet classifier mixed in, it names untrained names right far more often
# and costs nothing on a whole vocabulary of trained names; chosen on coco128 val and the COCO 2017 subsets' val
# photos (docs/zero-shot.md).
DEFAULT_MASK_CALIBRATION = 0.10
# Text prompts' namers (``load_namer(text=True)``) keep masks uncalibrated: there the gamma lowered how often the
# best-ranked mask was the instance, on both validation sets (docs/zero-shot.md).
DEFAULT_TEXT_MASK_CALIBRATION = 0.0
DEFAULT_BACKGROUND = False
DEFAULT_BACKGROUND_THRESHOLD: float | None = None
# Masks: mix in the backbone's ImageNet classifier (ConSE), with this weight on its log-probabilities
# against 1 on the dense head's; chosen on MSRC-21 val regions and a held-out COCO128 quarter.
DEFAULT_CLASSIFIER = True
DEFAULT_CLASSIFIER_WEIGHT = 1.5
# Pixels: the classifier's per-cell opinion weighs less (its cells see far beyond themselves); chosen on
# coco128 val and CamVid val pixels (docs/zero-shot.md).
DEFAULT_PIXEL_CLASSIFIER_WEIGHT = 0.5
CROPS_PER_IMAGE = 512  # mask crops whose classifier answer is kept, per cached image embedding
SHARES_KEPT = 8  # name lists whose ImageNet share a namer keeps (a text prompt adds one per phrase)

log = logging.getLogger(__name__)


class Classes(NamedTuple):
    """A list of names ready to score: unit text embeddings [K(+1), D] (the background last, if any),
    each name's cosine offset [K(+1)] and the K names as embedded ("a cup" as "cup")."""

    text: torch.Tensor
    offsets: torch.Tensor
    names: tuple[str, ...]


class Namer(VocabularyNamer):
    """Names pixels and masks with free-text names via a DenseEmbedder and its text encoder.

    Arguments:
      embedder: gives per-pixel unit embeddings and the text encoder of the same space.
      vocabulary: names, as a list or "sky, grass, cow" (cleaned with `clean_names`).
      seen: the names seen in training, whose cosine is lowered by `calibration` (calibrated stacking).
      mask_calibration: the same for naming masks (mask-pooled embeddings); default `calibration`.
      background: add the embedder's learned background embedding, if it has one, as a "none" class
        (off by default: it costs naming accuracy; text prompts use it to match nothing).
      background_threshold: a pixel or mask whose best softmax score is below this stays unnamed.
      temperature: logit = cosine / temperature; default the embedder's `temperature`, else 0.01.
      cache_size: how many image embeddings to keep (least recently used are dropped), and the classifier's
        answers for up to :data:`CROPS_PER_IMAGE` masks each.
      classifier: name masks and pixels with the help of the embedder's ImageNet classifier (its
        `backbone` with a `classify` method, as the lite embedder has); ignored for embedders without one.
      classifier_weight: weight of the classifier's log-probabilities for masks (the dense head's weighs 1).
      pixel_classifier_weight: the same for pixels (the per-cell classifier of ``DenseEmbedding.imagenet``).
      wordnet_weight: share of an ImageNet class's probability handed to the name WordNet files it under
        (:func:`~zeroseg.models.lite.imagenet.name_share`); 0 carries it over by text similarity alone.
    """

    def __init__(
        self,
        embedder: DenseEmbedder,
        vocabulary: Sequence[str] | str,
        seen: Sequence[str] = (),
        calibration: float = 0.0,
        mask_calibration: float | None = None,
        background: bool = DEFAULT_BACKGROUND,
        background_threshold: float | None = DEFAULT_BACKGROUND_THRESHOLD,
        temperature: float | None = None,
        cache_size: int = 8,
        classifier: bool = DEFAULT_CLASSIFIER,
        classifier_weight: float = DEFAULT_CLASSIFIER_WEIGHT,
        pixel_classifier_weight: float = DEFAULT_PIXEL_CLASSIFIER_WEIGHT,
        wordnet_weight: float = imagenet.WORDNET_WEIGHT,
    ) -> None:
        super().__init__(vocabulary, background_threshold)
        self.embedder = embedder
        self.seen = set(clean_names(seen))
        self.calibration = float(calibration)
        self.mask_calibration = self.calibration if mask_calibration is None else float(mask_calibration)
        if temperature is None:
            temperature = getattr(embedder, "temperature", None) or DEFAULT_TEMPERATURE
        self.temperature = float(temperature)
        learned = embedder.background() if background else None
        self.background = None if learned is None else F.normalize(learned.detach().float().cpu(), dim=0)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], DenseEmbedding] = OrderedDict()
        # the ImageNet classifier's log-probabilities of each mask named, by image and mask: a text prompt
        # names the same candidate masks once per phrase
        self._crops: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
        self._classes = self.classes(self.vocabulary)
        self._mask_classes = self.classes(self.vocabulary, self.mask_calibration)
        backbone = getattr(embedder, "backbone", None)
        self.classifier = backbone if classifier and callable(getattr(backbone, "classify", None)) else None
        self.classifier_weight = float(classifier_weight)
        self.pixel_classifier_weight = float(pixel_classifier_weight)
        self.wordnet_weight = float(wordnet_weight)
        self._transfer_text: torch.Tensor | None = None  # [1000, D] ImageNet class names, embedded lazily
        self._shares: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()  # by name list: _share

    def _vocabulary_changed(self) -> None:  # with_vocabulary: the image cache is shared, the names embedded again
        self._classes = self.classes(self.vocabulary)
        self._mask_classes = self.classes(self.vocabulary, self.mask_calibration)

    # --- embeddings -----------------------------------------------------------------------------
    def embed(self, image: Any) -> DenseEmbedding:
        """The image's dense embedding, cached by pixel content (image = path, PIL image or array)."""
        image = load_image(image)
        key = image_key(image)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        out = self.embedder.embed(image)
        cells = None if out.imagenet is None else out.imagenet.detach().float().cpu()
        embedding = DenseEmbedding(out.features.detach().float().cpu(), tuple(out.image_size), cells)
        if self.cache_size > 0:
            self._cache[key] = embedding
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embedding

    def classes(self, names: Sequence[str], calibration: float | None = None) -> Classes:
        """`names` ready to score: their unit embeddings (+ the background, last, if any) [K(+1), D] and
        the cosine offset of each: -calibration (default: the pixel calibration) for seen names, 0 otherwise."""
        gamma = self.calibration if calibration is None else calibration
        # a name is embedded by its noun ("a cup" as "cup"), and is seen when it names a seen thing ("cups")
        plain = tuple(strip_article(n) for n in names)
        text = self.embedder.text_encoder.encode(list(plain)).float().cpu()
        seen = {name_key(n) for n in self.seen}
        offsets = torch.tensor([-gamma if name_key(n) in seen else 0.0 for n in names])
        if self.background is not None:
            text = torch.cat([text, self.background[None]])
            offsets = torch.cat([offsets, offsets.new_zeros(1)])
        return Classes(text, offsets, plain)

    def logits(self, embeddings: torch.Tensor, classes: Classes) -> torch.Tensor:
        """Calibrated logits [K, ...] of unit embeddings [D, ...] against `classes` (see :meth:`classes`)."""
        text, offsets, _ = classes
        cosine = torch.tensordot(text, embeddings, dims=([1], [0]))
        return (cosine + offsets.view(-1, *([1] * (cosine.dim() - 1)))) / self.temperature

    def grid_logits(self, embedding: DenseEmbedding, classes: Classes) -> torch.Tensor:
        """Logits [K(+1), h, w] of each grid cell against `classes` (:meth:`classes`). With the classifier
        on and the embedding's per-cell ImageNet log-probabilities, the mix ``log_softmax(logits) +
        pixel_classifier_weight * log p_classifier(name)`` (log-scores whose softmax is the mixed one)."""
        logits = self.logits(embedding.features, classes)
        if self.classifier is None or embedding.imagenet is None or self.pixel_classifier_weight == 0:
            return logits
        cells = embedding.imagenet.flatten(1).T  # [h * w, 1000]
        names = self._classifier_names(cells, classes).T.reshape(logits.shape)
        return F.log_softmax(logits, dim=0) + self.pixel_classifier_weight * names

    # --- pixels ---------------------------------------------------------------------------------
    def pixel_logits(self, image: Any) -> torch.Tensor:
        """[K(+1 if background), H, W] calibrated logits at the original image size (:meth:`grid_logits`)."""
        embedding = self.embed(image)
        return resize_grid(self.grid_logits(embedding, self._classes), embedding.image_size)

    def similarity(self, image: Any, phrase: str) -> np.ndarray:
        """[H, W] float32 cosine similarity between each pixel and one phrase."""
        names = clean_names([phrase])
        if not names:
            raise PromptValueError("the phrase is empty")
        embedding = self.embed(image)
        text = self.embedder.text_encoder.encode(names).float().cpu()
        cosine = torch.tensordot(text, embedding.features, dims=([1], [0]))
        return resize_grid(cosine, embedding.image_size)[0].numpy().astype(np.float32)

    # --- masks ----------------------------------------------------------------------------------
    def mask_logits(self, image: Any, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated logits [N, K(+1 if background)] of each mask of `masks` [N, H, W] bool, and which
        masks are non-empty [N].

        The mask's embedding is the mean unit embedding of the grid cells it covers, weighted by how much
        of each it covers, re-normalised (:func:`~zeroseg.models.vl.base.pool_masks`, as in training).
        With the ImageNet classifier on, the logits are the mix of :meth:`_with_classifier` (log-scores
        whose softmax is the mixed distribution).
        """
        embedding = self.embed(image)
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != embedding.image_size:
            raise PromptShapeError(
                f"masks must be N x {embedding.image_size[0]} x {embedding.image_size[1]}, got {masks.shape}"
            )
        grid = tuple(embedding.features.shape[-2:])
        cells = embedding.features.flatten(1).T  # [h * w, D]
        logits, present = [], []
        for start in range(0, len(masks), MASK_BATCH):
            cover = mask_cover(masks[start : start + MASK_BATCH], grid).flatten(1)
            logits.append(self.logits(pool_masks(cells, cover).T, self._mask_classes).T)
            present.append(cover.amax(1) > 0)
        if not logits:
            return torch.zeros(0, len(self._mask_classes[0])), torch.zeros(0, dtype=torch.bool)
        logits_all, present_all = torch.cat(logits), torch.cat(present)
        if self.classifier is not None:
            logits_all = self._with_classifier(image, masks, logits_all, present_all)
        return logits_all, present_all

    def _with_classifier(
        self, image: Any, masks: np.ndarray, logits: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        """``log_softmax(logits) + classifier_weight * log p(name)`` of the ImageNet classifier carried
        over to the vocabulary (:func:`~zeroseg.models.lite.imagenet.transfer`); the background column, if
        any, gets the classifier's uniform share (it has no opinion on "none"). Empty masks keep the dense
        head's log-softmax alone."""
        mixed = F.log_softmax(logits, dim=1)
        nonempty = masks.reshape(len(masks), -1).any(1)
        keep = torch.from_numpy(nonempty) & present
        if not keep.any():
            return mixed
        log_probs = self._classify(load_image(image), masks[keep.numpy()])
        mixed[keep] = mixed[keep] + self.classifier_weight * self._classifier_names(log_probs, self._mask_classes)
        return mixed

    def _classify(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """ImageNet log-probabilities [N, 1000] of each mask's crop (:func:`imagenet.classify_masks`), from
        the cache for masks of this image already classified."""
        if self.cache_size <= 0:
            return imagenet.classify_masks(self.classifier, image, masks)
        image_id = image_key(image)
        keys = [(image_id, hashlib.sha1(np.packbits(m)).hexdigest()) for m in masks]
        new = [i for i, key in enumerate(keys) if key not in self._crops]
        if new:
            for i, row in zip(new, imagenet.classify_masks(self.classifier, image, masks[new])):
                self._crops[keys[i]] = row
        out = torch.stack([self._crops[key] for key in keys])
        for key in keys:
            self._crops.move_to_end(key)
        while len(self._crops) > self.cache_size * CROPS_PER_IMAGE:
            self._crops.popitem(last=False)
        return out

    def _classifier_names(self, log_probs: torch.Tensor, classes: Classes) -> torch.Tensor:
        """ImageNet log-probabilities [N, 1000] -> log-probabilities [N, K(+1)] over the names of `classes`
        (:func:`~zeroseg.models.lite.imagenet.transfer`); the background, if any, gets the uniform share
        (the classifier has no opinion on "none")."""
        count = len(classes.names)
        names = imagenet.transfer(log_probs, self._share(classes))
        if self.background is not None:
            names = torch.cat([names, names.new_full((len(names), 1), -float(np.log(count)))], 1)
        return names

    def _share(self, classes: Classes) -> torch.Tensor:
        """[1000, K]: how each ImageNet class hands its probability to the names of `classes`
        (:func:`~zeroseg.models.lite.imagenet.name_share`), kept for the last few name lists."""
        key = classes.names
        share = self._shares.get(key)
        if share is None:
            share = imagenet.name_share(
                self.transfer_text(), classes.text[: len(key)], key, wordnet_weight=self.wordnet_weight
            )
            self._shares[key] = share
            while len(self._shares) > SHARES_KEPT:
                self._shares.popitem(last=False)
        self._shares.move_to_end(key)
        return share

    def transfer_text(self) -> torch.Tensor:
        """[1000, D] unit embeddings of the ImageNet class names by the embedder's text encoder (once)."""
        if self._transfer_text is None:
            self._transfer_text = imagenet_text(self.embedder.text_encoder)
        return self._transfer_text


_IMAGENET_TEXT: dict[int, tuple[Any, torch.Tensor]] = {}


def imagenet_text(encoder: Any) -> torch.Tensor:
    """[1000, D] unit embeddings of the ImageNet class names by ``encoder``, kept for the process and
    stored in zeroseg's cache folder (``text/``), since encoding 1,000 names takes seconds."""
    held = _IMAGENET_TEXT.get(id(encoder))
    if held is not None and held[0] is encoder:
        return held[1]
    names = imagenet.imagenet_names()
    key = hashlib.sha1(
        repr((getattr(encoder, "name", type(encoder).__name__), getattr(encoder, "templates", None), names)).encode()
    ).hexdigest()[:16]
    path = None
    try:
        from zeroseg.hub import cache_dir

        path = cache_dir() / "text" / f"imagenet_{getattr(encoder, 'name', 'text')}_{key}.npy"
        text = torch.from_numpy(np.load(path)) if path.is_file() else None
    except (OSError, ValueError, EOFError):  # no cache folder, or an unreadable file: encode again
        text = None
    if text is None or text.shape[0] != len(names):
        text = encoder.encode(names).float().cpu()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, text.numpy())
            except OSError as e:
                log.debug("could not cache ImageNet name embeddings at %s: %s", path, e)
    _IMAGENET_TEXT[id(encoder)] = (encoder, text)
    return text


def resize_grid(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[K, h, w] -> [K, H, W], bilinear (align_corners=False)."""
    return F.interpolate(grid[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def load_namer(
    vocabulary: Sequence[str] | str,
    embedder: str | DenseEmbedder = "lite",
    checkpoint: str | None = None,
    calibrate: bool = DEFAULT_CALIBRATE,
    pixel_calibrate: bool = DEFAULT_PIXEL_CALIBRATE,
    text: bool = False,
    **options: Any,
) -> Namer:
    """A Namer over `vocabulary` on a registered dense embedder (default: the embedded lite head).

    By default masks are named with cosine scores from which :data:`DEFAULT_MASK_CALIBRATION` is subtracted
    for the vocabulary names the embedder was trained on (its `seen`), with no background class and no
    threshold (`options` set `background`, `background_threshold` and the rest of :class:`Namer`), and
    are also scored by the backbone's ImageNet classifier (`classifier=False` turns that off). Pixels
    (`label_pixels`) subtract the embedder's pixel gamma (`calibration`) from those names unless
    `pixel_calibrate=False`. `calibrate=True` subtracts its fitted mask gamma (`mask_calibration`) from
    their mask scores instead, as the zero-shot protocol does. `text=True` makes the namer of text prompts:
    the learned background as "none of these" (a phrase may match nothing) and
    :data:`DEFAULT_TEXT_MASK_CALIBRATION` for masks. `options` giving the gammas win.

    A concept model (SAM 3, loaded or by its registry name) as `embedder` names by finding each name's
    instances (:class:`~zeroseg.segment.concept_naming.ConceptNamer`); only `background_threshold` applies.
    """
    if isinstance(embedder, str):
        from zeroseg import hub
        from zeroseg.hub.hf import CONCEPT_FAMILIES
        from zeroseg.hub.registry import find

        entry = None if find(embedder, hub.DENSE_EMBEDDER) else find(embedder, hub.SEGMENTER)
        if getattr(getattr(entry, "builder", None), "family", None) in CONCEPT_FAMILIES:
            embedder = hub.load_model(embedder, checkpoint=checkpoint)  # a concept model (SAM 3) names too
        else:
            embedder = hub.load_dense_embedder(embedder, checkpoint=checkpoint)
    if getattr(embedder, "concepts", False):
        return ConceptNamer(embedder, vocabulary, background_threshold=options.get("background_threshold"))
    trained = {name_key(name) for name in clean_names(getattr(embedder, "seen", ()) or ())}
    options.setdefault("seen", [name for name in clean_names(vocabulary) if name_key(name) in trained])
    fitted = float(getattr(embedder, "calibration", 0.0) or 0.0)
    options.setdefault("calibration", fitted if calibrate or pixel_calibrate else 0.0)
    if calibrate:
        options.setdefault("mask_calibration", getattr(embedder, "mask_calibration", None))
    else:
        options.setdefault("mask_calibration", DEFAULT_TEXT_MASK_CALIBRATION if text else DEFAULT_MASK_CALIBRATION)
    options.setdefault("background", DEFAULT_BACKGROUND)
    if text:  # a phrase may match nothing: the learned background is its "none of these"
        options["background"] = True
    options.setdefault("background_threshold", DEFAULT_BACKGROUND_THRESHOLD)
    options.setdefault("classifier", DEFAULT_CLASSIFIER)
    return Namer(embedder, vocabulary, **options)
