"""A box's mask chosen among the decoder's four outputs by how it fits the box."""
from __future__ import annotations

import numpy as np
import pytest

from zeroseg.segment.box_choice import box_fit_scores, centre_click, chooses

BOX = (20, 20, 79, 79)  # 60 x 60 pixels in a 100 x 100 image


def masks_for_box() -> dict[str, np.ndarray]:
    def empty() -> np.ndarray:
        return np.zeros((100, 100), bool)

    obj, surroundings, sliver, spill = empty(), empty(), empty(), empty()
    obj[30:75, 25:70] = True  # the object: well inside the box
    surroundings[20:80, 20:80] = True
    surroundings[30:75, 25:70] = False  # the box's background: along its inner border
    sliver[40:42, 40:42] = True  # almost nothing of the box
    spill[0:100, 0:100] = True  # the box and everything around it
    return {"object": obj, "surroundings": surroundings, "sliver": sliver, "spill": spill}


def test_the_object_beats_the_boxs_surroundings_a_sliver_and_a_spill() -> None:
    masks = masks_for_box()
    for other in ("surroundings", "sliver", "spill"):
        stack = np.stack([masks[other], masks["object"]])
        scores = np.array([0.9, 0.6])  # the other one has the higher predicted IoU
        fit = box_fit_scores(stack, scores, BOX, single=0)
        assert np.argmax(fit) == 1, other


def test_the_single_output_wins_a_tie_and_scores_decide_between_fits() -> None:
    obj = masks_for_box()["object"]
    stack = np.stack([obj, obj])
    assert np.argmax(box_fit_scores(stack, np.array([0.5, 0.5]), BOX, single=1)) == 1
    assert np.argmax(box_fit_scores(stack, np.array([0.5, 0.8]), BOX, single=0)) == 1


def test_a_box_past_the_image_edge_is_clipped() -> None:
    obj = masks_for_box()["object"]
    fit = box_fit_scores(obj[None], np.array([0.7]), (-50, -50, 500, 500))
    assert fit.shape == (1,) and np.isfinite(fit).all()
    assert fit[0] == pytest.approx(0.7 + 0.1)  # nothing on the (clipped) border, nothing outside, not tiny


def test_only_a_large_box_is_chosen_for() -> None:
    assert chooses((0, 0, 50, 50), (100, 100)) and not chooses((0, 0, 40, 40), (100, 100))


def test_a_small_box_gets_a_click_at_its_centre() -> None:
    np.testing.assert_array_equal(centre_click((10, 20, 18, 30), (100, 100)), [[14, 25]])
    assert centre_click((0, 0, 10, 10), (100, 100)) is None  # 1% of the image: no longer small
