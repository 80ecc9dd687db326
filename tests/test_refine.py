"""Edge refinement: boundaries move onto colour edges; the lite model uses it, SAM does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from zeroseg import hub
from zeroseg.segment import Predictor
from zeroseg.segment.refine import EdgeRefiner


def _two_colour_image(edge: int, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    image = np.zeros((*size, 3), np.uint8)
    image[:, :edge] = (200, 40, 30)
    image[:, edge:] = (30, 60, 190)
    return image


@pytest.mark.parametrize("offset", [3, -3])
def test_a_coarse_boundary_moves_onto_the_colour_edge(offset):
    image = _two_colour_image(edge=40)
    truth = np.zeros(image.shape[:2], bool)
    truth[:, :40] = True
    # A smooth boundary 3 pixels off the edge, as bilinear upscaling of coarse logits draws it.
    x = np.arange(image.shape[1], dtype=np.float32)
    logits = torch.from_numpy(np.tile((40.0 + offset - x) / 2.0, (image.shape[0], 1)))[None]
    refined = EdgeRefiner(image, radius=8)(logits)
    assert refined.shape == logits.shape and refined.dtype == logits.dtype
    assert ((logits[0] > 0).numpy() != truth).sum() == 3 * image.shape[0]
    assert ((refined[0] > 0).numpy() != truth).sum() == 0


def test_flat_regions_keep_the_input_decision():
    image = np.full((40, 50, 3), 128, np.uint8)
    logits = torch.full((2, 40, 50), -3.0)
    logits[0, 10:30, 10:40] = 3.0
    refined = EdgeRefiner(image)(logits)
    assert torch.equal(refined[1] > 0, logits[1] > 0)
    inside = refined[0, 15:25, 15:35]
    assert bool((inside > 0).all())


def test_refiner_checks_sizes():
    refiner = EdgeRefiner(_two_colour_image(edge=10))
    with pytest.raises(ValueError, match="do not match"):
        refiner(torch.zeros(1, 10, 10))
    with pytest.raises(ValueError, match="HxWx3"):
        EdgeRefiner(np.zeros((5, 5), np.uint8))


def test_lite_predictor_refines_by_default_and_can_be_switched_off():
    model = hub.load_model("lite")  # its preset turns edge refinement on
    assert model.refine_edges
    image = skimage_data.chelsea()
    point, label = np.array([[300.0, 150.0]]), np.array([1])
    outputs = []
    for refine in (False, None):
        predictor = Predictor(model, refine_edges=refine)
        predictor.set_image(image)
        outputs.append(predictor.predict(point, label, return_logits=True))
    (raw, raw_scores, raw_low_res), (refined, scores, low_res) = outputs
    assert refined.shape == raw.shape and refined.dtype == raw.dtype
    np.testing.assert_array_equal(scores, raw_scores)  # only the full-size masks change
    np.testing.assert_array_equal(low_res, raw_low_res)
    changed = (refined > 0) != (raw > 0)
    assert 0 < changed.mean() < 0.05  # boundaries move, the object stays
