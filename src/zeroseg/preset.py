"""`Preset`: a model's inference defaults, kept with its registry entry (``hub.ModelEntry.preset``).

Every face (CLI, demo, data engine, app) starts from the preset of the model it runs and lets flags
override single fields, so no face keeps numbers of its own for a model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from zeroseg.errors import PromptValueError


@dataclass(frozen=True)
class Preset:
    """Segment-everything, refinement and naming defaults of one model.

    Segment everything (as ``MaskGenerator``):
      points_per_side: grid of N x N point prompts.
      points_per_batch: prompts decoded together (memory vs speed; results do not change).
      pred_iou_thresh: keep masks whose predicted IoU is above this.
      stability_score_thresh: keep masks whose stability score is at least this.
      stability_score_offset: logit offset of the stability score.
      box_nms_thresh: box IoU above which the lower-scored of two masks is dropped.
      min_area: fill holes and remove islands smaller than this many pixels, then drop smaller masks.
      max_masks: keep at most this many masks per image, best first (None: all).
      crop_n_layers: extra layers of overlapping zoomed-in crops (layer i: (2**i)**2 crops), which
        find the smaller parts a whole-image pass misses.
      crop_points_downscale: layer i uses points_per_side / crop_points_downscale**i points a side.
    Refinement (on the model, read by ``Predictor``):
      refine_edges: snap upscaled masks to image edges.
      graph_cut: GrabCut interactive masks around their boundaries.
      zoom_in: answer an object's later clicks and boxes in a crop around it (``zeroseg.segment.zoom``;
        read by the app and the interactive evaluation).
      box_choice: answer a large box with whichever of the decoder's outputs fits it best, not always its
        single-mask output, and a small box together with a click at its centre (``zeroseg.segment.box_choice``).
    Naming (as ``load_namer``):
      embedder: dense vision-language embedder that names masks and pixels.
      background: let the embedder's learned background leave a mask or pixel unnamed ("none of these").
      background_threshold: a mask or pixel whose best name scores below this stays unnamed.
      calibrate: calibrated stacking against names seen in training with the embedder's fitted gamma (the
        zero-shot protocol's device); off, masks take ``naming.DEFAULT_MASK_CALIBRATION``.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_area: int = 0
    max_masks: int | None = None
    crop_n_layers: int = 0
    crop_points_downscale: int = 1
    refine_edges: bool = False
    graph_cut: bool = False
    zoom_in: bool = False
    box_choice: bool = False
    embedder: str = "lite"
    background: bool = False
    background_threshold: float | None = None
    calibrate: bool = False

    def __post_init__(self) -> None:
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise PromptValueError("points_per_side and points_per_batch must be at least 1")
        if self.crop_n_layers < 0 or self.crop_points_downscale < 1:
            raise PromptValueError("crop_n_layers must not be negative and crop_points_downscale must be at least 1")
        if self.min_area < 0 or (self.max_masks is not None and self.max_masks < 0):
            raise PromptValueError("min_area and max_masks must not be negative")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise PromptValueError(f"{name} must lie in [0, 1], got {value}")
        if self.background_threshold is not None and not 0.0 <= self.background_threshold <= 1.0:
            raise PromptValueError(f"background_threshold must lie in [0, 1], got {self.background_threshold}")

    def override(self, **changes: Any) -> Preset:
        """A copy with the given fields changed; None values (a flag not given) keep the preset's."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise PromptValueError(f"unknown preset setting(s) {unknown}; known: {sorted(known)}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def generator_options(self) -> dict[str, Any]:
        """Keyword arguments of ``MaskGenerator`` for this preset."""
        return {
            "points_per_side": self.points_per_side,
            "points_per_batch": self.points_per_batch,
            "pred_iou_thresh": self.pred_iou_thresh,
            "stability_score_thresh": self.stability_score_thresh,
            "stability_score_offset": self.stability_score_offset,
            "box_nms_thresh": self.box_nms_thresh,
            "min_mask_region_area": self.min_area,
            "crop_n_layers": self.crop_n_layers,
            "crop_n_points_downscale_factor": self.crop_points_downscale,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SAM = Preset()
"""The reference ``SamAutomaticMaskGenerator`` defaults, for Meta's SAM checkpoints."""

SAM2 = Preset(pred_iou_thresh=0.8)
"""Meta's ``SAM2AutomaticMaskGenerator`` defaults (32 x 32 points, 64 a batch, predicted IoU > 0.8,
stability >= 0.95 at offset 1, box NMS 0.7, no crops, no small-region removal), for SAM 2.1, EdgeTAM
and SAM 3's tracker."""
