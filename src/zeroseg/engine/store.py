"""The data engine's store: datasets, images, annotations and their edit history.

:class:`Store` is the one API over the database. Every method that writes runs in exactly one
transaction (so a killed process leaves each write whole or absent) and records an :class:`Edit`
row for every change to an annotation in that same transaction; undo walks those rows back.
Methods take and return plain frozen records (:class:`ImageRecord`, :class:`AnnotationRecord`, ...),
never live ORM objects, so results can cross threads and processes and be serialised as they are.

Masks go in as bool HxW arrays or COCO RLE dicts and are stored as canonical compressed RLE; box and
area are computed from the mask. Images are identified by id, datasets by name.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import sqlalchemy as sa
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy.orm import Session, aliased, sessionmaker

from zeroseg.engine import db
from zeroseg.engine.masks import MaskLike, canonical_rle, rle_area_bbox
from zeroseg.engine.schema import (
    Annotation,
    Dataset,
    Edit,
    EditAction,
    Image,
    ImageStatus,
    LabelClass,
    Source,
    Status,
    utcnow,
)
from zeroseg.errors import (
    DatasetError,
    EmptyImageError,
    ImageReadError,
    ImageTooLargeError,
    NotFoundError,
)
from zeroseg.io import max_pixels_limit, rle_to_mask

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
"""File types :meth:`Store.add_images` picks up when it scans a dataset folder."""

_CHUNK = 500  # rows per IN (...) query and per page when streaming a dataset
_MAX_ID = 2**63 - 1  # the largest integer a database id column holds
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of optional fields in :meth:`Store.update_annotation`: leave the field as it is."""

PALETTE: Final = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#808080",
)  # fmt: skip
"""Colours new classes get, in order (the first one no class of the dataset has yet)."""
_COLOR = re.compile(r"#[0-9a-f]{6}")


class ConflictError(DatasetError):
    """The change clashes with what the store holds (a class name or key that is taken)."""

    http_status = 409

StatusFilter = Status | Iterable[Status] | None


# --- records ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetRecord:
    id: int
    name: str
    root: Path
    categories: list[dict[str, Any]]  # [{"id", "name", "supercategory"}], COCO style
    created_at: datetime
    vocabulary: list[str] = field(default_factory=list)  # its class names, in order: what the app names masks from


@dataclass(frozen=True)
class ClassRecord:
    id: int
    dataset_id: int
    position: int  # place in the class list, from 0
    name: str
    color: str  # "#rrggbb"
    key: str | None  # one character, the keyboard shortcut
    description: str | None


@dataclass(frozen=True)
class ImageRecord:
    id: int
    dataset_id: int
    path: str  # relative to the dataset root, '/'-separated
    file: Path  # absolute path of the file
    sha256: str
    width: int
    height: int
    status: ImageStatus
    created_at: datetime


@dataclass(frozen=True)
class AnnotationRecord:
    id: int
    image_id: int
    rle: dict[str, Any]  # {"size": [h, w], "counts": str}
    bbox: list[float]  # XYWH
    area: float
    iscrowd: bool
    label: str | None
    label_score: float | None
    predicted_iou: float | None
    stability_score: float | None
    source: Source
    status: Status
    model_name: str | None
    model_version: str | None
    author: str | None
    deleted: bool
    created_at: datetime
    updated_at: datetime
    reviewer: str | None = None
    comment: str | None = None
    draw_order: int | None = None  # place in the image's layer stack (0: bottom), once ordered

    def mask(self) -> np.ndarray:
        """The mask as a bool HxW array."""
        return rle_to_mask(self.rle)


@dataclass(frozen=True)
class EditRecord:
    id: int
    annotation_id: int
    image_id: int
    action: EditAction
    before: dict[str, Any] | None  # changed fields before the edit (None for a create)
    after: dict[str, Any] | None  # changed fields after it (the whole annotation for a create)
    author: str | None
    at: datetime
    undo_of: int | None  # the edit this one reverted, if it is an undo
    batch: int | None = None  # edits made (and undone) together share this: the id of their first edit


@dataclass(frozen=True)
class NewAnnotation:
    """An annotation to add: a mask on an image plus what is known about it.

    ``bbox`` (XYWH) and ``area`` default to the mask's tight box and pixel count; an import passes
    the values of its file to keep them exactly.
    """

    image_id: int
    mask: MaskLike = field(repr=False)
    label: str | None = None
    label_score: float | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None
    source: Source = Source.MANUAL
    status: Status = Status.ACCEPTED
    model_name: str | None = None
    model_version: str | None = None
    iscrowd: bool = False
    bbox: Sequence[float] | None = None
    area: float | None = None


# Annotation fields an edit can change (and so records before/after).
_EDITABLE = (
    "rle", "bbox", "area", "iscrowd", "label", "label_score", "predicted_iou", "stability_score",
    "source", "status", "model_name", "model_version", "reviewer", "comment", "draw_order", "deleted",
)  # fmt: skip
_INVERSE = {
    EditAction.CREATE: EditAction.DELETE,
    EditAction.DELETE: EditAction.RESTORE,
    EditAction.RESTORE: EditAction.DELETE,
    EditAction.UPDATE: EditAction.UPDATE,
}


