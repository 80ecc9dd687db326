"""Review and progress: a reviewer's verdict on each mask (with a comment), and how far the dataset is."""
from __future__ import annotations

from fastapi import APIRouter

from zeroseg.engine import Status
from zeroseg.server.schemas import AnnotationOut, ProgressOut, ReviewIn, ReviewOut
from zeroseg.server.state import AnnotationId, Author, State

router = APIRouter(prefix="/api", tags=["review"])


@router.post("/annotations/{annotation_id}/review", response_model=ReviewOut)
def review(state: State, author: Author, annotation_id: AnnotationId, body: ReviewIn) -> ReviewOut:
    """Accept or reject a mask; the request's author is recorded as its reviewer, with the comment
    (an edit like any other: undo reverts it). In the same transaction, once every mask to review
    (the accepted ones and those reviewed already) has a verdict, the image becomes "rejected" if
    one of them is rejected, else "reviewed"; ``image_status`` says where the image is now."""
    current = state.annotation(annotation_id)
    updated, image_status = state.store.review_annotation(
        current.id, Status(body.verdict), reviewer=author, comment=body.comment or None
    )
    return ReviewOut(**AnnotationOut.of(updated).model_dump(), image_status=image_status)


@router.get("/progress", response_model=ProgressOut, tags=["dataset"])
def progress(state: State) -> ProgressOut:
    """Images per status, and accepted masks in all and per label."""
    return ProgressOut(**state.store.progress(state.dataset.name))
