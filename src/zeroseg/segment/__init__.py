"""Promptable segmentation on top of a SAM-interface model: embed once, prompt many, segment everything."""
from zeroseg.segment.mask_generator import MaskGenerator
from zeroseg.segment.predictor import Predictor

__all__ = ["MaskGenerator", "Predictor"]
