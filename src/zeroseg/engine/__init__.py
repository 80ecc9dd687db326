"""The data engine: a transactional store of datasets, images, masks and their edit history.

``Store`` (SQLite by default, PostgreSQL by URL) is the API the web app, the automatic stages and
the training recipes share; ``zeroseg.engine.export`` moves annotations in and out as COCO, YOLO-seg
and PNG masks.
"""
from __future__ import annotations

from zeroseg.engine.masks import MaskLike
from zeroseg.engine.schema import EditAction, ImageStatus, Source, Status
from zeroseg.engine.store import (
    UNSET,
    AnnotationRecord,
    DatasetRecord,
    EditRecord,
    ImageRecord,
    NewAnnotation,
    Store,
)

__all__ = [
    "UNSET",
    "AnnotationRecord",
    "DatasetRecord",
    "EditAction",
    "EditRecord",
    "ImageRecord",
    "ImageStatus",
    "MaskLike",
    "NewAnnotation",
    "Source",
    "Status",
    "Store",
]