class Store:
    """The data engine's database.

    ``Store(url)`` connects to a SQLAlchemy URL; :meth:`open` also takes a folder or nothing (see
    :func:`zeroseg.engine.db.resolve_url`). The schema is brought to the newest revision on open.
    A store is safe to share between threads; processes open their own (by :attr:`url`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = db.create_engine(url)
        try:
            db.upgrade(self._engine)
        except sa.exc.OperationalError as err:
            self._engine.dispose()
            raise DatasetError(f"cannot open the store at {self._engine.url!r}: {err.orig}") from None
        except BaseException:
            self._engine.dispose()
            raise
        self._read = sessionmaker(bind=self._engine, expire_on_commit=False)
        self._write_session = sessionmaker(bind=db.writer(self._engine), expire_on_commit=False)

    @classmethod
    def open(cls, location: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open the store at a URL, in a folder (``zeroseg.db`` inside it), or at the default place.

        With ``create=False`` a database that is not there yet is not made: NotFoundError instead.
        """
        url = db.resolve_url(location)
        if not create and not db.exists(url):
            raise NotFoundError(
                f"no database at {db.display_url(url)}: `zeroseg serve FOLDER` or `zeroseg engine add` makes one"
            )
        return cls(url)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._engine.url!r})"

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        try:
            with self._write_session() as session, session.begin():
                yield session
        except sa.exc.IntegrityError as err:
            raise DatasetError(f"the store refused the change: {err.orig}") from None

    # --- datasets -----------------------------------------------------------------------------
    def create_dataset(
        self, name: str, root: str | os.PathLike[str], categories: Sequence[Mapping[str, Any]] = ()
    ) -> DatasetRecord:
        """Register a folder of images as a dataset called ``name`` (unique)."""
        if not name or not name.strip():
            raise DatasetError("a dataset needs a non-empty name")
        folder = Path(root).expanduser().resolve()
        if not folder.is_dir():
            raise DatasetError(f"dataset root {folder} is not a folder")
        with self._write() as session:
            if session.scalar(sa.select(Dataset.id).where(Dataset.name == name)) is not None:
                raise DatasetError(f"a dataset called {name!r} exists already")
            row = Dataset(name=name, root=str(folder), categories=_check_categories(categories))
            session.add(row)
            session.flush()
            return _dataset_record(row)

    def get_dataset(self, name: str) -> DatasetRecord:
        with self._read() as session:
            return _dataset_record(_dataset(session, name))

    def datasets(self) -> list[DatasetRecord]:
        with self._read() as session:
            return [_dataset_record(d) for d in session.scalars(sa.select(Dataset).order_by(Dataset.id))]

    def dataset_at(self, folder: str | os.PathLike[str]) -> DatasetRecord | None:
        """The (first) dataset whose root is ``folder``, if there is one."""
        root = Path(folder).expanduser().resolve()
        return next((d for d in self.datasets() if d.root.resolve() == root), None)

    def find_dataset(self, name_or_folder: str | os.PathLike[str]) -> DatasetRecord:
        """A dataset by name or, failing that, by its root folder; NotFoundError if neither."""
        name = os.fspath(name_or_folder)
        with self._read() as session:
            row = session.scalar(sa.select(Dataset).where(Dataset.name == name))
            if row is not None:
                return _dataset_record(row)
        folder = Path(name).expanduser()
        found = self.dataset_at(folder) if folder.is_dir() else None
        if found is None:
            raise NotFoundError(f"no dataset called {name!r}" + (" or rooted in that folder" if folder.is_dir() else ""))
        return found

    def set_categories(self, dataset: str, categories: Sequence[Mapping[str, Any]]) -> DatasetRecord:
        """Replace the dataset's category list (``{"id", "name", "supercategory"}`` entries)."""
        checked = _check_categories(categories)
        with self._write() as session:
            row = _dataset(session, dataset)
            row.categories = checked
            return _dataset_record(row)

    def set_vocabulary(self, dataset: str, names: Sequence[str]) -> DatasetRecord:
        """Replace the dataset's class list by ``names`` (non-empty, distinct), in one transaction.

        Classes whose name is kept keep their colour, key and description; the others are removed
        (their annotations keep their label text) and new names get palette colours.
        """
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise DatasetError(f"a vocabulary is a list of non-empty names, got {names!r}")
        if len(set(names)) != len(names):
            raise DatasetError(f"a vocabulary names each class once, got {list(names)!r}")
        with self._write() as session:
            row = _dataset(session, dataset)
            kept = {c.name: c for c in row.classes if c.name in set(names)}
            for gone in [c for c in row.classes if c.name not in set(names)]:
                session.delete(gone)
            session.flush()
            for position, name in enumerate(names):
                if name in kept:
                    kept[name].position = position
                else:
                    used = {c.color for c in kept.values()}
                    kept[name] = LabelClass(
                        dataset_id=row.id, position=position, name=_class_name(name), color=_free_color(used)
                    )
                    session.add(kept[name])
            session.flush()
            session.expire(row, ["classes"])
            return _dataset_record(row)

    # --- classes ------------------------------------------------------------------------------
    def classes(self, dataset: str) -> list[ClassRecord]:
        """The dataset's class list, in order."""
        with self._read() as session:
            return [_class_record(c) for c in _dataset(session, dataset).classes]

    def get_class(self, class_id: int) -> ClassRecord:
        with self._read() as session:
            return _class_record(_class(session, class_id))

    def add_class(
        self,
        dataset: str,
        name: str,
        *,
        color: str | None = None,
        key: str | None = None,
        description: str | None = None,
    ) -> ClassRecord:
        """Append a class to the dataset's list; its colour defaults to the first unused palette colour.

        Raises ConflictError (409) if the name or key is taken, DatasetError for a bad colour or key.
        """
        name, color, key = _class_name(name), _optional_color(color), _optional_key(key)
        with self._write() as session:
            row = _dataset(session, dataset)
            _check_free(row.classes, name=name, key=key)
            made = LabelClass(
                dataset_id=row.id,
                position=max((c.position for c in row.classes), default=-1) + 1,
                name=name,
                color=color or _free_color({c.color for c in row.classes}),
                key=key,
                description=description or None,
            )
            session.add(made)
            session.flush()
            return _class_record(made)

    def update_class(
        self,
        class_id: int,
        *,
        author: str | None = None,
        name: str | _Unset = UNSET,
        color: str | _Unset = UNSET,
        key: str | None | _Unset = UNSET,
        description: str | None | _Unset = UNSET,
    ) -> ClassRecord:
        """Change a class; a new name relabels every live annotation of the dataset that had the old
        name, in the same transaction, each relabel an edit by ``author``."""
        with self._write() as session:
            row = _class(session, class_id, lock=True)
            siblings = [c for c in _dataset_by_id(session, row.dataset_id).classes if c.id != row.id]
            if not isinstance(name, _Unset):
                name = _class_name(name)
                _check_free(siblings, name=name)
            if not isinstance(key, _Unset):
                key = _optional_key(key)
                _check_free(siblings, key=key)
            if not isinstance(color, _Unset):
                color = _optional_color(color) or row.color
                row.color = color
            if not isinstance(description, _Unset):
                row.description = description or None
            if not isinstance(key, _Unset):
                row.key = key
            if not isinstance(name, _Unset) and name != row.name:
                _relabel(session, row.dataset_id, row.name, name, author)
                row.name = name
            session.flush()
            return _class_record(row)

    def merge_class(self, class_id: int, into: int, *, author: str | None = None) -> ClassRecord:
        """Relabel the class's live annotations with ``into``'s name and delete the class, in one
        transaction; returns the class merged into."""
        if class_id == into:
            raise DatasetError("a class cannot be merged into itself")
        with self._write() as session:
            row = _class(session, class_id, lock=True)
            target = _class(session, into)
            if target.dataset_id != row.dataset_id:
                raise NotFoundError(f"no class with id {into} in the same dataset as class {class_id}")
            _relabel(session, row.dataset_id, row.name, target.name, author)
            session.delete(row)
            session.flush()
            return _class_record(target)

    def delete_class(self, class_id: int) -> ClassRecord:
        """Remove a class from its list (annotations keep their label text)."""
        with self._write() as session:
            row = _class(session, class_id, lock=True)
            record = _class_record(row)
            session.delete(row)
            return record

    def label_counts(self, dataset: str, *, status: StatusFilter = None) -> dict[str, int]:
        """Live (not deleted) annotations of the dataset per label, optionally of the given status(es)."""
        with self._read() as session:
            ds = _dataset(session, dataset)
            query = (
                sa.select(Annotation.label, sa.func.count())
                .join(Image, Image.id == Annotation.image_id)
                .where(Image.dataset_id == ds.id, Annotation.deleted.is_(False), Annotation.label.is_not(None))
                .group_by(Annotation.label)
            )
            if status is not None:
                query = query.where(Annotation.status.in_(_as_set(status, Status)))
            return {label: count for label, count in session.execute(query)}

    # --- images -------------------------------------------------------------------------------
    def add_images(
        self, dataset: str, paths: Iterable[str | os.PathLike[str]] | None = None
    ) -> list[ImageRecord]:
        """Add image files (absolute, or relative to the dataset root) to ``dataset``.

        With ``paths=None`` every image file under the root is added (hidden files and folders
        skipped). Files already in the dataset with the same content are returned as they are, so
        adding again is harmless; a known path whose content changed raises DatasetError. Returns
        the records in the order of ``paths``. One transaction for all.
        """
        ds = self.get_dataset(dataset)
        files = scan_images(ds.root) if paths is None else [_inside(ds.root, Path(p)) for p in paths]
        found: dict[str, tuple[str, int, int]] = {}
        for file in files:
            rel = file.relative_to(ds.root).as_posix()
            if rel not in found:
                found[rel] = _read_image_info(file)
        with self._write() as session:
            existing = {}
            rels = list(found)
            for start in range(0, len(rels), _CHUNK):
                query = sa.select(Image).where(
                    Image.dataset_id == ds.id, Image.path.in_(rels[start : start + _CHUNK])
                )
                existing.update({row.path: row for row in session.scalars(query)})
            for rel, (sha256, width, height) in found.items():
                row = existing.get(rel)
                if row is not None and row.sha256 != sha256:
                    raise DatasetError(f"{rel} in dataset {dataset!r} has changed since it was added")
                if row is None:
                    existing[rel] = Image(
                        dataset_id=ds.id, path=rel, sha256=sha256, width=width, height=height
                    )
                    session.add(existing[rel])
            session.flush()
            return [_image_record(existing[f.relative_to(ds.root).as_posix()], ds.root) for f in files]

    def images(
        self,
        dataset: str,
        *,
        status: ImageStatus | Iterable[ImageStatus] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[ImageRecord]:
        """Images of ``dataset`` in the order they were added, optionally with the given status(es)."""
        with self._read() as session:
            ds = _dataset(session, dataset)
            query = sa.select(Image).where(Image.dataset_id == ds.id).order_by(Image.id).offset(offset)
            if status is not None:
                query = query.where(Image.status.in_(_as_set(status, ImageStatus)))
            if limit is not None:
                query = query.limit(limit)
            root = Path(ds.root)
            return [_image_record(row, root) for row in session.scalars(query)]

    def find_images(
        self,
        dataset: str,
        *,
        status: ImageStatus | Iterable[ImageStatus] | None = None,
        label: str | None = None,
        source: Source | None = None,
        author: str | None = None,
        reviewer: str | None = None,
        path: str | None = None,
        unlabelled: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[ImageRecord], int]:
        """A page of the dataset's images that pass every filter given, and how many pass in all.

        ``label``, ``source``, ``author`` and ``reviewer``: the image has a live annotation with that
        label, source, author or reviewer; ``unlabelled``: it has a live annotation without a label;
        ``path``: its path contains this text (ignoring case). In the order the images were added.
        """
        with self._read() as session:
            ds = _dataset(session, dataset)
            where = [Image.dataset_id == ds.id]
            if status is not None:
                where.append(Image.status.in_(_as_set(status, ImageStatus)))
            if path:
                where.append(Image.path.icontains(path, autoescape=True))
            has = [Annotation.image_id == Image.id, Annotation.deleted.is_(False)]
            conditions = {
                "label": Annotation.label == label if label is not None else None,
                "source": Annotation.source == Source(source) if source is not None else None,
                "author": Annotation.author == author if author is not None else None,
                "reviewer": Annotation.reviewer == reviewer if reviewer is not None else None,
                "unlabelled": Annotation.label.is_(None) if unlabelled else None,
            }
            for condition in conditions.values():
                if condition is not None:
                    where.append(sa.exists().where(*has, condition))
            total = session.scalar(sa.select(sa.func.count()).select_from(Image).where(*where)) or 0
            query = sa.select(Image).where(*where).order_by(Image.id).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            root = Path(ds.root)
            return [_image_record(row, root) for row in session.scalars(query)], total

    def progress(self, dataset: str) -> dict[str, Any]:
        """How far the dataset is: ``total`` images, ``by_status`` (every image status), ``annotations``
        (live accepted ones) and ``by_label`` (live accepted ones per label, unlabelled ones left out)."""
        with self._read() as session:
            ds = _dataset(session, dataset)
            query = sa.select(Image.status, sa.func.count()).where(Image.dataset_id == ds.id).group_by(Image.status)
            by_status = {status.value: 0 for status in ImageStatus}
            for status, count in session.execute(query):
                by_status[ImageStatus(status).value] = count
            accepted = (
                sa.select(sa.func.count())
                .select_from(Annotation)
                .join(Image, Image.id == Annotation.image_id)
                .where(Image.dataset_id == ds.id, Annotation.deleted.is_(False), Annotation.status == Status.ACCEPTED)
            )
            annotations = session.scalar(accepted) or 0
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "annotations": annotations,
            "by_label": self.label_counts(dataset, status=Status.ACCEPTED),
        }

    def get_image(self, image_id: int) -> ImageRecord:
        with self._read() as session:
            row = _image(session, image_id)
            return _image_record(row, Path(session.get_one(Dataset, row.dataset_id).root))

    def find_image(self, dataset: str, path: str | os.PathLike[str]) -> ImageRecord | None:
        """The image of ``dataset`` at ``path`` (absolute, or relative to the root), if there is one."""
        with self._read() as session:
            ds = _dataset(session, dataset)
            root = Path(ds.root)
            rel = _inside(root, Path(path), must_exist=False).relative_to(root).as_posix()
            row = session.scalar(sa.select(Image).where(Image.dataset_id == ds.id, Image.path == rel))
            return None if row is None else _image_record(row, root)

    def set_image_status(self, image_ids: int | Iterable[int], status: ImageStatus) -> None:
        """Set the status of one or more images (one transaction)."""
        ids = {image_ids} if isinstance(image_ids, int) else set(image_ids)
        status = ImageStatus(status)
        with self._write() as session:
            for row in _images(session, ids).values():
                row.status = status

    # --- annotations --------------------------------------------------------------------------
    def add_annotation(self, annotation: NewAnnotation, *, author: str | None = None) -> AnnotationRecord:
        """Add one annotation (and its 'create' edit) in one transaction."""
        return self.add_annotations([annotation], author=author)[0]

    def add_annotations(
        self,
        annotations: Iterable[NewAnnotation],
        *,
        author: str | None = None,
        done_images: Iterable[int] = (),
        skip_existing: bool = False,
    ) -> list[AnnotationRecord]:
        """Add many annotations, with their 'create' edits, in ONE transaction: all or none.

        ``done_images`` are marked :attr:`ImageStatus.AUTO_DONE` in the same transaction, so an
        automatic run that is killed and resumed skips exactly the images whose masks were committed
        (including images where it found nothing). With ``skip_existing`` an annotation whose image
        has a live one with the same mask and label already (or an earlier one of this call) is
        left out, so adding the same annotations twice adds them once; the added ones are returned.
        Raises NotFoundError for an unknown image and DatasetError for a mask that does not fit its image.
        """
        items = list(annotations)
        done = set(done_images)
        with self._read() as session:
            sizes = {i: (row.height, row.width) for i, row in _images(session, {a.image_id for a in items}).items()}
        values = [_new_values(a, *sizes[a.image_id]) for a in items]  # mask work outside the write lock
        with self._write() as session:
            images = _images(session, set(sizes) | done)
            if skip_existing:
                values = _without_existing(session, values)
            rows = [Annotation(**v, author=author, deleted=False) for v in values]
            session.add_all(rows)
            session.flush()
            session.add_all(
                Edit(
                    annotation_id=row.id,
                    image_id=row.image_id,
                    action=EditAction.CREATE,
                    before=None,
                    after=_snapshot(row, _EDITABLE),
                    author=author,
                )
                for row in rows
            )
            for image_id in done:
                images[image_id].status = ImageStatus.AUTO_DONE
            return [_annotation_record(row) for row in rows]

    def get_annotation(self, annotation_id: int) -> AnnotationRecord:
        with self._read() as session:
            return _annotation_record(_annotation(session, annotation_id))

    def annotations_for(
        self, image_id: int, *, status: StatusFilter = None, include_deleted: bool = False
    ) -> list[AnnotationRecord]:
        """Annotations of one image in the order they were made, optionally with the given status(es)."""
        with self._read() as session:
            _image(session, image_id)
            query = _annotation_query([image_id], status, include_deleted)
            return [_annotation_record(row) for row in session.scalars(query)]

    def iter_annotated(
        self, dataset: str, *, status: StatusFilter = Status.ACCEPTED
    ) -> Iterator[tuple[ImageRecord, list[AnnotationRecord]]]:
        """Every image of ``dataset`` (also those without annotations) with its live annotations.

        Streams in pages from one consistent snapshot (one read transaction, REPEATABLE READ on
        PostgreSQL); for exports and training sets. ``status`` defaults to accepted annotations only
        (None: all statuses).
        """
        with self._read() as session:
            if self._engine.dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            ds = _dataset(session, dataset)
            root, last = Path(ds.root), 0
            while True:
                query = (
                    sa.select(Image)
                    .where(Image.dataset_id == ds.id, Image.id > last)
                    .order_by(Image.id)
                    .limit(_CHUNK)
                )
                page = list(session.scalars(query))
                if not page:
                    return
                by_image: dict[int, list[AnnotationRecord]] = {row.id: [] for row in page}
                for row in session.scalars(_annotation_query(list(by_image), status, False)):
                    by_image[row.image_id].append(_annotation_record(row))
                records = [_image_record(row, root) for row in page]
                session.expunge_all()  # keep memory flat over large datasets
                for record in records:
                    yield record, by_image[record.id]
                last = records[-1].id

    def update_annotation(
        self,
        annotation_id: int,
        *,
        author: str | None = None,
        mask: MaskLike | None = None,
        label: str | None | _Unset = UNSET,
        label_score: float | None | _Unset = UNSET,
        predicted_iou: float | None | _Unset = UNSET,
        stability_score: float | None | _Unset = UNSET,
        status: Status | None = None,
        source: Source | None = None,
        model_name: str | None | _Unset = UNSET,
        model_version: str | None | _Unset = UNSET,
        reviewer: str | None | _Unset = UNSET,
        comment: str | None | _Unset = UNSET,
    ) -> AnnotationRecord:
        """Change an annotation (and record the change) in one transaction.

        A new ``mask`` also replaces box and area. Fields left at UNSET/None keep their value
        (pass ``label=None`` to clear a label). Changing nothing records nothing. Raises
        NotFoundError for an unknown id and DatasetError for a deleted annotation.
        """
        changes: dict[str, Any] = {}
        if mask is not None:
            with self._read() as session:
                image = _image(session, _annotation(session, annotation_id).image_id)
                rle = canonical_rle(mask, image.height, image.width)
            area, bbox = rle_area_bbox(rle)
            changes.update(rle=rle, area=area, bbox=bbox)
        optional = {
            "label": label, "label_score": label_score, "predicted_iou": predicted_iou,
            "stability_score": stability_score, "model_name": model_name, "model_version": model_version,
            "reviewer": reviewer, "comment": comment,
        }  # fmt: skip
        changes.update({k: v for k, v in optional.items() if not isinstance(v, _Unset)})
        for key in ("label_score", "predicted_iou", "stability_score"):
            if key in changes:
                changes[key] = _optional_number(changes[key], key)
        if status is not None:
            changes["status"] = Status(status)
        if source is not None:
            changes["source"] = Source(source)
        with self._write() as session:
            row = _annotation(session, annotation_id, lock=True)
            if row.deleted:
                raise DatasetError(f"annotation {annotation_id} is deleted (undo restores it)")
            _apply(session, row, EditAction.UPDATE, changes, author)
            return _annotation_record(row)

    def edit_annotations(
        self,
        *,
        author: str | None = None,
        masks: Mapping[int, MaskLike] | None = None,
        add: Sequence[NewAnnotation] = (),
        delete: Iterable[int] = (),
    ) -> tuple[list[AnnotationRecord], list[AnnotationRecord]]:
        """Give annotations new ``masks``, ``add`` new ones and ``delete`` some, in ONE transaction
        whose edits form one batch (one undo reverts them all). For merges and splits.

        Returns (the changed annotations in the order of ``masks``, the added ones). Raises
        NotFoundError for unknown ids and DatasetError for deleted ones or masks that do not fit.
        """
        masks = dict(masks or {})
        items, doomed = list(add), list(dict.fromkeys(delete))
        with self._read() as session:
            rows = {i: _annotation(session, i) for i in [*masks, *doomed]}
            sizes = {i: (r.height, r.width) for i, r in _images(session, {a.image_id for a in items}).items()}
            for i in masks:
                image = _image(session, rows[i].image_id)
                sizes[image.id] = (image.height, image.width)
        changes = {}
        for i, mask in masks.items():
            rle = canonical_rle(mask, *sizes[rows[i].image_id])
            area, bbox = rle_area_bbox(rle)
            changes[i] = {"rle": rle, "area": area, "bbox": bbox}
        values = [_new_values(a, *sizes[a.image_id]) for a in items]
        with self._write() as session:
            batch = _Batch()
            changed = []
            for i, change in changes.items():
                row = _annotation(session, i, lock=True)
                if row.deleted:
                    raise DatasetError(f"annotation {i} is deleted (undo restores it)")
                batch(_apply(session, row, EditAction.UPDATE, change, author))
                changed.append(row)
            for i in doomed:
                row = _annotation(session, i, lock=True)
                if row.deleted:
                    raise DatasetError(f"annotation {i} is deleted already")
                batch(_apply(session, row, EditAction.DELETE, {"deleted": True}, author))
            added = [Annotation(**v, author=author, deleted=False) for v in values]
            session.add_all(added)
            session.flush()
            for row in added:
                made = Edit(
                    annotation_id=row.id, image_id=row.image_id, action=EditAction.CREATE, before=None,
                    after=_snapshot(row, _EDITABLE), author=author,
                )  # fmt: skip
                session.add(made)
                session.flush()
                batch(made)
            session.flush()
            return [_annotation_record(r) for r in changed], [_annotation_record(r) for r in added]

    def set_statuses(
        self, annotation_ids: Iterable[int], status: Status, *, author: str | None = None
    ) -> list[AnnotationRecord]:
        """Give several annotations one review status in ONE transaction, one batch of edits (one undo
        reverts it); returns them in the order given. Deleted ones raise DatasetError."""
        ids = list(dict.fromkeys(annotation_ids))
        with self._write() as session:
            batch = _Batch()
            rows = []
            for annotation_id in ids:
                row = _annotation(session, annotation_id, lock=True)
                if row.deleted:
                    raise DatasetError(f"annotation {annotation_id} is deleted (undo restores it)")
                batch(_apply(session, row, EditAction.UPDATE, {"status": Status(status)}, author))
                rows.append(row)
            session.flush()
            return [_annotation_record(r) for r in rows]

    def review_annotation(
        self, annotation_id: int, status: Status, *, reviewer: str | None, comment: str | None = None
    ) -> tuple[AnnotationRecord, ImageStatus]:
        """A reviewer's verdict on a mask (an edit by ``reviewer``) and, in the same transaction, the
        image's status: once every mask to review (accepted ones and those reviewed already) has a
        reviewer, the image is rejected if one of them is, else reviewed. Returns both."""
        changes = {"status": Status(status), "reviewer": reviewer, "comment": comment}
        with self._write() as session:
            row = _annotation(session, annotation_id, lock=True)
            if row.deleted:
                raise DatasetError(f"annotation {annotation_id} is deleted (undo restores it)")
            _apply(session, row, EditAction.UPDATE, changes, reviewer)
            image = _image(session, row.image_id)
            live = session.scalars(_annotation_query([image.id], None, False))
            judged = [a for a in live if a.status is Status.ACCEPTED or a.reviewer is not None]
            if all(a.reviewer is not None for a in judged):
                rejected = any(a.status is Status.REJECTED for a in judged)
                image.status = ImageStatus.REJECTED if rejected else ImageStatus.REVIEWED
            return _annotation_record(row), image.status

    def set_draw_order(
        self, image_id: int, annotation_ids: Sequence[int], *, author: str | None = None
    ) -> list[AnnotationRecord]:
        """Order the image's layers: the given live annotations get ``draw_order`` 0, 1, ... (bottom
        first), the image's others none, in ONE transaction whose edits form one batch (one undo
        reverts it). Returns the image's live annotations in draw order, unordered ones last."""
        ids = list(annotation_ids)
        if len(set(ids)) != len(ids):
            raise DatasetError("each annotation appears once in a draw order")
        place = {annotation_id: i for i, annotation_id in enumerate(ids)}
        with self._write() as session:
            _image(session, image_id)
            rows = list(session.scalars(_annotation_query([image_id], None, False).with_for_update()))
            missing = set(place) - {row.id for row in rows}
            if missing:
                raise NotFoundError(f"annotation {min(missing)} is not a live annotation of image {image_id}")
            batch = _Batch()
            for row in rows:
                batch(_apply(session, row, EditAction.UPDATE, {"draw_order": place.get(row.id)}, author))
            session.flush()
            rows.sort(key=lambda row: (row.draw_order is None, row.draw_order or 0, row.id))
            return [_annotation_record(row) for row in rows]

    def delete_annotation(self, annotation_id: int, *, author: str | None = None) -> AnnotationRecord:
        """Mark an annotation deleted (undo brings it back); deleting twice changes nothing."""
        with self._write() as session:
            row = _annotation(session, annotation_id, lock=True)
            _apply(session, row, EditAction.DELETE, {"deleted": True}, author)
            return _annotation_record(row)

    # --- history ------------------------------------------------------------------------------
    def undo(
        self, *, image_id: int | None = None, annotation_id: int | None = None, author: str | None = None
    ) -> EditRecord | None:
        """Revert the newest not-yet-undone edit of one image or one annotation (give exactly one).

        The revert is itself recorded (its ``undo_of`` names the reverted edit), so repeated calls
        walk the history back one edit at a time: an undone create deletes, an undone delete
        restores, an undone update puts the old values back. Edits made together (a batch: a merge,
        a split) are reverted together, within the image or annotation. Returns the new edit (the
        revert of the newest edit), or None when there is nothing left to undo.
        """
        reverts = self.undo_batch(image_id=image_id, annotation_id=annotation_id, author=author)
        return reverts[0] if reverts else None

    def undo_batch(
        self, *, image_id: int | None = None, annotation_id: int | None = None, author: str | None = None
    ) -> list[EditRecord]:
        """:meth:`undo`, returning every revert it made (newest edit's first; empty: nothing to undo)."""
        if (image_id is None) == (annotation_id is None):
            raise ValueError("undo needs exactly one of image_id or annotation_id")
        with self._write() as session:
            if image_id is not None:
                _image(session, image_id)
                scope = Edit.image_id == image_id
            else:
                _annotation(session, annotation_id)  # type: ignore[arg-type]
                scope = Edit.annotation_id == annotation_id
            reverted = aliased(Edit)
            query = (
                sa.select(Edit)
                .where(scope, Edit.undo_of.is_(None), ~sa.exists().where(reverted.undo_of == Edit.id))
                .order_by(Edit.id.desc())
            )
            while True:  # (PostgreSQL) if a concurrent undo took this edit while we waited, take the next
                edit = session.scalar(query.limit(1))
                if edit is None:
                    return []
                _annotation(session, edit.annotation_id, lock=True)
                if session.scalar(sa.select(sa.exists().where(Edit.undo_of == edit.id))) is False:
                    break
            edits = [edit] if edit.batch is None else list(session.scalars(query.where(Edit.batch == edit.batch)))
            batch = _Batch() if len(edits) > 1 else (lambda made: made)
            reverts = []
            for old in edits:
                row = _annotation(session, old.annotation_id, lock=True)
                action = _INVERSE[old.action]
                if action is EditAction.UPDATE:
                    changes = _from_json(old.before or {})
                else:
                    changes = {"deleted": action is EditAction.DELETE}
                reverts.append(batch(_apply(session, row, action, changes, author, undo_of=old.id)))
            session.flush()
            return [_edit_record(e) for e in reverts]

    def history(self, *, image_id: int | None = None, annotation_id: int | None = None) -> list[EditRecord]:
        """Edits of one image or one annotation (give exactly one), oldest first."""
        if (image_id is None) == (annotation_id is None):
            raise ValueError("history needs exactly one of image_id or annotation_id")
        scope = Edit.image_id == image_id if image_id is not None else Edit.annotation_id == annotation_id
        with self._read() as session:
            return [_edit_record(e) for e in session.scalars(sa.select(Edit).where(scope).order_by(Edit.id))]


