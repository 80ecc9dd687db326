"""Promptable segmentation on top of a SAM-interface model: embed once, prompt many, segment everything."""
from zeroseg.segment.mask_generator import MaskGenerator
from zeroseg.segment.naming import Namer
from zeroseg.segment.predictor import Predictor
from zeroseg.segment.text_prompt import text_to_masks

__all__ = ["MaskGenerator", "Namer", "Predictor", "text_to_masks"]
