"""Graph-cut refinement: the boundary moves onto colour edges, clicks are obeyed, the shape is kept."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skimage_data

from zeroseg.errors import PromptShapeError
from zeroseg import hub
from zeroseg.models.lite import build_lite
from zeroseg.segment import Predictor
from zeroseg.segment.graph_cut import GraphCutRefiner


def _disc_image(size: int = 120, radius: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A noisy red disc on a noisy blue background, and the disc's mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
    image = np.where(disc[..., None], (200, 40, 30), (30, 60, 190)) + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), disc


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_a_coarse_mask_snaps_to_the_object():
    image, disc = _disc_image()
    coarse = np.zeros_like(disc)
    coarse[32:88, 36:92] = True  # a blocky, shifted guess of the disc
    refined = GraphCutRefiner(image)(coarse, np.array([[60.0, 60.0]]), np.array([1]))
    assert refined.dtype == bool and refined.shape == disc.shape
    assert _iou(coarse, disc) < 0.85
    assert _iou(refined, disc) > 0.97


def test_a_mask_in_any_memory_order_is_cut_alike():
    # pycocotools decodes masks in Fortran order; OpenCV's GrabCut needs C order
    image, disc = _disc_image()
    coarse = np.zeros_like(disc)
    coarse[32:88, 36:92] = True
    refiner = GraphCutRefiner(image)
    assert np.array_equal(refiner(np.asfortranarray(coarse)), refiner(coarse))


def test_clicks_are_pinned():
    image, disc = _disc_image()
    # A background click inside the mask's deep interior and an object click outside it both hold.
    refined = GraphCutRefiner(image)(disc, np.array([[60.0, 60.0], [5.0, 5.0]]), np.array([0, 1]))
    assert not refined[60, 60]
    assert refined[5, 5]


def test_a_box_bounds_the_object_and_padding_points_are_ignored():
    image, disc = _disc_image()
    box = np.array([0.0, 0.0, 59.0, 119.0])  # the left half only
    refined = GraphCutRefiner(image)(disc, np.array([[60.0, 60.0]]), np.array([-1]), box=box)
    assert not refined[:, 61:].any()
    assert _iou(refined, disc & (np.arange(120) <= 59)[None, :]) > 0.95


def test_with_a_box_an_undersized_mask_grows_to_the_object():
    image, disc = _disc_image()
    small = np.zeros_like(disc)
    small[45:75, 45:75] = True  # the model found only the disc's middle
    box = np.array([30.0, 30.0, 89.0, 89.0])  # the disc's tight box
    refiner = GraphCutRefiner(image)
    grown = refiner(small, box=box)
    assert _iou(grown, disc) > 0.95
    # Without the box only a band around the mask may change: the disc's rim stays out of reach.
    assert _iou(refiner(small), disc) < 0.8


def test_nothing_to_refine_and_wrong_sizes():
    image, disc = _disc_image()
    refiner = GraphCutRefiner(image)
    empty = np.zeros_like(disc)
    np.testing.assert_array_equal(refiner(empty, np.array([[60.0, 60.0]]), np.array([1])), empty)
    everything = np.ones_like(disc)  # no background anywhere: GrabCut cannot fit its models
    np.testing.assert_array_equal(refiner(everything), everything)
    with pytest.raises(ValueError, match="does not match"):
        refiner(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        GraphCutRefiner(np.zeros((5, 5), np.uint8))


def test_large_regions_are_cut_at_a_bounded_size():
    image, disc = _disc_image(size=240, radius=70)
    refined = GraphCutRefiner(image, max_side=64)(disc)
    assert refined.shape == disc.shape
    assert _iou(refined, disc) > 0.9


def test_lite_predictor_cuts_interactive_masks_only():
    model = hub.load_model("lite")
    assert model.graph_cut  # the lite preset turns the graph cut on
    image = skimage_data.chelsea()
    point, label = np.array([[300.0, 150.0]]), np.array([1])
    plain, cut = Predictor(model, graph_cut=False), Predictor(model)
    for predictor in (plain, cut):
        predictor.set_image(image)
    masks, scores, low_res = cut.predict(point, label)
    raw_masks, raw_scores, raw_low_res = plain.predict(point, label)
    assert masks.shape == raw_masks.shape and masks.dtype == bool
    np.testing.assert_array_equal(scores, raw_scores)
    # The next click starts from the cut masks: low_res_masks are their mask inputs.
    assert low_res.shape == raw_low_res.shape and low_res.dtype == np.float32
    np.testing.assert_array_equal(low_res, np.concatenate([cut.mask_to_input(m) for m in masks]))
    assert (masks != raw_masks).any()
    assert all(_iou(m, r) > 0.75 for m, r in zip(masks, raw_masks))  # boundaries move, the object stays
    # Logits and batched prompts stay the model's own.
    logits = [p.predict(point, label, return_logits=True)[0] for p in (cut, plain)]
    np.testing.assert_array_equal(*logits)
    batched = [p.predict_batch(point[None], label[None])[0] for p in (cut, plain)]
    np.testing.assert_array_equal(*batched)


def test_mask_to_input_follows_the_model_frame():
    predictor = Predictor(build_lite())
    image = np.zeros((100, 200, 3), np.uint8)
    predictor.set_image(image)
    mask = np.zeros((100, 200), bool)
    mask[:, :100] = True  # the left half
    prior = predictor.mask_to_input(mask)
    h, w = predictor.model.prompt_encoder.mask_input_size
    assert prior.shape == (1, h, w) and prior.dtype == np.float32
    # The image fills the top half of the square input frame; the padding is background.
    assert (prior[0, : h // 2 - 2, : w // 2 - 2] > 0).all()
    assert (prior[0, : h // 2 - 2, w // 2 + 2 :] < 0).all()
    assert (prior[0, h // 2 + 2 :] < 0).all()
    with pytest.raises(PromptShapeError, match="does not match"):
        predictor.mask_to_input(np.zeros((10, 10), bool))


def test_the_app_cuts_as_the_model_preset_says_unless_told():
    from zeroseg.server.segmenter import Segmenter

    model = hub.load_model("lite")
    assert model.graph_cut and Segmenter(model).load().graph_cut  # lite's preset: on
    assert not Segmenter(model, graph_cut=False).load().graph_cut  # zeroseg serve --no-graph-cut
    assert not Segmenter(build_lite()).load().graph_cut  # a bare model has no preset: no cut


def test_candidates_are_cut_on_threads_as_one_by_one():
    from zeroseg.segment.graph_cut import refine_all

    image, disc = _disc_image()
    masks = np.zeros((3, *disc.shape), bool)
    masks[0, 32:88, 36:92] = True
    masks[1, 40:80, 40:80] = True
    masks[2] = disc
    refiner = GraphCutRefiner(image)
    points, labels = np.array([[60.0, 60.0]]), np.array([1])
    expected = np.stack([refiner(m, points, labels) for m in masks])
    assert (refine_all(refiner, masks, points, labels) == expected).all()
    assert (refine_all(refiner, masks[:1], points, labels) == expected[:1]).all()


def test_thin_and_featureless_objects_survive():
    flat = np.full((80, 100, 3), 90, np.uint8)  # no colour tells object from background
    line = np.zeros((80, 100), bool)
    line[40:43, 10:90] = True  # thinner than the band: nothing is fixed, the cut would empty it
    np.testing.assert_array_equal(GraphCutRefiner(flat)(line), line)
    speck = np.zeros((80, 100), bool)
    speck[20, 30] = True
    np.testing.assert_array_equal(GraphCutRefiner(flat)(speck), speck)


def test_one_grabcut_wrapper_below_segment_and_eval():
    """cv2.grabCut is called in one place, models/grabcut.py, which imports nothing above models."""
    import subprocess
    import sys
    from pathlib import Path

    import zeroseg

    root = Path(zeroseg.__file__).parent
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "cv2.grabCut(" in p.read_text())
    assert callers == ["models/grabcut.py"]
    code = (
        "import sys, zeroseg.segment.graph_cut, zeroseg.models.grabcut; "
        "print(sorted(m for m in sys.modules if m.startswith(('zeroseg.eval', 'zeroseg.engine'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_grabcut_wrapper_needs_both_kinds_and_is_deterministic():
    from zeroseg.models.grabcut import grabcut, pin_clicks

    image, disc = _disc_image()
    labels = np.full(disc.shape, 2, np.uint8)  # cv2.GC_PR_BGD everywhere: nothing to fit
    assert grabcut(image, labels.copy(), iterations=1) is None
    pin_clicks(labels, [(60, 60, True), (5, 5, False)], radius=3)
    labels[disc] = 3  # cv2.GC_PR_FGD
    first, second = grabcut(image, labels.copy(), 2), grabcut(image, labels.copy(), 2)
    np.testing.assert_array_equal(first, second)
    assert _iou(first, disc) > 0.95


def test_the_app_cuts_only_the_candidate_it_shows_first():
    from zeroseg.server.segmenter import Segmenter

    image, disc = _disc_image()
    model = hub.load_model("lite")
    every = Predictor(model)
    every.set_image(image)
    point = np.array([[disc.shape[1] / 2, disc.shape[0] / 2]])
    cut_all, scores, _ = every.predict(point, np.array([1]))
    shown = Segmenter(model).load()
    assert not shown.cut_alternatives
    shown.set_image(image)
    masks, scores_shown, low_res = shown.predict(point, np.array([1]))
    best = int(np.argmax(scores))
    assert np.array_equal(scores, scores_shown) and np.array_equal(masks[best], cut_all[best])
    raw = Predictor(model, graph_cut=False)
    raw.set_image(image)
    plain, _, plain_low_res = raw.predict(point, np.array([1]))
    others = [i for i in range(3) if i != best]
    assert all(np.array_equal(masks[i], plain[i]) for i in others)  # the alternatives: the model's own masks
    assert all(np.array_equal(low_res[i], plain_low_res[i]) for i in others)
