"""Namer and text prompts on hand-made embeddings whose right answers are known."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zeroseg.errors import PromptShapeError, PromptValueError
from zeroseg.io import masks_to_rles
from zeroseg.models.vl import DenseEmbedder, DenseEmbedding
from zeroseg.segment import Namer, Predictor, text_to_masks
from zeroseg.segment.naming import DEFAULT_MASK_CALIBRATION, DEFAULT_TEXT_MASK_CALIBRATION, load_namer
from zeroseg.segment.text_prompt import phrase_map

AXES = {"sky": 0, "grass": 1, "cow": 2, "square": 0, "squares": 0, "floor": 1}
DIM = 4  # axis 3 is the background's


def unit(*weights: float) -> torch.Tensor:
    return F.normalize(torch.tensor(weights + (0.0,) * (DIM - len(weights))), dim=0)


class FakeText:
    """Each known name is a unit axis."""

    name, dim = "fake", DIM

    def encode(self, names):
        return torch.stack([F.one_hot(torch.tensor(AXES[n]), DIM).float() for n in names])


class FakeEmbedder:
    """Returns a fixed feature grid [D, h, w] for any image; counts its calls."""

    name = "fake"

    def __init__(self, features: torch.Tensor, background: torch.Tensor | None = None, **attributes):
        self.features, self._background, self.calls = F.normalize(features, dim=0), background, 0
        self.text_encoder = FakeText()
        self.__dict__.update(attributes)

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        self.calls += 1
        return DenseEmbedding(self.features, image.shape[:2])

    def background(self):
        return self._background


def grid(cells: list[tuple[slice, slice, torch.Tensor]], shape=(4, 4), fill=None) -> torch.Tensor:
    """A [D, h, w] grid filled with `fill` (default: sky), with each (rows, cols) region of `cells` set
    to its vector."""
    out = (unit(1.0) if fill is None else fill)[:, None, None].repeat(1, *shape)
    for rows, cols, vector in cells:
        out[:, rows, cols] = vector[:, None, None]
    return out


IMAGE = np.zeros((40, 40, 3), np.uint8)
HALVES = grid([(slice(None), slice(2, None), unit(0.0, 1.0))])  # left sky, right grass


def test_fake_embedder_follows_the_protocol():
    assert isinstance(FakeEmbedder(HALVES), DenseEmbedder)


def test_label_pixels_and_logits():
    namer = Namer(FakeEmbedder(HALVES), "sky, grass")
    assert namer.vocabulary == ["sky", "grass"] and namer.temperature == 0.01
    logits = namer.pixel_logits(IMAGE)
    assert logits.shape == (2, 40, 40)
    torch.testing.assert_close(logits[:, 5, 5], torch.tensor([100.0, 0.0]))
    labels = namer.label_pixels(IMAGE)
    assert labels.dtype == np.int64 and labels.shape == (40, 40)
    assert (labels[:, :20] == 0).all() and (labels[:, 20:] == 1).all()


def test_temperature_comes_from_the_embedder_or_the_argument():
    assert Namer(FakeEmbedder(HALVES, temperature=0.05), ["sky"]).temperature == 0.05
    assert Namer(FakeEmbedder(HALVES, temperature=0.05), ["sky"], temperature=0.2).temperature == 0.2


def test_learned_background_is_a_none_class_when_asked():
    features = grid([(slice(0, 2), slice(None), unit(0.0, 0.0, 0.0, 1.0))])  # top half: background
    embedder = FakeEmbedder(features, background=unit(0.0, 0.0, 0.0, 2.0))
    namer = Namer(embedder, ["sky", "grass"], background=True)
    assert namer.pixel_logits(IMAGE).shape == (3, 40, 40)
    labels = namer.label_pixels(IMAGE)
    assert (labels[:20] == -1).all() and (labels[20:] == 0).all()
    unnamed = Namer(embedder, ["sky", "grass"])  # by default every pixel gets a name
    assert unnamed.pixel_logits(IMAGE).shape == (2, 40, 40) and (unnamed.label_pixels(IMAGE) >= 0).all()


def test_background_threshold_leaves_ambiguous_pixels_unnamed():
    features = grid([(slice(None), slice(2, None), unit(1.0, 1.0))])  # right half: halfway sky/grass
    loose = Namer(FakeEmbedder(features), ["sky", "grass"])
    strict = Namer(FakeEmbedder(features), ["sky", "grass"], background_threshold=0.6)
    assert (loose.label_pixels(IMAGE) >= 0).all()
    labels = strict.label_pixels(IMAGE)
    assert (labels[:, :20] == 0).all() and (labels[:, 25:] == -1).all()  # 20-25: interpolated towards sky


def test_calibrated_stacking_moves_pixels_from_seen_to_unseen():
    features = grid([], fill=unit(0.6, 0.4))  # cosine 0.83 sky (seen), 0.55 grass (unseen)
    plain = Namer(FakeEmbedder(features), ["sky", "grass"], seen=["sky"])
    calibrated = Namer(FakeEmbedder(features), ["sky", "grass"], seen=["sky"], calibration=0.3)
    assert (plain.label_pixels(IMAGE) == 0).all()
    assert (calibrated.label_pixels(IMAGE) == 1).all()
    shift = plain.pixel_logits(IMAGE) - calibrated.pixel_logits(IMAGE)
    torch.testing.assert_close(shift[:, 0, 0], torch.tensor([30.0, 0.0]))


def test_name_masks():
    namer = Namer(FakeEmbedder(HALVES), ["sky", "grass"], background_threshold=0.6)
    masks = np.zeros((5, 40, 40), bool)
    masks[0, :, :20] = True  # left half
    masks[1, 10:30, 18:40] = True  # mostly right
    masks[2, 3:5, 33:35] = True  # tiny, inside a grass cell
    masks[4, :, 10:30] = True  # straddles both halves equally
    named = namer.name_masks(IMAGE, masks)
    assert [n for n, _ in named] == ["sky", "grass", "grass", None, None]
    assert named[0][1] > 0.99 and named[3] == (None, 0.0) and named[4][1] < 0.6
    with pytest.raises(PromptShapeError):
        namer.name_masks(IMAGE, masks[:, :10])


def test_mask_pooling_is_the_coverage_weighted_mean():
    features = grid([(slice(None), slice(2, None), unit(0.0, 1.0))])  # grid cells are 10x10 pixels
    namer = Namer(FakeEmbedder(features), ["sky", "grass"])
    mask = np.zeros((1, 40, 40), bool)
    mask[0, :, 5:30] = True  # sky cells: half of column 0, all of column 1; grass: all of column 2
    expected = F.normalize(0.5 * unit(1.0) + unit(1.0) + unit(0.0, 1.0), dim=0)
    logits, present = namer.mask_logits(IMAGE, mask)
    torch.testing.assert_close(logits[0], expected[:2] / namer.temperature)
    assert present.tolist() == [True]


def test_default_namer_calibrates_pixels_with_the_fitted_gamma_masks_with_the_small_one():
    embedder = FakeEmbedder(HALVES, seen=("sky", "cow"), calibration=0.2, mask_calibration=0.3,
                            background=unit(0.0, 0.0, 0.0, 1.0))
    mask = np.zeros((1, 40, 40), bool)
    mask[0, :, :20] = True
    small = DEFAULT_MASK_CALIBRATION
    default = load_namer("sky, grass", embedder)
    assert default.calibration == 0.2 and default.mask_calibration == small and default.seen == {"sky"}
    assert default.background is None and default.background_threshold is None
    torch.testing.assert_close(default.pixel_logits(IMAGE)[:, 5, 5], torch.tensor([80.0, 0.0]))  # pixels: gamma
    # masks: the small gamma, on trained names only ("grass" was never trained)
    torch.testing.assert_close(default.mask_logits(IMAGE, mask)[0][0], torch.tensor([100.0 - 100 * small, 0.0]))
    plain = load_namer("sky, grass", embedder, pixel_calibrate=False)
    assert plain.calibration == 0.0 and plain.mask_calibration == small and plain.seen == {"sky"}
    torch.testing.assert_close(plain.pixel_logits(IMAGE)[:, 5, 5], torch.tensor([100.0, 0.0]))
    none = load_namer("sky, grass", embedder, pixel_calibrate=False, mask_calibration=0.0)
    torch.testing.assert_close(none.mask_logits(IMAGE, mask)[0][0], torch.tensor([100.0, 0.0]))
    calibrated = load_namer("sky, grass", embedder, calibrate=True)
    assert calibrated.seen == {"sky"} and calibrated.calibration == 0.2 and calibrated.mask_calibration == 0.3
    torch.testing.assert_close(calibrated.pixel_logits(IMAGE)[:, 5, 5], torch.tensor([80.0, 0.0]))
    torch.testing.assert_close(calibrated.mask_logits(IMAGE, mask)[0][0], torch.tensor([70.0, 0.0]))
    asked = load_namer("sky, grass", embedder, calibrate=True, calibration=0.1, background=True)
    assert asked.calibration == 0.1 and asked.background is not None
    text = load_namer("sky, grass", embedder, text=True)  # text prompts: "none of these", masks as they are
    assert text.background is not None and text.mask_calibration == DEFAULT_TEXT_MASK_CALIBRATION == 0.0
    torch.testing.assert_close(text.mask_logits(IMAGE, mask)[0][0, :2], torch.tensor([100.0, 0.0]))


def test_name_records_reads_rles_and_arrays():
    namer = Namer(FakeEmbedder(HALVES), ["sky", "grass"])
    masks = np.zeros((2, 40, 40), bool)
    masks[0, :, :20], masks[1, :, 20:] = True, True
    records = [{"segmentation": rle} for rle in masks_to_rles(masks)] + [{"segmentation": masks[1]}]
    assert namer.name_records(IMAGE, records) is records
    assert [r["label"] for r in records] == ["sky", "grass", "grass"]
    assert all(isinstance(r["label_score"], float) and r["label_score"] > 0.99 for r in records)


def test_parts_take_their_containers_opinion_when_unsure():
    from zeroseg.segment.vocabulary_namer import CONTAINER_WEIGHT, PART_UNSURE, containers, in_context

    masks = np.zeros((4, 40, 40), bool)
    masks[0] = True  # the whole picture
    masks[1, 5:30, 5:30] = True  # inside 0
    masks[2, 10:15, 10:15] = True  # inside 1 (and 0): its smallest container is 1
    masks[3, 0:20, 20:40] = True  # a quarter, half outside 1: inside 0 only
    assert containers(list(masks))[0].tolist() == [-1, 0, 1, 0]
    sure, unsure = 5.0, 0.1  # softmax of [x, 0]: 0.99 and 0.52
    assert F.softmax(torch.tensor([unsure, 0.0]), 0).max() < PART_UNSURE < F.softmax(torch.tensor([sure, 0.0]), 0).max()
    logits = torch.tensor([[sure, 0.0], [0.0, unsure], [unsure, 0.0], [0.0, sure]])
    mixed = in_context(logits, containers(list(masks))[0])
    # 1 is unsure and takes 0's "first name"; 2 is unsure and takes 1's mixed opinion; 3 is sure and keeps its own
    assert mixed.argmax(1).tolist() == [0, 0, 0, 1]
    own = F.log_softmax(logits, 1)
    torch.testing.assert_close(mixed[1], own[1] + CONTAINER_WEIGHT * own[0])
    torch.testing.assert_close(mixed[3], own[3])
    assert [a.tolist() for a in containers([])] == [[], []]


def test_a_detail_takes_its_containers_opinion_however_sure():
    from zeroseg.segment.vocabulary_namer import PART_DETAIL, containers, in_context

    assert PART_DETAIL > 0.01

    masks = np.zeros((3, 100, 100), bool)
    masks[0] = True  # a cat filling the picture
    masks[1, 40:50, 40:50] = True  # its eye: 1% of it, a detail (under PART_DETAIL)
    masks[2, 10:40, 10:40] = True  # a larger part, not a detail
    held, detail = containers(list(masks))
    assert held.tolist() == [-1, 0, 0] and detail.tolist() == [False, True, False]
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])  # the eye and the part are sure they are a person
    mixed = in_context(logits, held, detail)
    assert mixed.argmax(1).tolist() == [0, 0, 1]  # the eye is the cat's; the larger part keeps its name
    assert in_context(logits, held).argmax(1).tolist() == [0, 1, 1]  # without details: sure parts keep theirs


def test_segments_named_together_in_context():
    namer = Namer(FakeEmbedder(HALVES), ["sky", "grass"])
    masks = np.zeros((2, 40, 40), bool)
    masks[0, :, :24] = True  # mostly sky
    masks[1, :, 18:22] = True  # a sliver on the border, inside 0: unsure on its own
    records = [{"segmentation": m} for m in masks]
    alone = [label for label, _ in namer.name_masks(IMAGE, masks)]
    namer.name_records(IMAGE, records)
    assert [r["label"] for r in records] == ["sky", "sky"]
    assert namer.name_records(IMAGE, [dict(r) for r in records], context=False)[1]["label"] == alone[1]


def test_pixels_take_the_names_of_the_segments_they_lie_in(monkeypatch):
    from zeroseg.segment import pipeline
    from zeroseg.segment.vocabulary_namer import PIXEL_UNSURE

    odd = grid([(slice(None), slice(2, None), unit(0.0, 1.0)), (slice(1, 2), slice(1, 2), unit(1.0, 1.005))])
    namer = Namer(FakeEmbedder(odd, temperature=0.5), ["sky", "grass"])  # left sky, one cell barely grass; right grass
    alone = namer.label_pixels(IMAGE)
    assert alone[15, 15] == 1 and (alone[:, :5] == 0).all()  # the cell alone reads grass at its centre
    assert namer.pixel_logits(IMAGE)[:, 15, 15].softmax(0).max() < PIXEL_UNSURE  # and is unsure of it
    segments = np.zeros((2, 40, 40), bool)
    segments[0, :, :20] = True  # the left half: sky as a whole
    segments[1] = True  # the whole picture: half sky, half grass (impure)
    labels = namer.label_pixels(IMAGE, segments)
    assert labels[15, 15] == 0 and (labels[:, :16] == 0).all()  # the unsure cell takes the left half's name
    assert (labels[:, 24:] == 1).all()  # sure pixels keep their own name
    logits = namer.segment_pixel_logits(IMAGE, segments)
    torch.testing.assert_close(logits[:, 0, 30], F.log_softmax(namer.pixel_logits(IMAGE)[:, 0, 30], 0))
    assert (namer.label_pixels(IMAGE, np.zeros((0, 40, 40), bool)) == alone).all()
    with pytest.raises(PromptValueError, match="segments must be masks"):
        namer.label_pixels(IMAGE, segments[:, :20])
    # the pipeline's label_pixels takes the segments from the image's proposals when given a predictor
    monkeypatch.setattr(pipeline, "proposals", lambda image, predictor, progress=False: ([], segments))
    assert (pipeline.label_pixels(IMAGE, namer, predictor=object()) == labels).all()
    assert (pipeline.label_pixels(IMAGE, namer) == alone).all()


def test_similarity_map():
    similarity = Namer(FakeEmbedder(HALVES), ["sky", "grass"]).similarity(IMAGE, "grass")
    assert similarity.dtype == np.float32 and similarity.shape == (40, 40)
    np.testing.assert_allclose(similarity[:, :10], 0.0, atol=1e-6)
    np.testing.assert_allclose(similarity[:, 30:], 1.0, atol=1e-6)


def test_embeddings_are_cached_per_image():
    embedder = FakeEmbedder(HALVES)
    namer = Namer(embedder, ["sky", "grass"])
    namer.label_pixels(IMAGE)
    namer.similarity(IMAGE.copy(), "sky")
    assert embedder.calls == 1
    namer.label_pixels(IMAGE + 1)
    assert embedder.calls == 2


def test_empty_vocabulary_or_phrase_is_refused():
    with pytest.raises(PromptValueError):
        Namer(FakeEmbedder(HALVES), " , ")
    with pytest.raises(PromptValueError):
        Namer(FakeEmbedder(HALVES), ["sky"]).similarity(IMAGE, "  ")


# --- text prompts ---------------------------------------------------------------------------------
SQUARES = [(slice(40, 100), slice(20, 80)), (slice(60, 120), slice(120, 180))]  # pixel rows, cols


@pytest.fixture(scope="module")
def scene():
    """A 160x200 image with two red squares, and an embedder that marks their 20x20 grid cells."""
    image = np.full((160, 200, 3), 40, np.uint8)
    cells = []
    for rows, cols in SQUARES:
        image[rows, cols] = (220, 60, 60)
        cells.append((slice(rows.start // 20, rows.stop // 20), slice(cols.start // 20, cols.stop // 20), unit(1.0)))
    return image, FakeEmbedder(grid(cells, shape=(8, 10), fill=unit(0.0, 1.0)))


@pytest.fixture(scope="module")
def predictor():
    from zeroseg.hub import load_model

    return Predictor(load_model("lite"))


def test_phrase_map_marks_where_the_phrase_wins(scene):
    image, embedder = scene
    share = phrase_map(image, "square", Namer(embedder, ["square", "floor"]))
    rows, cols = SQUARES[0]
    inner = share[rows.start + 10 : rows.stop - 10, cols.start + 10 : cols.stop - 10]  # half a cell in
    assert share.shape == image.shape[:2] and share.dtype == np.float32
    assert (inner > 0.5).all() and share[0, 0] < 0.01


def test_text_to_masks_finds_each_square(scene, predictor):
    image, embedder = scene
    segments = text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]))
    assert len(segments) >= 2  # point prompts inside a region may add near-duplicates
    truths = []
    for rows, cols in SQUARES:
        truth = np.zeros(image.shape[:2], bool)
        truth[rows, cols] = True
        truths.append(truth)
    found = set()
    for segment in segments:
        mask = segment.mask
        assert mask.dtype == bool and mask.shape == image.shape[:2] and segment.label == "square"
        assert 0 < segment.predicted_iou and 0 < segment.label_score <= 1 and segment.source == "assisted"
        assert segment.model_name == predictor.model.name and segment.prompt["text"] == "square"
        (x, y, label) = segment.prompt["points"][0]
        x0, y0, x1, y1 = segment.prompt.get("box", [x, y, x, y])  # a point prompt alone has no box
        assert label == 1 and mask[int(y), int(x)] and x0 <= x <= x1 and y0 <= y <= y1
        ious = [(mask & t).sum() / (mask | t).sum() for t in truths]
        # the image's segment-everything masks may also hold both squares (and the floor between them)
        assert max(ious) > 0.5 or (mask & (truths[0] | truths[1])).sum() > 0.5 * mask.sum(), ious
        if max(ious) > 0.5:
            found.add(int(np.argmax(ious)))
        x, y, w, h = (int(v) for v in segment.bbox)
        assert mask[y : y + h, x : x + w].sum() == mask.sum() == segment.area
    assert found == {0, 1}
    assert len(text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]), max_instances=1)) == 1


def test_a_phrase_as_typed_does_not_compete_with_its_own_noun(scene, predictor):
    """"a square" is about squares: "square" and "squares" in the vocabulary do not split its share."""
    image, embedder = scene
    bare = text_to_masks(image, "square", predictor, Namer(embedder, ["floor"]))
    typed = text_to_masks(image, "a square", predictor, Namer(embedder, ["floor", "squares", "square"]))
    assert len(typed) == len(bare) >= 2 and all(s.label == "a square" for s in typed)
    assert all((a.mask == b.mask).all() and a.label_score == b.label_score for a, b in zip(typed, bare))


def test_name_key():
    from zeroseg.vocabulary import name_key, strip_article

    assert {name_key(n) for n in ("a cup", "Cups", "the cup", "cup", "a cup.")} == {"cup"}
    assert strip_article("A red car.") == "red car" and strip_article(" cup ") == "cup"
    assert name_key("boxes") == "box" and name_key("bus") == "bus" and name_key("glass") == "glass"
    assert name_key("a traffic light") == "traffic light" and strip_article("an apple") == "apple"
    assert strip_article("a") == "a" and strip_article("theatre") == "theatre"


def test_text_to_masks_without_a_match(scene, predictor):
    image, embedder = scene
    namer = Namer(embedder, ["square", "floor"])
    assert text_to_masks(image, "square", predictor, namer, threshold=1.01, verify=False) == []  # no region
    assert text_to_masks(image, "cow", predictor, namer) == []  # no candidate is named "cow"


def test_text_to_masks_finds_instances_no_region_holds(scene, predictor):
    """With no region of the phrase map, the image's segment-everything masks named as the phrase remain."""
    from zeroseg.segment.pipeline import proposals

    image, embedder = scene
    segments = text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]), threshold=1.01)
    assert segments and all("box" not in s.prompt and s.label == "square" for s in segments)
    for rows, cols in SQUARES:
        truth = np.zeros(image.shape[:2], bool)
        truth[rows, cols] = True
        assert max((s.mask & truth).sum() / (s.mask | truth).sum() for s in segments) > 0.5
    assert proposals(image, predictor)[0] is proposals(image.copy(), predictor)[0]  # segmented once per image


