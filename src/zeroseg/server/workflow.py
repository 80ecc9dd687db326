"""Review and progress: a reviewer's verdict on each mask (with a comment), and how far the dataset is."""
from __future__ import annotations

from fastapi import APIRouter

from zeroseg.engine import Status
from zeroseg.server.schemas import AnnotationOut, ProgressOut, ReviewIn
from zeroseg.server.state import AnnotationId, Author, State

router = APIRouter(prefix="/api", tags=["review"])


@router.post("/annotations/{annotation_id}/review", response_model=AnnotationOut)
def review(state: State, author: Author, annotation_id: AnnotationId, body: ReviewIn) -> AnnotationOut:
    """Accept or reject a mask; the request's author is recorded as its reviewer, with the comment
    (an edit like any other: undo reverts it)."""
    current = state.annotation(annotation_id)
    updated = state.store.update_annotation(
        current.id, author=author, status=Status(body.verdict), reviewer=author, comment=body.comment or None
    )
    return AnnotationOut.of(updated)


@router.get("/progress", response_model=ProgressOut, tags=["dataset"])
def progress(state: State) -> ProgressOut:
    """Images per status, and accepted masks in all and per label."""
    return ProgressOut(**state.store.progress(state.dataset.name))
