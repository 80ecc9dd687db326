"""zeroseg: segment anything, name anything."""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public classes, imported on first use so that `import zeroseg` does not load torch.
_LAZY_EXPORTS = {
    "Everything": "zeroseg.segment.pipeline",
    "Preset": "zeroseg.preset",
    "load_model": "zeroseg.hub",
    "Predictor": "zeroseg.segment.predictor",
    "MaskGenerator": "zeroseg.segment.mask_generator",
    "Namer": "zeroseg.segment.naming",
    "Segment": "zeroseg.segment.record",
    "load_namer": "zeroseg.segment.naming",
    "label_pixels": "zeroseg.segment.pipeline",
    "text_to_masks": "zeroseg.segment.text_prompt",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'zeroseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_EXPORTS])
