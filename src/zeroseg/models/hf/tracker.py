"""SAM 3's tracker (``Sam3TrackerModel``: clicks, boxes and masks on SAM 3's image encoder).

It decodes like SAM 2 (:class:`~zeroseg.models.hf.sam2.Sam2Adapter`) on a 1008 x 1008 image with
mean and std 0.5 (``Sam3ImageProcessor``, Meta's SAM 3 ``SAM2Transforms``); its low-resolution
masks are 288 x 288.
"""
from __future__ import annotations

from zeroseg.models.hf.common import HALF, ImageSpec
from zeroseg.models.hf.sam2 import SAM2_PRESET

SAM3_TRACKER_SPEC = ImageSpec(side=1008, mean=HALF, std=HALF)
"""``Sam3ImageProcessor``: 1008 x 1008, mean and std 0.5."""

SAM3_TRACKER_PRESET = SAM2_PRESET
"""Segment everything with SAM 3's tracker: SAM 2's automatic mask generator defaults (SAM 3 ships
no generator of its own for clicks)."""