def test_with_vocabulary_shares_the_image_cache():
    embedder = FakeEmbedder(HALVES)
    namer = Namer(embedder, ["sky", "grass"])
    namer.label_pixels(IMAGE)
    other = namer.with_vocabulary(["grass"])
    assert other.vocabulary == ["grass"] and namer.vocabulary == ["sky", "grass"]
    assert (other.label_pixels(IMAGE) == 0).all() and embedder.calls == 1
    with pytest.raises(PromptValueError):
        namer.with_vocabulary(" , ")


def test_match_scores_keep_masks_the_phrase_wins(scene, monkeypatch):
    from zeroseg.segment import text_prompt

    image, embedder = scene
    on_square, on_floor = np.zeros((2, *image.shape[:2]), bool)
    rows, cols = SQUARES[0]
    on_square[rows, cols] = True
    on_floor[130:, :] = True
    scores = text_prompt.match_scores(image, "square", np.stack([on_square, on_floor]), Namer(embedder, ["floor"]))
    assert scores[0] is not None and scores[0] > 0.5 and scores[1] is None
    monkeypatch.setattr(text_prompt, "CONTEXT_NAMES", ("floor", "square"))  # a namer of the phrase alone
    alone = text_prompt.match_scores(image, "square", np.stack([on_square, on_floor]), Namer(embedder, ["square"]))
    assert alone[0] == pytest.approx(scores[0]) and alone[1] is None


