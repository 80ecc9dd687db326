"""The HTTP API under ``/api``: images, prompts -> mask candidates, annotations, names, proposals,
and the dataset's export and COCO import (the engine code that ``zeroseg engine export/import`` runs).
The class list (:mod:`~zeroseg.server.classes`), hand edits (:mod:`~zeroseg.server.edits`), review and
progress (:mod:`~zeroseg.server.workflow`) and concept prompts (:mod:`~zeroseg.server.concepts`) are
routers of their own.

Endpoints are plain functions (FastAPI runs them in its thread pool); the model work inside them
is serialised by the app's lock (see :mod:`zeroseg.server.segmenter`). Everything an endpoint
needs lives in one :class:`~zeroseg.server.state.AppState` on ``app.state.zeroseg``. Zeroseg errors
become their ``http_status`` with ``{"detail": message}`` (see :mod:`zeroseg.server.app`).
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from zeroseg.engine import ImageStatus, NewAnnotation, Source, Status, stages
from zeroseg.engine import export as exports
from zeroseg.engine.export import ExportFormat
from zeroseg.errors import DatasetError, NotFoundError, PromptValueError
from zeroseg.io import rle_to_mask
from zeroseg.segment.concept import ConceptLabeller
from zeroseg.server.files import UploadTooLargeError, check_upload, save_upload
from zeroseg.server.schemas import (
    RLE,
    AcceptProposalsIn,
    AnnotationIn,
    AnnotationOut,
    AnnotationPatch,
    CandidateOut,
    EditOut,
    EmbedOut,
    ImageOut,
    ImagePage,
    ImageStatusIn,
    MAX_ID,
    ImportOut,
    Info,
    NamesOut,
    NameSuggestion,
    PredictIn,
    PredictOut,
    ProposeIn,
    ProposeOut,
    UndoOut,
    Vocabulary,
)
from zeroseg.server.state import AnnotationId, AppState, Author, ImageId, State
from zeroseg.vocabulary import clean_names

__all__ = ["AppState", "router"]


router = APIRouter(prefix="/api")


# --- dataset and images ---------------------------------------------------------------------
@router.get("/info", response_model=Info, tags=["dataset"])
def info(state: State, author: Author) -> Info:
    """The dataset, model and settings this server works with; ``author`` is who this request's
    changes are recorded as (the holder of its token, when tokens are named)."""
    return Info(
        dataset=state.dataset.name,
        model=state.segmenter.model_name,
        author=author,
        images=len(state.store.images(state.dataset.name)),
        vocabulary=state.suggester.vocabulary,
        token_required=state.token is not None or bool(state.tokens),
        max_upload_bytes=state.max_upload_bytes,
    )


@router.get("/images", response_model=ImagePage, tags=["images"])
def list_images(
    state: State,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    status: Annotated[list[ImageStatus] | None, Query(description="only images with this status (repeatable)")] = None,
    label: Annotated[str | None, Query(max_length=200, description="only images with a mask of this label")] = None,
    source: Annotated[Source | None, Query(description="only images with a mask from this source")] = None,
    author: Annotated[str | None, Query(max_length=200, description="only images with a mask by this author")] = None,
    reviewer: Annotated[str | None, Query(max_length=200, description="only images this person reviewed a mask of")] = None,
    q: Annotated[str | None, Query(max_length=4096, description="only images whose path contains this")] = None,
    unlabelled: Annotated[bool, Query(description="only images with a mask that has no label")] = False,
) -> ImagePage:
    """Images of the dataset in the order they were added, with their status and annotation counts;
    the filters (masks: live ones) combine, and ``total`` counts the images that pass them."""
    page, total = state.store.find_images(
        state.dataset.name, status=status or None, label=label, source=source, author=author, reviewer=reviewer,
        path=q, unlabelled=unlabelled, offset=offset, limit=limit,
    )  # fmt: skip
    return ImagePage(total=total, offset=offset, images=[state.summary(image) for image in page])


@router.post("/images", response_model=ImageOut, status_code=201, tags=["images"])
def upload_image(state: State, file: Annotated[UploadFile, File(description="a JPEG, PNG, BMP, TIFF or WebP image")]) -> ImageOut:
    """Add an image: checked with Pillow, saved under ``uploads/`` in the dataset root."""
    data = file.file.read(state.max_upload_bytes + 1)
    suffix = check_upload(data, state.max_upload_bytes)
    path = save_upload(state.root, file.filename or "upload", data, suffix)
    (image,) = state.store.add_images(state.dataset.name, [path])
    return state.summary(image)


@router.post("/images/scan", response_model=ImagePage, tags=["images"])
def scan_images(state: State) -> ImagePage:
    """Add image files that appeared in the dataset folder since it was opened (returns the new ones)."""
    name = state.dataset.name
    known = {image.id for image in state.store.images(name)}
    added = [image for image in state.store.add_images(name) if image.id not in known]
    return ImagePage(total=len(known) + len(added), offset=0, images=[state.summary(image) for image in added])


@router.get("/images/{image_id}", response_model=ImageOut, tags=["images"])
def get_image(state: State, image_id: ImageId) -> ImageOut:
    return state.summary(state.image(image_id))


@router.get("/images/{image_id}/file", response_class=FileResponse, tags=["images"])
def image_file(state: State, image_id: ImageId) -> FileResponse:
    """The image file itself (only from inside the dataset root)."""
    return FileResponse(state.file(state.image(image_id)), headers={"Cache-Control": "private, max-age=3600"})


@router.put("/images/{image_id}/status", response_model=ImageOut, tags=["images"])
def set_image_status(state: State, image_id: ImageId, body: ImageStatusIn) -> ImageOut:
    """Set an image's status: annotated when its labelling is done, reviewed or rejected in review."""
    image = state.image(image_id)
    state.store.set_image_status(image.id, body.status)
    return state.summary(state.image(image_id))


