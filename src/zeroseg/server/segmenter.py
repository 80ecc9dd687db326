"""The model side of the app: one model, one Predictor, every torch call serialised by one lock.

Images are embedded once and the embeddings cached (by the Predictor, keyed by pixel content), so
a click costs only the prompt encoder and mask decoder. Each prediction's candidates are kept for
a while under short ids, so the page can accept one, or refine the next prediction with its
low-resolution logits, without sending masks back.

The decoder runs on one thread: its tensors are small, so a second thread saves little, and on a
busy machine the spin-waiting of torch's thread pool turns a 20 ms decode into hundreds of
milliseconds (measured on the 2-core CI box: median 20 ms on one thread, 50 ms median and 1.4 s
p90 on two while another process was busy). Embedding keeps every thread.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zeroseg import hub
from zeroseg.errors import NotFoundError, PromptValueError, ZerosegError
from zeroseg.io import load_image, masks_to_rles
from zeroseg.segment import Namer, Predictor
from zeroseg.segment.concept import is_concept_model
from zeroseg.segment.pipeline import Everything
from zeroseg.segment.record import Segment
from zeroseg.segment.zoom import Box, ZoomSettings, choose_crop, first_look, is_first_click, predict_in_crop

DECODE_THREADS = 1
CANDIDATES_KEPT = 64  # each holds a 256x256 float32 logit map (256 kB)
IMAGES_KEPT = 4  # decoded images kept for naming and re-embedding


class ConceptModelError(ZerosegError, ValueError):
    """Clicks or segment-everything asked of a concept model, which takes only concept prompts."""

    exit_code = 2
    http_status = 400


@dataclass(frozen=True)
class Candidate:
    """One mask of one prediction, as the page sees it, plus the logits that refine it.

    ``segment`` is the mask as a :class:`~zeroseg.segment.record.Segment`: its predicted IoU, the
    prompt that made it, source "assisted" and the model's name and version.
    """

    id: str
    image_id: int
    segment: Segment
    low_res: np.ndarray = field(repr=False)  # 1 x h x w logits, the Predictor's mask_input format
    crop: Box | None = None  # the part of the photo the model saw (Zoom-In), None: the whole photo

    @property
    def rle(self) -> dict[str, Any]:
        return self.segment.rle

    @property
    def score(self) -> float:
        return self.segment.predicted_iou  # type: ignore[return-value]

    @property
    def area(self) -> int:
        return int(self.segment.area)  # type: ignore[arg-type]

    @property
    def bbox(self) -> list[float]:
        return list(self.segment.bbox)  # type: ignore[arg-type]


class Segmenter:
    """Embeds images and predicts masks from clicks and boxes for the web app.

    Arguments:
      model: a registered model name (loaded on first use) or a built SAM-interface model.
      lock: the lock every torch call of the app takes (re-entrant: callers may hold it already).
      cache_size: image embeddings the Predictor keeps.
      graph_cut: GrabCut the candidates around their boundaries (:class:`~zeroseg.segment.Predictor`'s
        ``graph_cut``); None: the model's preset (on for lite, whose cut fits the click loop's budget).
      zoom_in: answer clicks after an object's first one, and boxes, in a crop around the object
        (:mod:`zeroseg.segment.zoom`); a candidate remembers its crop for the clicks that refine it.
        None: the model's preset (on for lite).
      first_look: with Zoom-In, also answer an object's first click in a crop around it when the
        object fits there (:func:`~zeroseg.segment.zoom.first_look`): better first masks of small
        objects, but the click pays a crop's embedding, so it is off unless asked for.
    """

    def __init__(
        self,
        model: str | nn.Module = hub.DEFAULT_MODEL,
        lock: threading.RLock | None = None,
        cache_size: int = 8,
        graph_cut: bool | None = None,
        zoom_in: bool | None = None,
        first_look: bool = False,
    ) -> None:
        if isinstance(model, str):
            self.model_name = hub.get(model).name
            self._model: nn.Module | None = None
        else:
            self.model_name = getattr(model, "name", None) or type(model).__name__
            self._model = model
        self.lock = lock or threading.RLock()
        self.cache_size = cache_size
        self.graph_cut = graph_cut
        self.zoom_in = zoom_in
        self.first_look = first_look
        self.zoom: ZoomSettings | None = None  # set when the model loads
        self._predictor: Predictor | None = None
        self._current: int | None = None  # image id whose embedding the Predictor holds
        self._pixels: OrderedDict[int, np.ndarray] = OrderedDict()
        self._candidates: OrderedDict[str, Candidate] = OrderedDict()
        self._ids = itertools.count(1)

    @property
    def predictor(self) -> Predictor:
        return self.load()

    def model(self) -> nn.Module:
        """The model, loaded on first use."""
        with self.lock:
            if self._model is None:
                self._model = hub.load_model(self.model_name)
            return self._model

    @property
    def concepts(self) -> bool:
        """Whether the model takes concept prompts (SAM 3: text and exemplar boxes, no clicks)."""
        return is_concept_model(self.model())

    def load(self) -> Predictor:
        """The Predictor, loading the model on first use (a concept model has none: ConceptModelError)."""
        with self.lock:
            if self._predictor is None:
                model = self.model()
                if is_concept_model(model):
                    raise ConceptModelError(
                        f"{self.model_name} is a concept model: it finds every instance of a class or of exemplar "
                        "boxes (POST /api/images/{id}/concept), not masks for clicks; serve a promptable model "
                        "(e.g. sam3_tracker) to click"
                    )
                # the page shows the best-scored candidate first: only that one is cut, so it shows sooner
                self._predictor = Predictor(
                    model, cache_size=self.cache_size, graph_cut=self.graph_cut, cut_alternatives=False
                )
                zoom_in = getattr(model, "zoom_in", False) if self.zoom_in is None else self.zoom_in
                self.zoom = ZoomSettings(first_look=self.first_look) if zoom_in else None
            return self._predictor

    # --- images ---------------------------------------------------------------------------
    def pixels(self, image_id: int, file: Path) -> np.ndarray:
        """The decoded RGB image (a few recent ones are kept)."""
        with self.lock:
            cached = self._pixels.get(image_id)
            if cached is None:
                cached = self._pixels[image_id] = load_image(file)
                while len(self._pixels) > IMAGES_KEPT:
                    self._pixels.popitem(last=False)
            self._pixels.move_to_end(image_id)
            return cached

    def embed(self, image_id: int, file: Path) -> float:
        """Make ``image_id`` the current image, embedding it unless cached; returns the seconds taken."""
        start = time.perf_counter()
        with self.lock:
            if self._current != image_id:
                self._current = None
                self.predictor.set_image(self.pixels(image_id, file))
                self._current = image_id
        return time.perf_counter() - start

    # --- prediction -----------------------------------------------------------------------
    def predict(
        self,
        image_id: int,
        file: Path,
        points: Sequence[tuple[float, float, int]] = (),
        box: Sequence[float] | None = None,
        mask_input: str | None = None,
        prior: np.ndarray | None = None,
        multimask: bool = True,
    ) -> list[Candidate]:
        """Candidates for one prompt, best predicted IoU first.

        ``mask_input`` names an earlier candidate of this image whose logits guide the decoder;
        ``prior`` is a bool HxW mask (a stored annotation) used the same way when no candidate is given.
        """
        if not points and box is None and mask_input is None and prior is None:
            raise PromptValueError("a prediction needs at least one point, a box or a mask to refine")
        with self.lock:
            self.embed(image_id, file)
            predictor = self.predictor
            earlier = self.candidate(mask_input, image_id) if mask_input else None
            logits = earlier.low_res if earlier is not None else None
            coords = np.array([p[:2] for p in points], dtype=np.float64) if points else None
            labels = np.array([p[2] for p in points], dtype=np.int64) if points else None
            first = self.zoom is not None and self.zoom.first_look and is_first_click(
                labels, box, earlier is not None or prior is not None
            )
            if first:  # a new object's first click, looked at close up first (Zoom-In's first look)
                self._current = None  # the Predictor may end up holding the crop
                # all threads: the crop's embedding is most of the time
                crop, masks, scores, low_res = first_look(
                    predictor, self.pixels(image_id, file), coords, labels, self.zoom, multimask
                )
                if crop is None:
                    self._current = image_id  # the whole photo answered
            else:
                crop, shown, pixels = None, prior, None  # shown: the mask that guides when no logits do
                if self.zoom is not None:
                    shown = earlier.segment.mask if earlier is not None else prior
                    pixels = self.pixels(image_id, file)
                    current = earlier.crop if earlier is not None else None
                    crop = choose_crop(pixels.shape, shown, coords, box, current, self.zoom)
                    if crop != current:  # another frame: the earlier mask guides instead of its logits
                        logits = None
                if crop is not None:
                    self._current = None  # the Predictor is about to hold the crop
                with torch_threads(DECODE_THREADS):
                    masks, scores, low_res = predict_in_crop(
                        predictor, pixels, crop, coords, labels, box, logits, None if logits is not None else shown,
                        multimask,
                    )  # fmt: skip
            order = np.argsort(-scores, kind="stable")
            rles = masks_to_rles(masks[order])
            prompt: dict[str, Any] = {}
            if points:
                prompt["points"] = [[float(x), float(y), float(label)] for x, y, label in points]
            if box is not None:
                prompt["box"] = [float(v) for v in box]
            made_by = {"source": "assisted", "model_name": self.model_name,
                       "model_version": getattr(predictor.model, "version", None)}  # fmt: skip
            made = [
                Candidate(
                    f"c{next(self._ids)}",
                    image_id,
                    Segment(rle, predicted_iou=float(scores[i]), prompt=dict(prompt), **made_by),
                    low_res[i : i + 1].copy(),
                    crop,
                )
                for rle, i in zip(rles, order)
            ]
            for candidate in made:
                self._candidates[candidate.id] = candidate
            while len(self._candidates) > CANDIDATES_KEPT:
                self._candidates.popitem(last=False)
            return made

    def everything(self, namer: Namer | None = None, **overrides: Any) -> Everything:
        """The app's segment-everything pipeline: its model and embedding cache, the model's preset
        with ``overrides`` (None values keep the preset's). Run it with the lock held, then
        :meth:`forget_image`."""
        predictor = self.predictor
        return Everything(predictor, hub.preset_of(predictor.model).override(**overrides), namer)

    def forget_image(self) -> None:
        """After other work moved the Predictor to another image, the next click sets its image again
        (a cache hit)."""
        with self.lock:
            self._current = None

    def candidate(self, candidate_id: str, image_id: int) -> Candidate:
        """A recent candidate of ``image_id``; NotFoundError once it has been forgotten."""
        with self.lock:
            found = self._candidates.get(candidate_id)
        if found is None or found.image_id != image_id:
            raise NotFoundError(f"no candidate {candidate_id!r} for image {image_id} (predict again)")
        return found


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with at most ``count`` intra-op threads (call with the app's lock held)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(count, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)
