"""Naming with a concept model (SAM 3) through the Namer API: a fake model's instances decide the names."""
from __future__ import annotations

import numpy as np
import pytest

from zeroseg.errors import PromptValueError
from zeroseg.models.hf.sam3 import ConceptInstances
from zeroseg.segment.concept_naming import NONE_SCORE, ConceptNamer
from zeroseg.segment.naming import load_namer
from zeroseg.segment.vocabulary_namer import VocabularyNamer

IMAGE = np.zeros((40, 60, 3), np.uint8)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(IMAGE.shape[:2], bool)
    mask[y0:y1, x0:x1] = True
    return mask


COW, SHEEP = box(5, 25, 5, 25), box(10, 30, 35, 55)


class FakeConcepts:
    """A concept model that finds one cow and one sheep (and counts its calls)."""

    concepts = True

    def __init__(self) -> None:
        self.calls = 0

    def find(self, image, texts, threshold=None):
        self.calls += 1
        found = {"cow": [(COW, 0.9)], "sheep": [(SHEEP, 0.6)]}
        out = []
        for text in texts:
            items = found.get(text, [])
            masks = np.array([m for m, _ in items]) if items else np.zeros((0, *IMAGE.shape[:2]), bool)
            out.append(ConceptInstances(masks, np.zeros((len(items), 4), np.float32),
                                        np.array([s for _, s in items], np.float32)))
        return out


def test_masks_take_the_name_of_the_instance_that_matches_them():
    model = FakeConcepts()
    namer = load_namer("cow, sheep, grass", model)
    assert isinstance(namer, ConceptNamer) and isinstance(namer, VocabularyNamer)
    half_cow = COW.copy()
    half_cow[15:] = False  # IoU 0.5 with the cow: 0.45 > NONE_SCORE
    nothing = box(32, 40, 0, 10)
    named = namer.name_masks(IMAGE, np.stack([COW, SHEEP, half_cow, nothing, np.zeros_like(COW)]))
    assert [label for label, _ in named] == ["cow", "sheep", "cow", None, None]
    assert named[0][1] == pytest.approx(0.9 / (0.9 + NONE_SCORE), rel=1e-4)  # the share of cow against "none"
    assert model.calls == 1  # the image's instances are found once for all its masks
    labels = namer.label_pixels(IMAGE)
    assert labels[10, 10] == 0 and labels[20, 45] == 1 and labels[35, 2] == -1


def test_with_vocabulary_and_errors():
    namer = load_namer("cow", FakeConcepts())
    other = namer.with_vocabulary("sheep")
    assert other.name_masks(IMAGE, SHEEP[None])[0][0] == "sheep" and namer.vocabulary == ["cow"]
    with pytest.raises(PromptValueError):
        namer.with_vocabulary(" , ")
    with pytest.raises(PromptValueError, match="no dense embedding"):
        namer.embed(IMAGE)
    with pytest.raises(Exception, match="masks must be"):
        namer.name_masks(IMAGE, np.zeros((1, 5, 5), bool))