# --- prediction -----------------------------------------------------------------------------
@router.post("/images/{image_id}/embed", response_model=EmbedOut, tags=["predict"])
def embed(state: State, image_id: ImageId) -> EmbedOut:
    """Embed the image now (it is cached), so that the first click is answered fast."""
    image = state.image(image_id)
    return EmbedOut(image_id=image.id, seconds=state.segmenter.embed(image.id, state.file(image)))


@router.post("/images/{image_id}/predict", response_model=PredictOut, tags=["predict"])
def predict(state: State, image_id: ImageId, body: PredictIn) -> PredictOut:
    """Mask candidates for points and/or a box (and optionally an earlier candidate or stored mask)."""
    start = time.perf_counter()
    image = state.image(image_id)
    prior = None
    if body.annotation is not None:
        stored = state.annotation(body.annotation)
        if stored.image_id != image.id:
            raise NotFoundError(f"annotation {body.annotation} is not on image {image.id}")
        prior = stored.mask()
    candidates = state.segmenter.predict(
        image.id, state.file(image), body.points, body.box, body.mask_input, prior, body.multimask
    )
    return PredictOut(
        image_id=image.id,
        candidates=[
            CandidateOut(id=c.id, rle=RLE(**c.rle), score=c.score, area=c.area, bbox=c.bbox) for c in candidates
        ],
        seconds=time.perf_counter() - start,
    )


# --- annotations ----------------------------------------------------------------------------
@router.get("/images/{image_id}/annotations", response_model=list[AnnotationOut], tags=["annotations"])
def list_annotations(state: State, image_id: ImageId) -> list[AnnotationOut]:
    """Live annotations of the image (proposals and rejected ones included), oldest first; each
    has its ``draw_order`` once the layers were ordered (``PUT /images/{id}/order``)."""
    return [AnnotationOut.of(a) for a in state.store.annotations_for(state.image(image_id).id)]


@router.post("/images/{image_id}/annotations", response_model=AnnotationOut, status_code=201, tags=["annotations"])
def create_annotation(state: State, author: Author, image_id: ImageId, body: AnnotationIn) -> AnnotationOut:
    """Accept a candidate (source "assisted") or store a given mask (source "manual")."""
    image = state.image(image_id)
    rle, score = state.mask_of(image, body.candidate, body.rle, body.polygons)
    assisted = body.candidate is not None
    record = state.store.add_annotation(
        NewAnnotation(
            image_id=image.id,
            mask=rle,
            label=body.label,
            label_score=body.label_score if body.label else None,
            predicted_iou=score,
            source=Source.ASSISTED if assisted else Source.MANUAL,
            status=Status.ACCEPTED,
            model_name=state.segmenter.model_name if assisted else None,
        ),
        author=author,
    )
    state.started(image.id)
    return AnnotationOut.of(record)


@router.get("/annotations/{annotation_id}", response_model=AnnotationOut, tags=["annotations"])
def get_annotation(state: State, annotation_id: AnnotationId) -> AnnotationOut:
    return AnnotationOut.of(state.annotation(annotation_id))


