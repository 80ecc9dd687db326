"""The data engine's tables, as SQLAlchemy 2 declarative models.

Five tables: ``datasets`` (a named folder of images, with its COCO categories), ``classes`` (a
dataset's ordered class list: name, colour, key and description; the names are the app's naming
vocabulary),
``images`` (one file of a dataset, by path relative to the dataset root, with its SHA-256 and size),
``annotations`` (one mask on one image, as COCO RLE, with its label, scores and provenance) and
``edits`` (the history of every change to an annotation, which is what undo walks back). Annotations
are never removed by the engine: deleting one sets ``deleted`` so that undo can bring it back.

The schema is created and changed only by the Alembic revisions in ``migrations/``; a test checks
that they produce exactly these models.
"""
from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names, so that later migrations can refer to them on every backend."""


class ImageStatus(StrEnum):
    """Where an image is in the pipeline."""

    NEW = "new"  # nothing automatic has run on it yet
    AUTO_DONE = "auto_done"  # the automatic stage has committed its masks (a resumed run skips it)
    IN_PROGRESS = "in_progress"  # a person has started labelling it
    ANNOTATED = "annotated"  # a person has finished labelling it: ready for review
    REVIEWED = "reviewed"  # a reviewer accepted it
    REJECTED = "rejected"  # a reviewer sent it back


class Source(StrEnum):
    """Who or what made a mask."""

    MANUAL = "manual"  # drawn or imported as human labels
    ASSISTED = "assisted"  # a person prompted a model (clicks, boxes) and accepted its mask
    AUTO = "auto"  # a model made it without a person (segment-everything)


class Status(StrEnum):
    """Review state of an annotation: proposals wait for a person to accept or reject them."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class EditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps naive text: we store UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum], name: str) -> sa.Enum:
    """A string column restricted to the enum's values by a CHECK constraint (no native ENUM type)."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class Dataset(Base):
    """A named collection of images under one root folder.

    ``categories`` holds COCO-style ``{"id", "name", "supercategory"}`` entries: the label vocabulary
    with stable ids, kept from an import so that an export gives the same category ids back.
    ``classes`` is the class list people label with (its names are the naming vocabulary).
    """

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    root: Mapped[str] = mapped_column(sa.String(4096))
    categories: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    classes: Mapped[list[LabelClass]] = relationship(
        order_by="LabelClass.position", lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )


class LabelClass(Base):
    """One class of a dataset's class list: a label name with its colour (``#rrggbb``), an optional
    one-character key and description, at ``position`` in the list. Names and keys are unique per
    dataset (the database enforces it)."""

    __tablename__ = "classes"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "name"),
        sa.UniqueConstraint("dataset_id", "key"),
        {"sqlite_autoincrement": True},  # a deleted class's id is never given to another
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(200))
    color: Mapped[str] = mapped_column(sa.String(7))
    key: Mapped[str | None] = mapped_column(sa.String(1))
    description: Mapped[str | None] = mapped_column(sa.Text())


class Image(Base):
    """One image file of a dataset; ``path`` is relative to the dataset root, with '/' separators.

    ``width`` and ``height`` are those of the image as :func:`zeroseg.io.load_image` returns it
    (after EXIF rotation), so they match every mask stored for it.
    """

    __tablename__ = "images"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "path"),
        sa.Index(None, "dataset_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(sa.String(4096))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    width: Mapped[int]
    height: Mapped[int]
    status: Mapped[ImageStatus] = mapped_column(_enum(ImageStatus, "image_status"), default=ImageStatus.NEW)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    """One mask on one image.

    ``rle`` is a compressed COCO RLE ``{"size": [h, w], "counts": str}`` (canonical, as pycocotools
    writes it); ``bbox`` is XYWH in pixels and ``area`` a pixel count, both taken from the mask
    unless an import supplied its own values. ``draw_order`` is the mask's place in the image's
    layer stack (0 at the bottom) once someone ordered the layers; None until then.
    """

    __tablename__ = "annotations"
    __table_args__ = (sa.Index(None, "image_id", "deleted"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"))
    rle: Mapped[dict[str, Any]]
    bbox: Mapped[list[Any]]
    area: Mapped[float]
    iscrowd: Mapped[bool] = mapped_column(default=False)
    label: Mapped[str | None] = mapped_column(sa.String(200))
    label_score: Mapped[float | None]
    predicted_iou: Mapped[float | None]
    stability_score: Mapped[float | None]
    source: Mapped[Source] = mapped_column(_enum(Source, "source"))
    status: Mapped[Status] = mapped_column(_enum(Status, "status"))
    model_name: Mapped[str | None] = mapped_column(sa.String(200))
    model_version: Mapped[str | None] = mapped_column(sa.String(200))
    author: Mapped[str | None] = mapped_column(sa.String(200))
    reviewer: Mapped[str | None] = mapped_column(sa.String(200))
    comment: Mapped[str | None] = mapped_column(sa.Text())
    draw_order: Mapped[int | None]
    deleted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Edit(Base):
    """One change to one annotation: the fields it changed, before and after.

    ``before`` is None for a create (``after`` then holds the whole annotation). An undo is itself
    an edit, whose ``undo_of`` names the edit it reverted; reverted edits are not undone twice.
    ``image_id`` repeats the annotation's image so that "undo the last edit on this image" is one
    indexed query. Edits made together (a merge: one create and some deletes) share a ``batch``, the
    id of their first edit, and are undone together.
    """

    __tablename__ = "edits"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(sa.ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    action: Mapped[EditAction] = mapped_column(_enum(EditAction, "edit_action"))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    author: Mapped[str | None] = mapped_column(sa.String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    undo_of: Mapped[int | None] = mapped_column(sa.ForeignKey("edits.id", ondelete="CASCADE"), unique=True)
    batch: Mapped[int | None] = mapped_column(index=True)
