"""ConSE naming of masks by the backbone's ImageNet classifier: the label list, crops, the transfer to a
user's names, and its place in Namer (on hand-made embeddings and a fake classifier)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zeroseg.models.lite import imagenet
from zeroseg.models.lite.imagenet_classes import IMAGENET_CLASSES
from zeroseg.models.vl import DenseEmbedding
from zeroseg.segment import Namer
from zeroseg.segment.naming import imagenet_text, load_namer

DIM = 8
AXES = {"cat": 0, "tabby": 0, "airplane": 1, "airliner": 1, "grass": 2, "sky": 3}
TABBY, AIRLINER = 281, 404


class AxisText:
    """Known names are unit axes; every other name is axis 7 (far from all the user's names)."""

    name, dim, templates = "axes", DIM, ("{}",)

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, names):
        self.calls += 1
        return torch.stack([F.one_hot(torch.tensor(AXES.get(n, DIM - 1)), DIM).float() for n in names])


class RedIsTabby(nn.Module):
    """A fake ImageNet classifier: a crop whose mask pixels are red is a tabby, else an airliner."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.crops: list[torch.Tensor] = []

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        self.crops.append(x)
        logits = torch.zeros(len(x), 1000)
        red = x[:, 0].flatten(1).amax(1) > 0.5
        logits[red, TABBY] = 10.0
        logits[~red, AIRLINER] = 10.0
        return logits


class Embedder:
    """Every grid cell leans a little to grass: the dense head is unsure at temperature 1."""

    name = "fake"

    def __init__(self, backbone: nn.Module | None = None) -> None:
        self.text_encoder = AxisText()
        if backbone is not None:
            self.backbone = backbone
        self.features = F.normalize(torch.tensor([0.3, 0.3, 0.4, 0, 0, 0, 0, 0])[:, None, None].repeat(1, 4, 4), dim=0)

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        return DenseEmbedding(self.features, image.shape[:2])

    def background(self):
        return None


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEG_HOME", str(tmp_path))


def picture() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((40, 60, 3), np.uint8)
    image[5:15, 5:25] = (255, 0, 0)  # a red thing
    image[20:35, 30:55] = (0, 0, 255)  # a blue thing
    masks = np.zeros((3, 40, 60), bool)
    masks[0, 5:15, 5:25] = True
    masks[1, 20:35, 30:55] = True  # mask 2 stays empty
    return image, masks


def test_the_label_list_is_imagenets_in_output_order():
    assert len(IMAGENET_CLASSES) == 1000
    names = imagenet.imagenet_names()
    assert names[0] == "tench" and names[TABBY] == "tabby" and names[AIRLINER] == "airliner"
    assert names[999] == "toilet tissue" and names[950] == "orange"
    assert {n for n in names if names.count(n) > 1} == {"crane", "maillot"}  # WordNet's own homonyms


def test_mask_crop_is_square_grey_outside_the_mask_and_the_image():
    image = np.full((30, 50, 3), 200, np.uint8)
    mask = np.zeros((30, 50), bool)
    mask[0:10, 30:50] = True  # a 10 x 20 box on the top edge
    crop = imagenet.mask_crop(image, mask, context=1.0, size=40)
    assert crop.shape == (40, 40, 3) and crop.dtype == np.float32
    # the 20 x 20 square spans rows -5..15: the top quarter is outside the image, rows 5..15 outside the mask
    assert np.allclose(crop[:8], imagenet.CROP_FILL) and np.allclose(crop[12:18], 200.0)
    assert np.allclose(crop[-8:], imagenet.CROP_FILL)


def test_transfer_hands_probability_to_the_nearest_names():
    class_text = F.one_hot(torch.tensor([AXES.get(n, DIM - 1) for n in imagenet.imagenet_names()]), DIM).float()
    names = AxisText().encode(["cat", "airplane", "grass"])
    log_probs = torch.full((2, 1000), -30.0)
    log_probs[0, TABBY], log_probs[1, AIRLINER] = 0.0, 0.0
    share = imagenet.name_share(class_text, names)  # text alone
    out = imagenet.transfer(log_probs.log_softmax(1), share, top_k=5)
    assert out.shape == (2, 3) and out.argmax(1).tolist() == [0, 1]
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    unrelated = torch.zeros(1, 1000).log_softmax(1)  # all ImageNet classes alike: no opinion
    assert imagenet.transfer(unrelated, share, top_k=1000).exp().std() < 1e-3


def test_wordnet_table_is_the_classifiers_classes_and_their_hypernyms():
    lemmas, depths = imagenet._wordnet()
    assert len(depths) == 1000 and len(lemmas) > 1000
    for row, entry in enumerate(IMAGENET_CLASSES):  # the table's first 1,000 synsets are the classes, in order
        assert lemmas[row][0] == entry.split(", ")[0].lower()
    entity = lemmas.index(("entity",))
    assert all(depth[row] == 0 and entity in depth for row, depth in enumerate(depths))  # each reaches the root


def test_wordnet_hands_a_kind_to_the_nearest_name_above_it():
    saluki, junco, ox, tiger, ballplayer = 176, 13, 345, 292, 981
    kinds = imagenet.wordnet_kinds(["cat", "dogs", "bird", "cattle", "animal", "person", "grass"])
    assert kinds[saluki].tolist() == [0, 1, 0, 0, 0, 0, 0]  # a Saluki is a dog (and an animal, further up)
    assert kinds[junco].argmax() == 2 and kinds[ox].argmax() == 3 and kinds[ballplayer].argmax() == 5
    assert kinds[tiger].argmax() == 0  # a tiger is a big cat, a cat
    assert kinds[AIRLINER].sum() == 0  # no name above an airliner: text similarity decides
    torch.testing.assert_close(kinds.sum(1)[kinds.sum(1) > 0], torch.ones(int((kinds.sum(1) > 0).sum())))


def test_name_share_takes_wordnet_where_it_knows_and_text_elsewhere():
    class_text = F.one_hot(torch.tensor([AXES.get(n, DIM - 1) for n in imagenet.imagenet_names()]), DIM).float()
    names = ["cat", "airplane", "grass"]
    share = imagenet.name_share(class_text, AxisText().encode(names), names)
    assert share[TABBY].argmax() == 0 and share[TABBY, 0] >= imagenet.WORDNET_WEIGHT  # WordNet: a tabby is a cat
    text_only = imagenet.name_share(class_text, AxisText().encode(names))
    torch.testing.assert_close(share[AIRLINER], text_only[AIRLINER])  # WordNet has no name above an airliner
    torch.testing.assert_close(share.sum(1), torch.ones(1000))


def test_the_classifier_names_masks_the_dense_head_is_unsure_of():
    image, masks = picture()
    backbone = RedIsTabby()
    dense = Namer(Embedder(backbone), ["cat", "airplane", "grass"], temperature=1.0, classifier=False)
    assert dense.classifier is None
    assert [n for n, _ in dense.name_masks(image, masks)] == ["grass", "grass", None]
    mixed = Namer(Embedder(backbone), ["cat", "airplane", "grass"], temperature=1.0)
    assert mixed.classifier is backbone
    named = mixed.name_masks(image, masks)
    assert [n for n, _ in named] == ["cat", "airplane", None] and named[0][1] > 0.9
    crops = torch.cat(backbone.crops)
    assert crops.shape == (2, 3, imagenet.CROP_SIZE, imagenet.CROP_SIZE)  # one crop per non-empty mask, batched
    logits, present = mixed.mask_logits(image, masks)
    torch.testing.assert_close(logits[:2].softmax(1).sum(1), torch.ones(2))
    assert present.tolist() == [True, True, False]
    # this embedder gives no per-cell classifier opinion: pixels are the dense head's alone
    torch.testing.assert_close(mixed.pixel_logits(image), dense.pixel_logits(image))


def test_a_masks_crop_is_classified_once_per_image():
    """Text prompts name the same candidate masks once per phrase: the classifier sees each crop once."""
    image, masks = picture()
    backbone = RedIsTabby()
    namer = Namer(Embedder(backbone), ["cat", "airplane", "grass"], temperature=1.0)
    first, _ = namer.mask_logits(image, masks)
    again, _ = namer.with_vocabulary(["cat", "airplane", "grass"]).mask_logits(image.copy(), masks[::-1].copy())
    torch.testing.assert_close(again, first.flip(0))
    assert sum(map(len, backbone.crops)) == 2
    other = image.copy()
    other[0, 0] = 1  # another image: its masks' crops are its own
    namer.mask_logits(other, masks)
    assert sum(map(len, backbone.crops)) == 4
    uncached = Namer(Embedder(backbone), ["cat"], temperature=1.0, cache_size=0)
    uncached.mask_logits(image, masks)
    uncached.mask_logits(image, masks)
    assert sum(map(len, backbone.crops)) == 8


class CellEmbedder(Embedder):
    """As Embedder, and the classifier's per-cell opinion: the left half of the grid is a tabby, the right
    half an airliner (log-probabilities [1000, 4, 4] on the features' grid)."""

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        cells = torch.full((1000, 4, 4), -30.0)
        cells[TABBY, :, :2], cells[AIRLINER, :, 2:] = 0.0, 0.0
        return DenseEmbedding(self.features, image.shape[:2], cells.log_softmax(0))


def test_pixels_take_the_classifiers_opinion_of_their_cell():
    image, _ = picture()
    names = ["cat", "airplane", "grass"]
    dense = Namer(CellEmbedder(RedIsTabby()), names, temperature=1.0, classifier=False)
    assert (dense.label_pixels(image) == 2).all()  # the dense head leans to grass everywhere
    mixed = Namer(CellEmbedder(RedIsTabby()), names, temperature=1.0, pixel_classifier_weight=1.0)
    labels = mixed.label_pixels(image)
    assert (labels[:, :20] == 0).all() and (labels[:, -20:] == 1).all()  # cat on the left, airplane on the right
    # the mix is log_softmax(dense) + weight x log p(name) on the grid, then resized like any logits
    embedding = mixed.embed(image)
    grid = mixed.grid_logits(embedding, mixed._classes)
    expected = F.log_softmax(dense.grid_logits(embedding, dense._classes), 0)
    share = imagenet.name_share(mixed.transfer_text(), mixed._classes.text, names)
    expected += imagenet.transfer(embedding.imagenet.flatten(1).T, share).T.reshape(3, 4, 4)
    torch.testing.assert_close(grid, expected)
    off = Namer(CellEmbedder(RedIsTabby()), names, temperature=1.0, pixel_classifier_weight=0.0)
    torch.testing.assert_close(off.pixel_logits(image), dense.pixel_logits(image))
    text_only = Namer(CellEmbedder(RedIsTabby()), names, temperature=1.0, pixel_classifier_weight=1.0, wordnet_weight=0)
    share = imagenet.name_share(mixed.transfer_text(), mixed._classes.text)  # no WordNet
    expected = F.log_softmax(dense.grid_logits(embedding, dense._classes), 0)
    expected += imagenet.transfer(embedding.imagenet.flatten(1).T, share).T.reshape(3, 4, 4)
    torch.testing.assert_close(text_only.grid_logits(embedding, text_only._classes), expected)


def test_a_small_weight_leaves_a_sure_dense_head_alone():
    image, masks = picture()
    namer = Namer(Embedder(RedIsTabby()), ["cat", "airplane", "grass"], temperature=0.01, classifier_weight=0.5)
    assert [n for n, _ in namer.name_masks(image, masks[:2])] == ["grass", "grass"]


def test_load_namer_switch_and_embedders_without_a_classifier():
    image, masks = picture()
    assert load_namer("cat, grass", Embedder(RedIsTabby())).classifier is not None
    assert load_namer("cat, grass", Embedder(RedIsTabby()), classifier=False).classifier is None
    plain = load_namer("cat, grass", Embedder())  # no backbone: dense naming only
    assert plain.classifier is None and [n for n, _ in plain.name_masks(image, masks[:1])] == ["grass"]


def test_background_column_gets_the_classifiers_uniform_share():
    image, masks = picture()
    embedder = Embedder(RedIsTabby())
    embedder.background = lambda: torch.tensor([0, 0, 0, 0, 0, 0, 1.0, 0])
    namer = Namer(embedder, ["cat", "airplane"], temperature=1.0, background=True)
    logits, _ = namer.mask_logits(image, masks[:1])
    assert logits.shape == (1, 3) and logits[0].argmax() == 0


def test_imagenet_name_embeddings_are_cached_in_the_process_and_on_disk(tmp_path):
    first = AxisText()
    text = imagenet_text(first)
    assert text.shape == (1000, DIM) and first.calls == 1
    imagenet_text(first)
    assert first.calls == 1
    assert list((tmp_path / "text").glob("imagenet_axes_*.npy"))
    second = AxisText()  # a new encoder of the same name and templates reads the file
    torch.testing.assert_close(imagenet_text(second), text)
    assert second.calls == 0
