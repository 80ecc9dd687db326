"""Evaluation: the interactive click protocol (NoC@85/90) and its classical baseline."""
from zeroseg.eval.clicks import Click, next_click, sample_training_clicks
from zeroseg.eval.interactive import (
    InteractiveDataset,
    InteractiveModel,
    InteractiveSample,
    PredictorModel,
    evaluate,
    load_interactive_dataset,
    mask_iou,
)

__all__ = [
    "Click",
    "InteractiveDataset",
    "InteractiveModel",
    "InteractiveSample",
    "PredictorModel",
    "evaluate",
    "load_interactive_dataset",
    "mask_iou",
    "next_click",
    "sample_training_clicks",
]