def test_text_to_masks_verified_best_first(scene, predictor, monkeypatch):
    from zeroseg.segment import text_prompt

    image, embedder = scene
    segments = text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]))
    squares = np.zeros((len(SQUARES), *image.shape[:2]), bool)
    for k, (rows, cols) in enumerate(SQUARES):
        squares[k, rows, cols] = True
    first = segments[0].mask
    assert max((first & sq).sum() / (first | sq).sum() for sq in squares) > 0.8  # a whole square comes first
    monkeypatch.setattr(text_prompt, "proposals", lambda image, predictor: ([], np.zeros((0, *image.shape[:2]), bool)))
    segments = text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]))
    scores = [s.label_score for s in segments]
    share = phrase_map(image, "square", Namer(embedder, ["floor", "square"]))
    ranks = [s.label_score * np.sqrt(s.area) * share[s.mask].mean() for s in segments]  # a confident whole first
    assert len(segments) >= 2 and ranks == sorted(ranks, reverse=True) and min(scores) > 0.5
    # the floor phrase wins the regions around the squares; its masks, named, are floor too
    assert all(s.label == "floor" for s in text_to_masks(image, "floor", predictor, Namer(embedder, ["square"])))


def test_peaks_are_spaced_local_maxima_inside_the_region():
    from zeroseg.segment.text_prompt import _peaks

    region = np.zeros((40, 80), bool)
    region[5:35, 5:75] = True
    share = np.zeros((40, 80), np.float32)
    share[10:30, 10:30], share[10:30, 50:70] = 1.0, 0.9  # two blobs in one region
    peaks = _peaks(region, share, 4, spacing=10)
    assert len(peaks) >= 2 and all(region[y, x] for x, y in peaks)
    assert any(x < 40 for x, _ in peaks) and any(x > 40 for x, _ in peaks)
    assert all((a - c) ** 2 + (b - d) ** 2 >= 100 for i, (a, b) in enumerate(peaks) for c, d in peaks[:i])
    assert _peaks(region, share, 1, spacing=10) == peaks[:1] and _peaks(region, share, 0, spacing=10) == []


