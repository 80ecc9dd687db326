"""Segment everything -> filter -> name: the one composition that the CLI, the demo, the data engine
(local and Ray) and the app's proposals all call, so the same image and settings give the same
:class:`~zeroseg.segment.record.Segment` records everywhere.

Settings are a :class:`~zeroseg.preset.Preset`: the model's own (``hub.load_model`` stamps it) with
single fields overridden by the caller's flags.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from zeroseg.hub import preset_of
from zeroseg.io import image_key, load_image
from zeroseg.preset import Preset
from zeroseg.segment.mask_generator import MaskGenerator
from zeroseg.segment.naming import Namer, load_namer
from zeroseg.segment.predictor import Predictor
from zeroseg.segment.record import Segment

# Proposals: a lighter segment-everything pass (no crops) whose masks text prompts name as candidates and
# pixel labels take names from; the last PROPOSAL_CACHE images' are kept.
PROPOSAL_POINTS_PER_SIDE = 16
PROPOSAL_CACHE = 4


class Everything:
    """Segment everything in an image, keep the good distinct masks, name them.

    Arguments:
      model: a model from ``hub.load_model`` (or any SAM-interface model), or a :class:`Predictor`
        to share its embedding cache (e.g. the app's).
      settings: the preset to run; default the model's own (:func:`zeroseg.hub.preset_of`).
      namer: names the masks (None: they stay unnamed).
      progress: show a progress bar over point batches.
      source: provenance recorded on every segment.
    """

    def __init__(
        self,
        model: nn.Module | Predictor,
        settings: Preset | None = None,
        namer: Namer | None = None,
        *,
        progress: bool = False,
        source: str = "auto",
    ) -> None:
        self.predictor = model if isinstance(model, Predictor) else Predictor(model)
        sam = self.predictor.model
        self.settings = settings or preset_of(sam)
        self.namer = namer
        self.source = source
        self.model_name: str | None = getattr(sam, "name", None)
        self.model_version: str | None = getattr(sam, "version", None)
        self.generator = MaskGenerator(
            self.predictor, output_mode="coco_rle", progress=progress, **self.settings.generator_options()
        )

    def __call__(self, image: Any) -> list[Segment]:
        """The image's segments, best predicted IoU first (ties: stability), named if there is a namer."""
        image = load_image(image)
        settings = self.settings
        records = [r for r in self.generator.generate(image) if r["area"] >= max(settings.min_area, 1)]
        records.sort(key=lambda r: (-r["predicted_iou"], -r["stability_score"]))
        if settings.max_masks is not None:
            records = records[: settings.max_masks]
        provenance = {"source": self.source, "model_name": self.model_name, "model_version": self.model_version}
        segments = [Segment.from_sam_dict(r, **provenance) for r in records]
        if self.namer is not None:
            self.namer.name_segments(image, segments)
        return segments


def namer_for(names: Sequence[str] | str, settings: Preset, embedder: Any = None, **options: Any) -> Namer:
    """A Namer over ``names`` with the preset's naming settings (embedder, background, calibration);
    ``embedder`` (a loaded one, to share it) and ``options`` (``load_namer``'s, e.g. ``text=True`` for text
    prompts) override them."""
    options.setdefault("background", settings.background)
    options.setdefault("background_threshold", settings.background_threshold)
    options.setdefault("calibrate", settings.calibrate)
    return load_namer(names, settings.embedder if embedder is None else embedder, **options)


_PROPOSALS: OrderedDict[tuple[Any, ...], tuple[weakref.ref, list[Segment], np.ndarray]] = OrderedDict()


def proposals(image: Any, predictor: Predictor, progress: bool = False) -> tuple[list[Segment], np.ndarray]:
    """The image's segment-everything masks at the model's preset with :data:`PROPOSAL_POINTS_PER_SIDE`
    points a side and no crops, as segments and stacked [N, H, W] bool; the last :data:`PROPOSAL_CACHE`
    images' are kept, so that the phrases typed on one photo, and its pixel labels, segment it once
    (``progress``: a progress bar while it segments)."""
    image = load_image(image)
    model = predictor.model
    key = (image_key(image), id(model), predictor.refine_edges)
    cached = _PROPOSALS.get(key)
    if cached is not None and cached[0]() is model:
        _PROPOSALS.move_to_end(key)
        return cached[1], cached[2]
    settings = preset_of(model).override(points_per_side=PROPOSAL_POINTS_PER_SIDE, crop_n_layers=0)
    found = Everything(predictor, settings, progress=progress)(image)
    predictor.set_image(image)  # the generator leaves the predictor on its last crop
    masks = np.stack([s.mask for s in found]) if found else np.zeros((0, *image.shape[:2]), bool)
    _PROPOSALS[key] = (weakref.ref(model), found, masks)
    while len(_PROPOSALS) > PROPOSAL_CACHE:
        _PROPOSALS.popitem(last=False)
    return found, masks


def label_pixels(image: Any, namer: Namer, predictor: Predictor | None = None, progress: bool = False) -> np.ndarray:
    """[H, W] index into ``namer.vocabulary`` (-1: none) of every pixel; with a ``predictor``, pixels also
    take the names of the image's :func:`proposals` that cover them (``Namer.segment_pixel_logits``), so
    the label map follows whole things rather than each grid cell's guess."""
    image = load_image(image)
    if predictor is None:
        return namer.label_pixels(image)
    return namer.label_pixels(image, proposals(image, predictor, progress)[1])
