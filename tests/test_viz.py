"""Overlays: masks coloured distinctly (small ones on top), contours, prompts drawn where they are."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zeroseg import viz


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((60, 80, 3), 100, np.uint8)
    big = np.zeros((60, 80), bool)
    big[5:55, 5:60] = True
    small = np.zeros((60, 80), bool)
    small[20:30, 20:30] = True
    return image, np.stack([big, small])


def test_colors_are_distinct() -> None:
    colors = viz.mask_colors(12)
    assert colors.shape == (12, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 12
    assert viz.mask_colors(0).shape == (0, 3)


def test_masks_are_blended_and_small_masks_stay_on_top(scene) -> None:
    image, masks = scene
    out = np.asarray(viz.overlay(image, masks, alpha=0.5))
    colors = viz.mask_colors(2).astype(float)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[58, 75], image[58, 75])  # outside every mask: untouched
    np.testing.assert_allclose(out[40, 40], (100 + colors[0]) / 2, atol=1)  # inside the big mask only
    np.testing.assert_allclose(out[25, 25], (100 + colors[1]) / 2, atol=1)  # the small one wins
    np.testing.assert_array_equal(out[20, 25], colors[1].round())  # its contour, opaque
    np.testing.assert_array_equal(out[5, 30], colors[0].round())


def test_prompts_and_captions_are_drawn(scene) -> None:
    image, masks = scene
    out = np.asarray(
        viz.overlay(
            Image.fromarray(image), masks, labels=["cat", "eye"], scores=[0.9, 0.8],
            points=[[70, 10, 1], [70, 50, 0]], boxes=[[2, 2, 62, 57]],
        )
    )
    np.testing.assert_array_equal(out[10, 70], viz.POSITIVE)
    np.testing.assert_array_equal(out[50, 70], viz.NEGATIVE)
    np.testing.assert_array_equal(out[57, 30], viz.mask_colors(2)[0])  # box 0 in mask 0's colour
    plain = np.asarray(viz.overlay(image, masks))
    assert (out[5:55, 5:60] != plain[5:55, 5:60]).any()  # captions changed pixels inside the masks


def test_no_masks() -> None:
    image = np.zeros((8, 9, 3), np.uint8)
    out = viz.overlay(image, np.zeros((0, 8, 9), bool), points=[[4, 4]])
    assert out.size == (9, 8) and np.asarray(out)[4, 4].tolist() == list(viz.POSITIVE)


def test_crowded_captions_do_not_cover_each_other() -> None:
    image = np.full((120, 300, 3), 100, np.uint8)
    left, right = np.zeros((2, 120, 300), bool)
    left[10:110, 10:140] = True
    right[10:110, 160:290] = True
    twins = np.stack([left, left, right])  # the first two share an anchor
    both = np.asarray(viz.overlay(image, twins, labels=["big", "twin", "other"]))
    first_only = np.asarray(viz.overlay(image, twins, labels=["big", "", "other"]))
    assert (both == first_only).all()  # the twin's caption would cover the first one's: left out
    without = np.asarray(viz.overlay(image, twins, labels=["big", "", ""]))
    assert (first_only != without).any()  # a caption elsewhere is still drawn


def test_a_caption_steps_aside_from_a_prompt_point() -> None:
    image = np.full((120, 160, 3), 100, np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[20:100, 30:130] = True  # the caption's anchor is the centre, (79, 59)
    bare = np.asarray(viz.overlay(image, mask, labels=["cat"]))
    pointed = np.asarray(viz.overlay(image, mask, labels=["cat"], points=[[79, 59, 1]]))
    black = (bare == 0).all(-1)
    assert black[55:64, 70:90].any()  # without a point the caption sits on the anchor
    np.testing.assert_array_equal(pointed[59, 79], viz.POSITIVE)
    around = (pointed[50:69, 70:90] == 0).all(-1)
    assert not around.any() and (pointed == 0).all(-1).any()  # the caption moved off the point, still drawn


def test_a_caption_at_the_edge_stays_inside_the_picture() -> None:
    image = np.full((60, 200, 3), 100, np.uint8)
    strip = np.zeros((60, 200), bool)
    strip[20:40, 0:3] = True  # a sliver at the left edge: its anchor is at x = 1
    middle = np.zeros((60, 200), bool)
    middle[20:40, 90:110] = True

    def caption_columns(mask: np.ndarray) -> np.ndarray:
        out = np.asarray(viz.overlay(image, mask, labels=["a long caption"]))
        return np.nonzero((out == 0).all(-1).any(axis=0))[0]

    edge, centre = caption_columns(strip), caption_columns(middle)
    assert centre.min() > 0 and edge.min() == 0  # at the edge the caption's box starts at the picture's edge
    assert len(edge) == len(centre)  # ... and is whole, not cut off


def test_a_part_named_as_its_whole_gets_no_caption() -> None:
    image = np.full((120, 200, 3), 100, np.uint8)
    whole, part, other = np.zeros((3, 120, 200), bool)
    whole[10:110, 10:190] = True
    part[70:100, 130:180] = True  # inside the whole, far from its caption
    other[:] = part  # the same pixels, another name
    with_part = np.asarray(viz.overlay(image, [whole, part], labels=["person", "person"], scores=[0.9, 0.8]))
    whole_only = np.asarray(viz.overlay(image, [whole, part], labels=["person", ""], scores=[0.9, None]))
    assert (with_part == whole_only).all()  # the part's "person" caption is left out
    named_else = np.asarray(viz.overlay(image, [whole, other], labels=["person", "bag"], scores=[0.9, 0.8]))
    assert (named_else != whole_only).any()  # a thing of another name inside keeps its caption


def test_name_captions_of_named_and_unnamed_segments() -> None:
    from types import SimpleNamespace

    named, unnamed = SimpleNamespace(label="cat", label_score=0.9), SimpleNamespace(label=None, label_score=0.0)
    assert viz.name_captions([named, unnamed]) == (["cat", ""], [0.9, None])


def test_masks_coloured_by_label_share_their_names_colour_and_one_caption() -> None:
    image = np.full((160, 320, 3), 100, np.uint8)
    left, right, far, bag = np.zeros((4, 160, 320), bool)
    left[10:150, 10:100] = True
    right[10:150, 100:150] = True  # touches the left one: one "person" region
    far[100:150, 240:310] = True  # a person apart from them
    bag[20:50, 240:310] = True
    masks, labels = [left, right, far, bag], ["person", "person", "person", "bag"]
    plain = np.asarray(viz.overlay(image, masks, alpha=1.0))
    by_label = np.asarray(viz.overlay(image, masks, alpha=1.0, by_label=True, labels=labels))
    assert (plain[50, 120] != plain[50, 50]).any()  # a colour per mask ...
    np.testing.assert_array_equal(by_label[145, 60], by_label[145, 120])  # ... or one per name
    np.testing.assert_array_equal(by_label[145, 60], by_label[145, 280])
    assert (by_label[30, 280] != by_label[145, 60]).any()  # the bag has its own
    assert (by_label[50, 100] < by_label[145, 60]).all()  # the outline between the two people, darker
    captioned = np.asarray(viz.overlay(image, masks, labels=labels, scores=[0.9, 0.8, 0.7, 0.6], by_label=True))
    black = (captioned == 0).all(axis=2)  # caption boxes
    assert black[:, 10:100].any() and black[100:150, 240:310].any()  # the left person's, the far one's ...
    assert not black[:, 110:150].any()  # ... but none for the part touching the left one


def test_a_rings_caption_sits_on_its_widest_part() -> None:
    table = np.ones((120, 200), bool)
    table[10:100, 50:190] = False  # a cup standing on it, off-centre: the table is a thick L around it
    x, y = viz._anchor(table)
    assert table[y, x] and 15 <= x <= 35 and 20 < y < 100  # deep in the L's wide (left) arm, not at the cup's edge
    square = np.zeros((60, 80), bool)
    square[20:40, 10:70] = True
    assert viz._anchor(square) == (39, 29)  # a convex blob: its centre, as before