# --- helpers ------------------------------------------------------------------------------
def _dataset(session: Session, name: str) -> Dataset:
    row = session.scalar(sa.select(Dataset).where(Dataset.name == name))
    if row is None:
        raise NotFoundError(f"no dataset called {name!r}")
    return row


def _dataset_by_id(session: Session, dataset_id: int) -> Dataset:
    return session.get_one(Dataset, dataset_id)


def _class(session: Session, class_id: int, lock: bool = False) -> LabelClass:
    row = session.get(LabelClass, class_id, with_for_update=lock) if _is_id(class_id) else None
    if row is None:
        raise NotFoundError(f"no class with id {class_id}")
    return row


def _class_name(name: Any) -> str:
    if not isinstance(name, str) or not " ".join(name.split()):
        raise DatasetError(f"a class needs a non-empty name, got {name!r}")
    name = " ".join(name.split())
    if len(name) > 200:
        raise DatasetError(f"a class name has at most 200 characters, got {len(name)}")
    return name


def _optional_color(color: Any) -> str | None:
    if color is None:
        return None
    if not isinstance(color, str) or not _COLOR.fullmatch(color.strip().lower()):
        raise DatasetError(f"a class colour is '#rrggbb' (hex), got {color!r}")
    return color.strip().lower()


def _optional_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) != 1 or not key.isprintable() or key.isspace():
        raise DatasetError(f"a class key is one printable character, got {key!r}")
    return key


