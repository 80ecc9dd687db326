"""The JSON shapes of the HTTP API, as pydantic models (they are what /openapi.json describes).

Masks travel as compressed COCO RLE (``{"size": [h, w], "counts": str}``, column-major runs), the
same string the store keeps; the page decodes it in a few milliseconds. Coordinates are pixels of
the original image, (x, y); boxes are XYXY in prompts and XYWH (COCO) in annotations. Request
bodies refuse NaN and infinities, and ids beyond what the database holds, with a 422.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zeroseg.engine import (
    AnnotationRecord,
    EditRecord,
    ImageRecord,
    ImageStatus,
    Source,
    Status,
)

MAX_ID = 2**63 - 1
"""The largest id a database integer holds."""

Coordinate = Annotated[float, Field(allow_inf_nan=False)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Score = Annotated[float, Field(allow_inf_nan=False)]
INPUT = ConfigDict(extra="forbid", allow_inf_nan=False)


class RLE(BaseModel):
    """A mask as compressed COCO RLE."""

    size: tuple[int, int] = Field(description="[height, width]")
    counts: str = Field(description="pycocotools' compressed run-length string (column-major)")


class Info(BaseModel):
    dataset: str
    model: str
    author: str
    images: int = Field(description="number of images in the dataset")
    vocabulary: list[str]
    token_required: bool
    max_upload_bytes: int


# --- images -------------------------------------------------------------------------------
class ImageOut(BaseModel):
    id: int
    path: str = Field(description="relative to the dataset root, '/'-separated")
    width: int
    height: int
    status: ImageStatus
    counts: dict[Status, int] = Field(description="live (not deleted) annotations by review status")

    @classmethod
    def of(cls, image: ImageRecord, annotations: list[AnnotationRecord]) -> ImageOut:
        counts = {status: 0 for status in Status}
        for annotation in annotations:
            counts[annotation.status] += 1
        return cls(
            id=image.id, path=image.path, width=image.width, height=image.height, status=image.status, counts=counts
        )


class ImagePage(BaseModel):
    total: int
    offset: int
    images: list[ImageOut]


class ImageStatusIn(BaseModel):
    status: ImageStatus = Field(description="new, in_progress, annotated (done, ready for review), reviewed or rejected")


class ProgressOut(BaseModel):
    total: int = Field(description="images in the dataset")
    by_status: dict[str, int] = Field(description="images per status (every status, zeros included)")
    annotations: int = Field(description="live accepted annotations")
    by_label: dict[str, int] = Field(description="live accepted annotations per label")


class ReviewIn(BaseModel):
    model_config = INPUT

    verdict: Literal["accepted", "rejected"]
    comment: Annotated[str, Field(max_length=2000)] | None = Field(default=None, description="why (kept with the mask)")


class EmbedOut(BaseModel):
    image_id: int
    seconds: float = Field(description="server time to load the image and embed it (or find it cached)")


# --- prediction ---------------------------------------------------------------------------
class PredictIn(BaseModel):
    model_config = INPUT

    points: list[tuple[Coordinate, Coordinate, Literal[0, 1]]] = Field(
        default=[], description="[[x, y, label], ...], label 1 = positive (object), 0 = negative (background)"
    )
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = Field(
        default=None, description="[x0, y0, x1, y1]"
    )
    mask_input: str | None = Field(
        default=None, description="id of an earlier candidate whose low-resolution logits refine this prediction"
    )
    annotation: Id | None = Field(
        default=None, description="id of a stored annotation of this image to refine: its mask is the prior"
    )
    multimask: bool = Field(default=True, description="three candidates for an ambiguous prompt instead of one")

    @field_validator("box")
    @classmethod
    def _box_has_area(cls, box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if box is not None and not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"the box {list(box)} has no area: it needs x1 > x0 and y1 > y0")
        return box


class CandidateOut(BaseModel):
    id: str = Field(description="pass as mask_input to refine, or as candidate to accept")
    rle: RLE
    score: float = Field(description="the model's predicted IoU")
    area: int
    bbox: list[float] = Field(description="XYWH")


class PredictOut(BaseModel):
    image_id: int
    candidates: list[CandidateOut] = Field(description="best predicted IoU first")
    seconds: float = Field(description="server time spent on the prediction")


# --- annotations --------------------------------------------------------------------------
class AnnotationOut(BaseModel):
    id: int
    image_id: int
    rle: RLE
    bbox: list[float] = Field(description="XYWH")
    area: float
    label: str | None
    label_score: float | None
    predicted_iou: float | None
    stability_score: float | None
    source: Source = Field(description="who or what made the mask: manual, assisted or auto")
    status: Status
    model_name: str | None
    author: str | None
    reviewer: str | None = Field(description="who accepted or rejected it in review")
    comment: str | None = Field(description="the reviewer's comment")
    draw_order: int | None = Field(default=None, description="place in the image's layer stack (0: bottom), once ordered")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: AnnotationRecord) -> AnnotationOut:
        return cls(
            id=record.id,
            image_id=record.image_id,
            rle=RLE(size=tuple(record.rle["size"]), counts=record.rle["counts"]),
            bbox=record.bbox,
            area=record.area,
            label=record.label,
            label_score=record.label_score,
            predicted_iou=record.predicted_iou,
            stability_score=record.stability_score,
            source=record.source,
            status=record.status,
            model_name=record.model_name,
            author=record.author,
            reviewer=record.reviewer,
            comment=record.comment,
            draw_order=record.draw_order,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class ReviewOut(AnnotationOut):
    image_status: ImageStatus = Field(description="the image's status after the verdict")


Label = Annotated[str, Field(min_length=1, max_length=200)]
Ring = Annotated[list[Coordinate], Field(max_length=200_000)]
Polygons = Annotated[
    list[Ring],
    Field(
        max_length=10_000,
        description="rings [[x0, y0, x1, y1, ...], ...] in image pixels; holes are rings too (even-odd rule)",
    ),
]


class AnnotationIn(BaseModel):
    """A new annotation: an accepted candidate (source "assisted") or a mask drawn elsewhere ("manual")."""

    model_config = INPUT

    candidate: str | None = Field(default=None, description="id of a candidate from predict")
    rle: RLE | None = Field(default=None, description="a mask given directly instead of a candidate")
    polygons: Polygons | None = Field(default=None, description="a mask given as rings instead")
    label: Label | None = None
    label_score: Score | None = None


class AnnotationPatch(BaseModel):
    """Changes to an annotation; fields left out keep their value (``"label": null`` clears the label)."""

    model_config = INPUT

    label: Label | None = None
    label_score: Score | None = None
    candidate: str | None = Field(default=None, description="replace the mask by this candidate's")
    rle: RLE | None = Field(default=None, description="replace the mask by this one")
    polygons: Polygons | None = Field(default=None, description="replace the mask by these rings")
    status: Status | None = Field(default=None, description="accept or reject a proposal")


class EditOut(BaseModel):
    id: int
    annotation_id: int
    action: str
    author: str | None
    at: datetime

    @classmethod
    def of(cls, record: EditRecord) -> EditOut:
        return cls(
            id=record.id, annotation_id=record.annotation_id, action=record.action, author=record.author, at=record.at
        )


class UndoOut(BaseModel):
    edit: EditOut | None = Field(description="the edit that reverted the newest one; null if nothing was left")
    annotation: AnnotationOut | None = Field(description="the annotation as it is after the undo")
    annotations: list[AnnotationOut] = Field(
        default=[], description="every annotation the undo changed (several when it undid a merge or split)"
    )


# --- mask editing -------------------------------------------------------------------------
Point = tuple[Coordinate, Coordinate]
Stroke = Annotated[list[Point], Field(min_length=1, max_length=10_000, description="[[x, y], ...] image pixels")]
Radius = Annotated[float, Field(gt=0, le=4096, allow_inf_nan=False, description="brush radius in pixels")]


class PolygonsOut(BaseModel):
    polygons: list[list[float]] = Field(
        description="rings [[x0, y0, x1, y1, ...], ...] in image pixels, outer boundaries and holes alike; "
        "rasterised by the even-odd rule they give the stored mask exactly"
    )


class PaintIn(BaseModel):
    """A brush (``add``) or eraser (``erase``) stroke: a round brush dragged along the points."""

    model_config = INPUT

    points: Stroke
    radius: Radius
    mode: Literal["add", "erase"] = "add"


class SplitIn(BaseModel):
    """A cut: the mask minus this stroke falls apart into the new annotations."""

    model_config = INPUT

    points: Stroke
    radius: Radius


class DrawOrderIn(BaseModel):
    model_config = INPUT

    ids: list[Id] = Field(max_length=10_000, description="the image's annotations, bottom layer first")


class MergeIn(BaseModel):
    model_config = INPUT

    ids: list[Id] = Field(min_length=2, max_length=1000, description="annotations of one image; the first gives the label")


# --- naming and proposals -----------------------------------------------------------------
class Vocabulary(BaseModel):
    names: list[Annotated[str, Field(max_length=200)]] = Field(
        max_length=10_000, description="free-text names the zero-shot namer chooses from"
    )


class NameSuggestion(BaseModel):
    name: str
    score: float = Field(description="softmax score over the vocabulary (and the background, if any)")


class NamesOut(BaseModel):
    best: str | None = Field(description="the namer's choice; null when the background wins or no name is sure")
    suggestions: list[NameSuggestion] = Field(description="top names, best first")


class ProposeIn(BaseModel):
    model_config = INPUT

    min_score: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="keep automatic masks above this predicted IoU (default: the model's preset)",
    )  # fmt: skip
    name: bool = Field(default=True, description="name the proposals from the vocabulary")


class AcceptProposalsIn(BaseModel):
    """Which pending proposals to accept: those scoring at least ``min_score``, or the ``ids`` given."""

    model_config = INPUT

    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="accept proposals with predicted IoU >= this")
    ids: list[Id] | None = Field(
        default=None, max_length=10_000, description="accept exactly these pending proposals (min_score is then not used)"
    )


class ImportOut(BaseModel):
    added: int = Field(description="annotations added")
    skipped: int = Field(description="annotations the dataset had already (same image, mask and label)")
    images: int = Field(description="images the file names")


class ProposeOut(BaseModel):
    image_id: int
    proposals: list[AnnotationOut] = Field(description="the image's pending proposals")
    seconds: float


# --- classes ------------------------------------------------------------------------------
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb")]
Key = Annotated[str, Field(min_length=1, max_length=1, description="one character: the class's keyboard key")]
Description = Annotated[str, Field(max_length=2000)]


class ClassOut(BaseModel):
    id: int
    name: str
    color: str = Field(description="#rrggbb")
    key: str | None = Field(description="one character, or null")
    description: str | None
    count: int = Field(description="live (not deleted) annotations with this label")


class ClassIn(BaseModel):
    """A new class; the colour defaults to the first palette colour no class has yet."""

    model_config = INPUT

    name: Label
    color: Color | None = None
    key: Key | None = None
    description: Description | None = None


class ClassPatch(BaseModel):
    """Changes to a class; fields left out keep their value (``"key": null`` clears the key).

    A new name relabels every annotation that had the old one (one transaction).
    """

    model_config = INPUT

    name: Label | None = None
    color: Color | None = None
    key: Key | None = None
    description: Description | None = None


class ClassMergeIn(BaseModel):
    model_config = INPUT

    into: Id = Field(description="the class whose name the merged class's annotations get")



# --- concept prompts ----------------------------------------------------------------------
class ExemplarIn(BaseModel):
    model_config = INPUT

    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] = Field(description="[x0, y0, x1, y1] pixels")
    positive: bool = Field(default=True, description="true: more like this; false: not like this")


class ConceptIn(BaseModel):
    """Find every instance of a class (or a phrase, or what exemplar boxes show) as proposals."""

    model_config = INPUT

    text: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="the phrase to find (default: the class's name)"
    )
    class_id: Id | None = Field(default=None, description="label the instances with this class (its name is the phrase)")
    exemplars: list[ExemplarIn] = Field(
        default=[], max_length=100, description="boxes around examples (concept models only, e.g. sam3)"
    )
    min_score: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="concept models: the instance score to pass (default the model's); others: the least predicted IoU",
    )  # fmt: skip


class ConceptOut(BaseModel):
    image_id: int
    proposals: list[AnnotationOut] = Field(description="the instances found, as proposals, best score first")
    seconds: float