@router.patch("/annotations/{annotation_id}", response_model=AnnotationOut, tags=["annotations"])
def update_annotation(
    state: State, author: Author, annotation_id: AnnotationId, body: AnnotationPatch
) -> AnnotationOut:
    """Rename, re-mask (from a candidate, RLE or polygon rings), or accept/reject a proposal."""
    current = state.annotation(annotation_id)
    given = body.model_fields_set
    changes: dict = {}
    if "label" in given:
        changes["label"] = body.label
        changes["label_score"] = body.label_score if body.label else None
    if body.candidate is not None or body.rle is not None or body.polygons is not None:
        image = state.image(current.image_id)
        changes["mask"], changes["predicted_iou"] = state.mask_of(image, body.candidate, body.rle, body.polygons)
        if body.candidate is not None:
            changes["source"], changes["model_name"] = Source.ASSISTED, state.segmenter.model_name
    if body.status is not None:
        changes["status"] = body.status
    updated = state.store.update_annotation(current.id, author=author, **changes)
    state.started(updated.image_id)
    return AnnotationOut.of(updated)


@router.delete("/annotations/{annotation_id}", response_model=AnnotationOut, tags=["annotations"])
def delete_annotation(state: State, author: Author, annotation_id: AnnotationId) -> AnnotationOut:
    """Delete an annotation (undo brings it back)."""
    return AnnotationOut.of(state.store.delete_annotation(state.annotation(annotation_id).id, author=author))


@router.post("/images/{image_id}/undo", response_model=UndoOut, tags=["annotations"])
def undo(state: State, author: Author, image_id: ImageId) -> UndoOut:
    """Revert the newest edit on the image that is not undone yet (create, update or delete; a merge
    or split, made of several edits, is reverted whole)."""
    edits = state.store.undo_batch(image_id=state.image(image_id).id, author=author)
    if not edits:
        return UndoOut(edit=None, annotation=None)
    changed = [AnnotationOut.of(state.store.get_annotation(e.annotation_id)) for e in edits]
    return UndoOut(edit=EditOut.of(edits[0]), annotation=changed[0], annotations=changed)