def _check_free(classes: Iterable[LabelClass], *, name: str | None = None, key: str | None = None) -> None:
    """ConflictError if another class of the list has this name or key."""
    for other in classes:
        if name is not None and other.name == name:
            raise ConflictError(f"there is a class called {name!r} already (id {other.id})")
        if key is not None and other.key == key:
            raise ConflictError(f"the key {key!r} belongs to the class {other.name!r} already")


def _free_color(used: set[str]) -> str:
    return next((c for c in PALETTE if c not in used), PALETTE[len(used) % len(PALETTE)])


class _Batch:
    """Stamps the edits of one multi-edit change with a shared ``batch`` (the first edit's id)."""

    def __init__(self) -> None:
        self.id: int | None = None

    def __call__(self, edit: Edit | None) -> Edit | None:
        if edit is not None:
            self.id = edit.id if self.id is None else self.id
            edit.batch = self.id
        return edit


def _relabel(session: Session, dataset_id: int, old: str, new: str, author: str | None) -> int:
    """Give every live annotation of the dataset labelled ``old`` the label ``new`` (one batch of edits)."""
    query = (
        sa.select(Annotation)
        .join(Image, Image.id == Annotation.image_id)
        .where(Image.dataset_id == dataset_id, Annotation.label == old, Annotation.deleted.is_(False))
        .order_by(Annotation.id)
        .with_for_update()
    )
    batch = _Batch()
    rows = list(session.scalars(query))
    for row in rows:
        batch(_apply(session, row, EditAction.UPDATE, {"label": new}, author))
    session.flush()
    return len(rows)


