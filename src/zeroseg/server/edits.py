"""Editing masks by hand: polygon rings, brush and eraser strokes, merge and split, layer order.

Every edit is a new version in the store's edit history with the request's author, so the image's
undo reverts it; a merge or split changes several annotations in one transaction and one undo
reverts it whole. Rings follow the even-odd rule (a ring inside another is a hole); strokes are a
round brush along a polyline (:mod:`zeroseg.engine.masks`).
"""
from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from zeroseg.engine import NewAnnotation, Source
from zeroseg.engine.masks import components, mask_to_rings, stroke_mask
from zeroseg.server.schemas import AnnotationOut, DrawOrderIn, MergeIn, PaintIn, PolygonsOut, SplitIn
from zeroseg.server.state import AnnotationId, AppState, Author, BadEditError, ImageId, State

router = APIRouter(prefix="/api", tags=["editing"])


def _stroke(state: AppState, annotation_id: int, points: list, radius: float) -> tuple:
    current = state.annotation(annotation_id)
    image = state.image(current.image_id)
    return current, stroke_mask(points, radius, image.height, image.width)


@router.get("/annotations/{annotation_id}/polygons", response_model=PolygonsOut)
def polygons(state: State, annotation_id: AnnotationId) -> PolygonsOut:
    """The mask as rings (outer boundaries and holes), exact under the even-odd rule."""
    return PolygonsOut(polygons=mask_to_rings(state.annotation(annotation_id).mask()))


@router.post("/annotations/{annotation_id}/paint", response_model=AnnotationOut)
def paint(state: State, author: Author, annotation_id: AnnotationId, body: PaintIn) -> AnnotationOut:
    """Add a brush stroke to the mask, or erase one from it (a mask cannot be erased to nothing:
    delete it instead)."""
    current, stroke = _stroke(state, annotation_id, body.points, body.radius)
    mask = current.mask()
    mask = mask | stroke if body.mode == "add" else mask & ~stroke
    if not mask.any():
        raise BadEditError(f"the stroke would erase all of annotation {current.id}: delete it instead")
    updated = state.store.update_annotation(current.id, author=author, mask=mask)
    state.started(updated.image_id)
    return AnnotationOut.of(updated)


@router.post("/annotations/merge", response_model=AnnotationOut, status_code=201)
def merge(state: State, author: Author, body: MergeIn) -> AnnotationOut:
    """One new annotation whose mask is the union of the given ones (with the first one's label and
    status); the given ones are deleted, all in one transaction."""
    ids = list(dict.fromkeys(body.ids))
    if len(ids) < 2:
        raise BadEditError("a merge needs two or more different annotations")
    parts = [state.annotation(i) for i in ids]
    first = parts[0]
    if any(p.image_id != first.image_id for p in parts):
        raise BadEditError("only annotations of one image can be merged")
    union = np.logical_or.reduce([p.mask() for p in parts])
    made = NewAnnotation(
        image_id=first.image_id, mask=union, label=first.label, label_score=first.label_score,
        source=Source.MANUAL if any(p.source is Source.MANUAL for p in parts) else first.source,
        status=first.status, model_name=first.model_name, model_version=first.model_version,
    )  # fmt: skip
    _, (merged,) = state.store.edit_annotations(author=author, add=[made], delete=ids)
    state.started(merged.image_id)
    return AnnotationOut.of(merged)


@router.post("/annotations/{annotation_id}/split", response_model=list[AnnotationOut])
def split(state: State, author: Author, annotation_id: AnnotationId, body: SplitIn) -> list[AnnotationOut]:
    """Cut the mask along a stroke: each connected part of what is left becomes an annotation with
    the same label (the largest keeps the id), in one transaction. 400 if fewer than two parts."""
    current, stroke = _stroke(state, annotation_id, body.points, body.radius)
    parts = components(current.mask() & ~stroke)
    if len(parts) < 2:
        raise BadEditError(
            f"the stroke leaves annotation {current.id} in {len(parts)} piece{'s' * (len(parts) != 1)}: "
            "draw it across the mask, from one side to the other"
        )
    pieces = [
        NewAnnotation(
            image_id=current.image_id, mask=part, label=current.label, label_score=current.label_score,
            source=current.source, status=current.status, model_name=current.model_name,
            model_version=current.model_version,
        )  # fmt: skip
        for part in parts[1:]
    ]
    (kept,), added = state.store.edit_annotations(author=author, masks={current.id: parts[0]}, add=pieces)
    state.started(kept.image_id)
    return [AnnotationOut.of(a) for a in (kept, *added)]


@router.put("/images/{image_id}/order", response_model=list[AnnotationOut])
def draw_order(state: State, author: Author, image_id: ImageId, body: DrawOrderIn) -> list[AnnotationOut]:
    """Store the image's layer order: the given live annotations are drawn bottom first, the image's
    others (unordered) above them; one transaction, one undo. Returns them in that order."""
    image = state.image(image_id)
    if len(set(body.ids)) != len(body.ids):
        raise BadEditError("each annotation appears once in a layer order")
    return [AnnotationOut.of(a) for a in state.store.set_draw_order(image.id, body.ids, author=author)]