# --- names ----------------------------------------------------------------------------------
@router.get("/names", response_model=NamesOut, tags=["names"])
def suggest_names(
    state: State,
    image: Annotated[int, Query(ge=1, le=MAX_ID, description="image id")],
    mask: Annotated[str, Query(description="a candidate id (c12) or an annotation id (17)")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> NamesOut:
    """Zero-shot names for a mask, from the current vocabulary."""
    record = state.image(image)
    if mask.isdigit():
        annotation = state.annotation(int(mask))
        if annotation.image_id != record.id:
            raise NotFoundError(f"annotation {mask} is not on image {record.id}")
        pixels = annotation.mask()
    else:
        pixels = rle_to_mask(state.segmenter.candidate(mask, record.id).rle)
    best, ranked = state.suggester.suggest(state.segmenter.pixels(record.id, state.file(record)), pixels, k)
    return NamesOut(best=best, suggestions=[NameSuggestion(name=n, score=s) for n, s in ranked])


@router.get("/vocabulary", response_model=Vocabulary, tags=["names"])
def get_vocabulary(state: State) -> Vocabulary:
    """The class names, in order (see ``/api/classes``)."""
    return Vocabulary(names=state.suggester.vocabulary)


@router.put("/vocabulary", response_model=Vocabulary, tags=["names"])
def set_vocabulary(state: State, body: Vocabulary) -> Vocabulary:
    """Replace the class list by these names (cleaned: trimmed, duplicates dropped); classes whose
    name is kept keep their colour, key and description."""
    state.store.set_vocabulary(state.dataset.name, clean_names(body.names))
    return Vocabulary(names=state.sync_vocabulary())


# --- export and import ----------------------------------------------------------------------
ExportStatus = Literal["accepted", "proposed", "rejected", "all"]
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@router.get(
    "/export",
    response_class=FileResponse,
    tags=["dataset"],
    responses={200: {"content": {"application/json": {}, "application/zip": {}}}},
)
def export_dataset(
    state: State,
    format: Annotated[
        ExportFormat, Query(description="coco (RLE masks), coco-polygons, yolo (YOLO-seg) or png (masks)")
    ] = ExportFormat.coco,
    status: Annotated[
        list[ExportStatus], Query(description="export masks with this status (repeatable; default accepted)")
    ] = ["accepted"],  # noqa: B006  (FastAPI copies defaults)
) -> FileResponse:
    """Download the dataset's masks: COCO as a JSON file, YOLO-seg labels and PNG masks as a zip.

    Written by the engine's exporter, the one ``zeroseg engine export`` runs.
    """
    statuses = None if "all" in status else [Status(s) for s in status]
    stem = _UNSAFE_NAME.sub("_", state.dataset.name).strip("._") or "dataset"
    work = Path(tempfile.mkdtemp(prefix="zeroseg-export-"))
    try:
        if format.is_file:
            path = exports.export(state.store, state.dataset.name, work / f"{stem}-{format}.json", format,
                                  status=statuses)  # fmt: skip
            media = "application/json"
        else:
            folder = exports.export(state.store, state.dataset.name, work / stem, format, status=statuses)
            path = Path(shutil.make_archive(str(work / f"{stem}-{format}"), "zip", folder))
            media = "application/zip"
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        path, media_type=media, filename=path.name, background=BackgroundTask(shutil.rmtree, work, ignore_errors=True)
    )


@router.post("/import", response_model=ImportOut, tags=["dataset"])
def import_annotations(
    state: State,
    author: Author,
    file: Annotated[
        UploadFile, File(description="a COCO instances JSON file; its file_name paths start at the dataset folder")
    ],
    status: Annotated[
        Literal["accepted", "proposed"], Query(description="status of the imported masks")
    ] = "accepted",
) -> ImportOut:
    """Add the masks of a COCO file (RLE or polygons) to the dataset; masks it has already are skipped.

    Read by the engine's importer, the one ``zeroseg engine import`` runs.
    """
    data = file.file.read(state.max_upload_bytes + 1)
    if len(data) > state.max_upload_bytes:
        raise UploadTooLargeError(f"the upload has more than {state.max_upload_bytes:,} bytes")
    name = file.filename or "the upload"
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise DatasetError(f"{name} is not a JSON file: {err}") from None
    done = exports.import_coco_data(
        state.store, parsed, state.dataset.name, author=author, source=Source.MANUAL, status=Status(status), where=name
    )
    return ImportOut(added=len(done.added), skipped=done.skipped, images=len(done.images))


# --- semi-automatic -------------------------------------------------------------------------
@router.post("/images/{image_id}/propose", response_model=ProposeOut, tags=["semi-automatic"])
def propose(state: State, image_id: ImageId, body: ProposeIn | None = None) -> ProposeOut:
    """Run the automatic stage on the image and store its masks as proposals to accept or reject.

    If the image has pending proposals already, they are returned as they are (accept or reject
    them to propose again; masks that duplicate a live annotation are not proposed). The app's own
    model and namer do the work, with the model's preset; ``min_score`` overrides its IoU filter. A
    concept model (SAM 3) proposes every instance of every class instead (``min_score``: the
    instance score to pass).
    """
    body = body or ProposeIn()
    start = time.perf_counter()
    image = state.image(image_id)
    pending = state.store.annotations_for(image.id, status=Status.PROPOSED)
    if not pending:
        state.file(image)  # the stage reads the file: refuse one outside the root first
        with state.segmenter.lock:  # the stage's model would compete with clicks for the same cores
            if state.segmenter.concepts:  # every instance of every class, one concept prompt per name
                if not state.suggester.vocabulary:
                    raise PromptValueError(f"{state.segmenter.model_name} proposes instances of the classes: add classes first")
                pipeline = ConceptLabeller(state.segmenter.model(), state.suggester.vocabulary, body.min_score)
            else:
                namer = state.suggester.namer() if body.name and state.suggester.vocabulary else None
                pipeline = state.segmenter.everything(namer, pred_iou_thresh=body.min_score)
            try:
                stages.propose(state.store, image.id, pipeline)
            finally:
                state.segmenter.forget_image()
        pending = state.store.annotations_for(image.id, status=Status.PROPOSED)
    return ProposeOut(
        image_id=image.id, proposals=[AnnotationOut.of(a) for a in pending], seconds=time.perf_counter() - start
    )


@router.post("/images/{image_id}/proposals/accept", response_model=list[AnnotationOut], tags=["semi-automatic"])
def accept_proposals(state: State, author: Author, image_id: ImageId, body: AcceptProposalsIn) -> list[AnnotationOut]:
    """Accept the image's pending proposals whose predicted IoU reaches ``min_score`` (or exactly the
    ``ids`` given, which must be pending proposals of the image), in one transaction that one undo
    reverts; the other proposals stay pending. Returns the accepted ones, best score first."""
    image = state.image(image_id)
    pending = {a.id: a for a in state.store.annotations_for(image.id, status=Status.PROPOSED)}
    if body.ids is not None:
        missing = [i for i in body.ids if i not in pending]
        if missing:
            raise NotFoundError(f"annotation {missing[0]} is not a pending proposal of image {image.id}")
        chosen = [pending[i] for i in dict.fromkeys(body.ids)]
    else:
        chosen = [a for a in pending.values() if (a.predicted_iou or 0.0) >= body.min_score]
    chosen.sort(key=lambda a: -(a.predicted_iou or 0.0))
    accepted = state.store.set_statuses([a.id for a in chosen], Status.ACCEPTED, author=author)
    if accepted:
        state.started(image.id)
    return [AnnotationOut.of(a) for a in accepted]