def _is_id(value: Any) -> bool:
    """Whether ``value`` can be a row id (a larger integer overflows the database's)."""
    return isinstance(value, (int, np.integer)) and 0 < value <= _MAX_ID


def _image(session: Session, image_id: int) -> Image:
    row = session.get(Image, image_id) if _is_id(image_id) else None
    if row is None:
        raise NotFoundError(f"no image with id {image_id}")
    return row


def _images(session: Session, ids: set[int]) -> dict[int, Image]:
    """Images by id; NotFoundError names the first id that is missing."""
    wanted = sorted(ids)
    rows: dict[int, Image] = {}
    usable = [i for i in wanted if _is_id(i)]
    for start in range(0, len(usable), _CHUNK):
        chunk = usable[start : start + _CHUNK]
        rows.update({row.id: row for row in session.scalars(sa.select(Image).where(Image.id.in_(chunk)))})
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise NotFoundError(f"no image with id {missing[0]}")
    return rows


def _annotation(session: Session, annotation_id: int, lock: bool = False) -> Annotation:
    row = session.get(Annotation, annotation_id, with_for_update=lock) if _is_id(annotation_id) else None
    if row is None:
        raise NotFoundError(f"no annotation with id {annotation_id}")
    return row


def _annotation_query(image_ids: list[int], status: StatusFilter, include_deleted: bool) -> sa.Select:
    query = sa.select(Annotation).where(Annotation.image_id.in_(image_ids))
    if not include_deleted:
        query = query.where(Annotation.deleted.is_(False))
    if status is not None:
        query = query.where(Annotation.status.in_(_as_set(status, Status)))
    return query.order_by(Annotation.image_id, Annotation.id)


