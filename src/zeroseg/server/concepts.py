"""Concept prompts in the app (issue 15): every instance of a class, a phrase or exemplar boxes, as
proposals labelled with the class's name.

With a concept model (SAM 3) the model itself finds every instance (text and exemplar boxes);
with a promptable model zeroseg's text prompt does it (the namer's dense map says where the phrase
wins against the rest of the class list, the model draws each outline). Either way
:func:`zeroseg.segment.text_to_masks` does the work, with the app's own model and namer.
"""
from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter

from zeroseg.engine import Status, stages
from zeroseg.segment import text_to_masks
from zeroseg.server.classes import class_of
from zeroseg.server.schemas import AnnotationOut, ConceptIn, ConceptOut
from zeroseg.server.state import AppState, Author, BadEditError, ImageId, State

router = APIRouter(prefix="/api", tags=["semi-automatic"])


@router.post("/images/{image_id}/concept", response_model=ConceptOut)
def concept(state: State, author: Author, image_id: ImageId, body: ConceptIn) -> ConceptOut:
    """Every instance of the class (``class_id``), phrase (``text``) or exemplar boxes as proposals,
    best score first; instances the image has already (same mask and label) are not added again.

    ``text`` defaults to the class's name; the label is the class's name, else the text. Exemplar
    boxes need a concept model (400 otherwise). Nothing found: 200 with no proposals.
    """
    start = time.perf_counter()
    image = state.image(image_id)
    label = class_of(state, body.class_id).name if body.class_id is not None else body.text
    phrase = body.text or label
    exemplars = [(e.box, e.positive) for e in body.exemplars]
    if phrase is None and not exemplars:
        raise BadEditError("a concept prompt needs text, a class_id or exemplar boxes")
    segmenter = state.segmenter
    if exemplars and not segmenter.concepts:
        raise BadEditError(
            f"exemplar boxes need a concept model (e.g. sam3); this app runs {segmenter.model_name}: "
            "give text or a class instead"
        )
    with segmenter.lock:
        pixels = segmenter.pixels(image.id, state.file(image))
        segments = _find(state, pixels, phrase, exemplars, body.min_score)
    made = [
        dataclasses.replace(stages.new_annotation(s, image.id, Status.PROPOSED), label=label,
                            label_score=s.label_score if label is not None else None)
        for s in sorted(segments, key=lambda s: -(s.predicted_iou or 0.0))
    ]  # fmt: skip
    added = state.store.add_annotations(made, author=author, skip_existing=True)
    return ConceptOut(
        image_id=image.id, proposals=[AnnotationOut.of(a) for a in added], seconds=time.perf_counter() - start
    )


def _find(state: AppState, pixels, phrase: str | None, exemplars: list, min_score: float | None) -> list:
    """The segments of the prompt, with the app's model (and namer, for a promptable model)."""
    segmenter = state.segmenter
    if segmenter.concepts:
        return text_to_masks(pixels, phrase, model=segmenter.model(), exemplars=exemplars, threshold=min_score)
    suggester = state.suggester
    namer = suggester.text_namer(phrase)
    try:
        found = text_to_masks(pixels, phrase, predictor=segmenter.predictor, namer=namer)
    finally:
        segmenter.forget_image()  # the text prompt set the Predictor's image itself
    return [s for s in found if min_score is None or (s.predicted_iou or 0.0) >= min_score]
