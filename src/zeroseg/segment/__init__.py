"""Promptable segmentation on top of a SAM-interface model: embed once, prompt many, segment everything.

The public classes are imported on first use, so that :mod:`zeroseg.segment.record` (the
:class:`Segment` record, which the data engine reads and writes) does not load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY_EXPORTS = {
    "MaskGenerator": "zeroseg.segment.mask_generator",
    "Namer": "zeroseg.segment.naming",
    "Predictor": "zeroseg.segment.predictor",
    "Segment": "zeroseg.segment.record",
    "text_to_masks": "zeroseg.segment.text_prompt",
}

__all__ = list(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'zeroseg.segment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_EXPORTS])
