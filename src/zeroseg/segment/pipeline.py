"""Segment everything -> filter -> name: the one composition that the CLI, the demo, the data engine
(local and Ray) and the app's proposals all call, so the same image and settings give the same
:class:`~zeroseg.segment.record.Segment` records everywhere.

Settings are a :class:`~zeroseg.preset.Preset`: the model's own (``hub.load_model`` stamps it) with
single fields overridden by the caller's flags.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from zeroseg.hub import preset_of
from zeroseg.io import load_image
from zeroseg.preset import Preset
from zeroseg.segment.mask_generator import MaskGenerator
from zeroseg.segment.naming import Namer, load_namer
from zeroseg.segment.predictor import Predictor
from zeroseg.segment.record import Segment


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