def test_text_to_masks_with_point_prompts_per_region(scene, predictor):
    image, embedder = scene
    segments = text_to_masks(image, "square", predictor, Namer(embedder, ["floor", "square"]), points_per_region=2,
                             max_instances=10)
    assert 2 <= len(segments) <= 10
    for rows, cols in SQUARES:
        truth = np.zeros(image.shape[:2], bool)
        truth[rows, cols] = True
        assert max((s.mask & truth).sum() / (s.mask | truth).sum() for s in segments) > 0.5
    assert any("box" not in s.prompt for s in segments) or len(segments) == 2


def test_names_as_typed_are_embedded_and_calibrated_by_their_noun(scene):
    """A vocabulary of "a square" names as "square" does: the same embedding, and seen when "squares" was trained."""
    image, _ = scene
    embedder = FakeEmbedder(scene[1].features, seen=["squares", "floor"])
    typed = load_namer(["a square", "the floor"], embedder, classifier=False)
    bare = load_namer(["square", "floor"], embedder, classifier=False)
    assert typed.seen == {"a square", "the floor"} and bare.seen == {"square", "floor"}
    typed_classes, bare_classes = typed.classes(typed.vocabulary, 0.1), bare.classes(bare.vocabulary, 0.1)
    for a, b in zip(typed_classes[:2], bare_classes[:2]):  # text, offsets
        assert torch.equal(a, b)
    assert typed_classes.names == bare_classes.names == ("square", "floor")  # as WordNet will read them
    assert torch.equal(typed.pixel_logits(image), bare.pixel_logits(image))


def test_competing_names_of_a_phrase():
    from zeroseg.segment.text_prompt import _others

    names = ["car", "cars", "red car", "truck", "hot dog", "dog"]
    assert _others("a red car", names) == ["car", "cars", "truck", "hot dog", "dog"]
    # the context names (the phrase alone) do not veto a phrase by its last words
    assert _others("a red car", names, head=True) == ["truck", "hot dog", "dog"]
    assert _others("hot dog", names, head=True) == ["car", "cars", "red car", "truck"]
