"""Thin adapters over the promptable SAM-family models of ``transformers``: SAM 2.1, EdgeTAM, SAM-HQ
and SAM 3's tracker, driven by zeroseg's Predictor and mask generator.

The models run as transformers defines them (their own ``get_image_embeddings`` and ``forward``);
zeroseg does the pre- and post-processing their torchvision-based processors would
(:mod:`zeroseg.models.hf.common`). :func:`build_hf_segmenter` loads one from a folder in the Hugging
Face layout (``config.json`` + safetensors, as ``save_pretrained`` writes).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zeroseg.errors import CheckpointMismatchError, ConfigError, ModelError, WeightsNotFoundError
from zeroseg.models.hf.adapter import Embedding, PromptableAdapter
from zeroseg.models.hf.common import ImageSpec
from zeroseg.models.hf.sam2 import EDGETAM_PRESET, SAM2_PRESET, SAM2_SPEC, Sam2Adapter
from zeroseg.models.hf.sam_hq import SAM_HQ_PRESET, SAM_HQ_SPEC, SamHQAdapter
from zeroseg.models.hf.tracker import SAM3_TRACKER_PRESET, SAM3_TRACKER_SPEC
from zeroseg.preset import Preset

__all__ = [
    "EDGETAM_PRESET",
    "FAMILIES",
    "SAM2_PRESET",
    "SAM3_TRACKER_PRESET",
    "SAM_HQ_PRESET",
    "Embedding",
    "PromptableAdapter",
    "Sam2Adapter",
    "SamHQAdapter",
    "build_hf_segmenter",
    "preset_for",
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Family:
    model_class: str  # the transformers class
    adapter: type[PromptableAdapter]
    spec: ImageSpec
    preset: Preset
    model_types: frozenset[str]  # config.json model_type values it loads


FAMILIES: dict[str, Family] = {
    "sam2": Family("Sam2Model", Sam2Adapter, SAM2_SPEC, SAM2_PRESET, frozenset({"sam2", "sam2_video"})),
    "edgetam": Family("EdgeTamModel", Sam2Adapter, SAM2_SPEC, EDGETAM_PRESET, frozenset({"edgetam", "edgetam_video"})),
    "sam_hq": Family("SamHQModel", SamHQAdapter, SAM_HQ_SPEC, SAM_HQ_PRESET, frozenset({"sam_hq"})),
    "sam3_tracker": Family(
        "Sam3TrackerModel",
        Sam2Adapter,
        SAM3_TRACKER_SPEC,
        SAM3_TRACKER_PRESET,
        frozenset({"sam3_tracker", "sam3_tracker_video", "sam3_video", "sam3"}),
    ),
}


def preset_for(family: str) -> Preset:
    """The segment-everything preset of a family."""
    return _family(family).preset


def build_hf_segmenter(
    family: str,
    folder: str | Path,
    dtype: str = "float32",
    device: str | torch.device | None = None,
    compile: bool = False,
) -> PromptableAdapter:
    """Load a ``family`` model ("sam2" for SAM 2.1, "edgetam", "sam_hq", "sam3_tracker") from
    ``folder`` (Hugging Face layout) with ``dtype`` weights ("float32", or "bfloat16" to opt in),
    PyTorch's scaled-dot-product attention, in eval mode; returns its Predictor-facing adapter, with
    the family's ``preset``. ``compile``: its prompt path compiled and warmed up
    (:meth:`PromptableAdapter.compile_prompts`)."""
    spec = _family(family)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    folder = Path(folder).expanduser()
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WeightsNotFoundError(
            f"{folder} is not a model folder in the Hugging Face layout (no config.json): give the folder "
            "that save_pretrained wrote or a downloaded repository snapshot"
        )
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError) as err:
        raise ConfigError(f"{config_path} cannot be read: {err}") from err
    if model_type not in spec.model_types:
        raise ConfigError(
            f"{folder} holds a {model_type!r} model, not a {family} one (expected model_type "
            f"{' or '.join(sorted(spec.model_types))})"
        )
    if family == "edgetam" and importlib.util.find_spec("timm") is None:
        raise ModelError(
            "EdgeTAM's image encoder (RepViT) comes from the timm package, which is not installed "
            "(timm needs torchvision, which zeroseg does not use)"
        )
    model_class = getattr(importlib.import_module("transformers"), spec.model_class)
    hf_logging = importlib.import_module("transformers.utils.logging")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every load
    try:
        model, info = model_class.from_pretrained(
            folder, dtype=DTYPES[dtype], attn_implementation="sdpa", output_loading_info=True
        )
    except OSError as err:
        raise WeightsNotFoundError(f"{folder}: {err}") from err
    except (RuntimeError, ValueError) as err:
        raise CheckpointMismatchError(f"{folder} does not load as {spec.model_class}: {err}") from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointMismatchError(f"{folder} lacks weights of {spec.model_class}: {shown}")
    adapter = spec.adapter(model, spec.spec.with_processor_config(folder), family)
    adapter.preset = spec.preset
    if device is not None:
        adapter.to(device)
    if compile:
        adapter.compile_prompts()
    return adapter


def _family(family: str) -> Family:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ConfigError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}") from None