def _without_existing(session: Session, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``values`` less those whose (image, mask, label) a live annotation or an earlier value has."""
    key = lambda image_id, rle, label: (image_id, rle["counts"], label)  # noqa: E731
    ids = sorted({v["image_id"] for v in values})
    seen = set()
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(Annotation.image_id, Annotation.rle, Annotation.label).where(
            Annotation.image_id.in_(ids[start : start + _CHUNK]), Annotation.deleted.is_(False)
        )
        seen.update(key(*row) for row in session.execute(query))
    kept = []
    for value in values:
        k = key(value["image_id"], value["rle"], value["label"])
        if k not in seen:
            seen.add(k)
            kept.append(value)
    return kept


def _as_set(values: Any, enum: type) -> set[Any]:
    return {enum(values)} if isinstance(values, str) else {enum(v) for v in values}


def _new_values(annotation: NewAnnotation, height: int, width: int) -> dict[str, Any]:
    """Column values of a new annotation; the mask is checked and made canonical."""
    rle = canonical_rle(annotation.mask, height, width)
    area, bbox = rle_area_bbox(rle)
    if annotation.bbox is not None:
        if not isinstance(annotation.bbox, Sequence) or len(annotation.bbox) != 4:
            raise DatasetError(f"bbox must be 4 numbers (x, y, w, h), got {annotation.bbox!r}")
        bbox = [_number(v, "bbox") for v in annotation.bbox]
    return {
        "image_id": annotation.image_id,
        "rle": rle,
        "bbox": bbox,
        "area": area if annotation.area is None else _number(annotation.area, "area"),
        "iscrowd": bool(annotation.iscrowd),
        "label": annotation.label,
        "label_score": _optional_number(annotation.label_score, "label_score"),
        "predicted_iou": _optional_number(annotation.predicted_iou, "predicted_iou"),
        "stability_score": _optional_number(annotation.stability_score, "stability_score"),
        "source": Source(annotation.source),
        "status": Status(annotation.status),
        "model_name": annotation.model_name,
        "model_version": annotation.model_version,
    }


def _apply(
    session: Session,
    row: Annotation,
    action: EditAction,
    changes: Mapping[str, Any],
    author: str | None,
    undo_of: int | None = None,
) -> Edit | None:
    """Set ``changes`` on ``row`` and record them as one edit; nothing if nothing changes (unless undoing)."""
    before = _snapshot(row, changes)
    after = {key: _to_json(value) for key, value in changes.items()}
    changed = [key for key in changes if before[key] != after[key]]
    if not changed and undo_of is None:
        return None
    for key in changed:
        setattr(row, key, changes[key])
    row.updated_at = utcnow()
    edit = Edit(
        annotation_id=row.id,
        image_id=row.image_id,
        action=action,
        before={key: before[key] for key in changed},
        after={key: after[key] for key in changed},
        author=author,
        undo_of=undo_of,
    )
    session.add(edit)
    session.flush()
    return edit


def _snapshot(row: Annotation, keys: Iterable[str]) -> dict[str, Any]:
    return {key: _to_json(getattr(row, key)) for key in keys}


def _number(value: Any, name: str) -> float:
    """``value`` as a plain finite float (numpy scalars included)."""
    if isinstance(value, (str, bytes, bool)):
        raise DatasetError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise DatasetError(f"{name} must be finite, got {number}")
    return number


def _optional_number(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _to_json(value: Any) -> Any:
    return value.value if isinstance(value, (Source, Status)) else value


def _from_json(values: Mapping[str, Any]) -> dict[str, Any]:
    kinds = {"source": Source, "status": Status}
    return {key: kinds[key](value) if key in kinds else value for key, value in values.items()}


def _check_categories(categories: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    checked, ids, names = [], set(), set()
    for category in categories:
        cid, name = category.get("id"), category.get("name")
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str) or not name:
            raise DatasetError(f"a category needs an integer 'id' and a non-empty 'name', got {dict(category)!r}")
        if cid in ids or name in names:
            raise DatasetError(f"category id {cid} or name {name!r} appears twice")
        ids.add(cid)
        names.add(name)
        checked.append({"id": cid, "name": name, "supercategory": str(category.get("supercategory", ""))})
    return checked


def scan_images(root: Path) -> list[Path]:
    """Image files under ``root``, sorted, skipping hidden files and folders and symlinks that lead out of it."""
    real = root.resolve()
    return sorted(
        path
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.resolve().is_relative_to(real)
    )


def _inside(root: Path, path: Path, must_exist: bool = True) -> Path:
    """``path`` (absolute or relative to ``root``) as an absolute path that must lie under ``root``."""
    full = (path if path.is_absolute() else root / path).resolve()
    if not full.is_relative_to(root):
        raise DatasetError(f"{path} is outside the dataset root {root}")
    if must_exist and not full.is_file():
        raise ImageReadError(f"image not found: {full}")
    return full


def _read_image_info(path: Path) -> tuple[str, int, int]:
    """SHA-256 of the file and the (EXIF-rotated) width and height from its header."""
    try:
        with open(path, "rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        with PILImage.open(path) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSED:
                width, height = height, width
    except PILImage.DecompressionBombError as err:
        raise ImageTooLargeError(f"{path}: {err}") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image: {err}") from None
    if width == 0 or height == 0:
        raise EmptyImageError(f"{path}: image is empty ({width}x{height} pixels)")
    if width * height > max_pixels_limit():
        raise ImageTooLargeError(f"{path}: {width}x{height} pixels is more than the limit of {max_pixels_limit():,}")
    return sha256, width, height


def _dataset_record(row: Dataset) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        root=Path(row.root),
        categories=list(row.categories),
        created_at=row.created_at,
        vocabulary=[c.name for c in row.classes],
    )


def _class_record(row: LabelClass) -> ClassRecord:
    return ClassRecord(
        id=row.id,
        dataset_id=row.dataset_id,
        position=row.position,
        name=row.name,
        color=row.color,
        key=row.key,
        description=row.description,
    )


def _image_record(row: Image, root: Path) -> ImageRecord:
    return ImageRecord(
        id=row.id,
        dataset_id=row.dataset_id,
        path=row.path,
        file=root / row.path,
        sha256=row.sha256,
        width=row.width,
        height=row.height,
        status=row.status,
        created_at=row.created_at,
    )


def _annotation_record(row: Annotation) -> AnnotationRecord:
    return AnnotationRecord(
        id=row.id,
        image_id=row.image_id,
        rle=dict(row.rle),
        bbox=list(row.bbox),
        area=row.area,
        iscrowd=row.iscrowd,
        label=row.label,
        label_score=row.label_score,
        predicted_iou=row.predicted_iou,
        stability_score=row.stability_score,
        source=row.source,
        status=row.status,
        model_name=row.model_name,
        model_version=row.model_version,
        author=row.author,
        deleted=row.deleted,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reviewer=row.reviewer,
        comment=row.comment,
        draw_order=row.draw_order,
    )


def _edit_record(row: Edit | None) -> EditRecord | None:
    if row is None:
        return None
    return EditRecord(
        id=row.id,
        annotation_id=row.annotation_id,
        image_id=row.image_id,
        action=row.action,
        before=row.before,
        after=row.after,
        author=row.author,
        at=row.at,
        undo_of=row.undo_of,
        batch=row.batch,
    )
