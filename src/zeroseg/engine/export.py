"""Annotations in and out of the store: COCO both ways, YOLO-seg and PNG masks out.

Exports take the live annotations of one dataset with the given status(es) (accepted ones by default)
and write every file atomically. Labels become categories (:func:`zeroseg.engine.coco.categories_for`):
the dataset's own category list keeps its ids (so a COCO import exports with the same ids), new
labels get the next free ids in name order, and masks without a label are exported as :data:`UNLABELLED`.

COCO goes through :mod:`zeroseg.engine.coco`, the reader and writer ``zeroseg everything`` uses too:
an annotation is a :class:`~zeroseg.segment.record.Segment` on the way, so exports carry the scores
and provenance (``score`` = predicted IoU, ``stability_score``, ``label_score``, ``source``,
``model_name``, ``model_version``) and an import keeps them.

- COCO, RLE: masks exactly as stored. COCO, polygons: outer boundaries traced on pixel edges, so
  pycocotools rasterises them back to the same pixels, except that holes are filled (lossy);
  crowd and empty masks stay RLE. Each written file is read back with pycocotools before it is
  moved into place.
- YOLO-seg: ``labels/<image path>.txt`` with one ``class x1 y1 x2 y2 ...`` line (normalised to the
  image size) per outer boundary (a mask in several pieces gives several lines; holes are lost),
  an empty file for an image without masks, and ``classes.txt`` (line i names class i).
- PNG masks: ``semantic/<image path>.png`` (pixel = class index, 0 = background, line i of
  ``classes.txt``) and ``instances/<image path>.png`` (pixel = k for the k-th mask of the image, in
  annotation order, 0 = background); larger masks are painted first so smaller ones stay on top.
  8-bit, or 16-bit when there are more than 255 classes or masks.
- COCO import: RLE (compressed or not) and polygons (rasterised by pycocotools); image files must be
  under the dataset root and match the sizes in the file; all annotations in one transaction. A mask
  already on its image with the same label is not added again, so importing a file twice adds it once.
  The category :data:`UNLABELLED` reads back as no label.

:func:`export` and :func:`import_coco_data` are what both the ``zeroseg engine`` commands and the
web app call.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import zeroseg
from zeroseg.engine import coco
from zeroseg.engine.coco import UNLABELLED
from zeroseg.engine.masks import canonical_rle, mask_to_polygons, polygons_to_rle
from zeroseg.engine.schema import Source, Status
from zeroseg.engine.stages import new_annotation
from zeroseg.engine.store import (
    AnnotationRecord,
    DatasetRecord,
    ImageRecord,
    StatusFilter,
    Store,
)
from zeroseg.errors import DatasetError, NotFoundError, OutputError, ZerosegError
from zeroseg.io import atomic_path, atomic_write, ensure_dir, max_pixels_limit, rle_to_mask, save_png
from zeroseg.segment.record import Segment

Annotated = list[tuple[ImageRecord, list[AnnotationRecord]]]


class ExportFormat(StrEnum):
    coco = "coco"
    coco_polygons = "coco-polygons"
    yolo = "yolo"
    png = "png"

    @property
    def is_file(self) -> bool:
        """COCO is one JSON file; YOLO and PNG are folders."""
        return self in (ExportFormat.coco, ExportFormat.coco_polygons)


def export(
    store: Store,
    dataset: str,
    out: str | os.PathLike[str],
    format: ExportFormat | str = ExportFormat.coco,
    *,
    status: StatusFilter = Status.ACCEPTED,
) -> Path:
    """Write ``dataset`` in ``format`` to ``out`` (COCO: the JSON file; YOLO, PNG: the folder)."""
    format = ExportFormat(format)
    if format.is_file:
        return export_coco(store, dataset, out, polygons=format is ExportFormat.coco_polygons, status=status)
    if format is ExportFormat.yolo:
        return export_yolo(store, dataset, out, status=status)
    return export_png_masks(store, dataset, out, status=status)


@dataclass(frozen=True)
class CocoImport:
    """What a COCO import did."""

    added: list[AnnotationRecord]
    skipped: int  # annotations the dataset had already (same image, mask and label)
    images: list[ImageRecord]  # the file's images, as the dataset has them


# --- COCO ---------------------------------------------------------------------------------
def export_coco(
    store: Store,
    dataset: str,
    path: str | os.PathLike[str],
    *,
    polygons: bool = False,
    status: StatusFilter = Status.ACCEPTED,
) -> Path:
    """Write ``dataset`` as a COCO instances JSON file (RLE masks, or polygons) and return its path.

    Image ids are the store's image ids, annotation ids the store's annotation ids, ``file_name``
    the path relative to the dataset root; each annotation carries the stored scores and provenance
    (:mod:`zeroseg.engine.coco`). Raises OutputError (nothing written) if pycocotools
    does not read the file back to the same masks.
    """
    ds = store.get_dataset(dataset)
    annotated = list(store.iter_annotated(dataset, status=status))
    info = {
        "description": f"zeroseg export of dataset {ds.name!r}",
        "version": zeroseg.__version__,
        "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    images = [
        (
            {"id": image.id, "file_name": image.path, "width": image.width, "height": image.height},
            [(segment_of_record(ann), _coco_keys(ann, polygons)) for ann in anns],
        )
        for image, anns in annotated
    ]
    document = coco.document(images, categories=ds.categories, info=info)
    expected = {ann.id: ann.rle for _, anns in annotated for ann in anns}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document), encoding="utf-8")
        _check_coco(tmp, expected, polygons)
    return Path(path)


def import_coco(
    store: Store,
    path: str | os.PathLike[str],
    dataset: str,
    *,
    root: str | os.PathLike[str] | None = None,
    author: str | None = None,
    source: Source = Source.MANUAL,
    status: Status = Status.ACCEPTED,
) -> CocoImport:
    """Add the images and annotations of a COCO instances file to ``dataset``.

    A missing dataset is created with root ``root`` (default: the JSON file's folder). See
    :func:`import_coco_data`.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read COCO file {path}: {err}") from None
    return import_coco_data(
        store, data, dataset, root=root if root is not None else path.parent, author=author, source=source,
        status=status, where=str(path),
    )  # fmt: skip


def import_coco_data(
    store: Store,
    data: Any,
    dataset: str,
    *,
    root: str | os.PathLike[str] | None = None,
    author: str | None = None,
    source: Source = Source.MANUAL,
    status: Status = Status.ACCEPTED,
    where: str = "the COCO file",
) -> CocoImport:
    """Add the images and annotations of parsed COCO instances JSON to ``dataset``.

    A missing dataset is created with root ``root``; its category list gains the file's categories
    (new names keep their id when it is free). ``file_name`` is relative to the dataset root.
    Bounding boxes, areas and ``iscrowd`` are kept as written, and so are the scores and provenance
    zeroseg writes (:mod:`zeroseg.engine.coco`); ``source`` is for annotations that name none (or
    one the store does not know). Annotations the dataset has already
    (same image, mask and label) are skipped; the others are added in one transaction. Raises
    DatasetError (naming ``where``) for malformed data, a missing image or a size that does not match,
    with no annotation added.
    """
    path = where
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise DatasetError(f"{path}: a COCO file needs 'images' and 'annotations' lists")
    categories = data.get("categories", [])
    _check_coco_categories(categories, path)
    names = {c["id"]: c["name"] for c in categories}
    entries = {}
    for entry in data["images"]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("file_name"), str)
            and all(isinstance(entry.get(k), int) and entry[k] > 0 for k in ("width", "height"))
        ):
            raise DatasetError(f"{path}: every image needs an 'id', a 'file_name', a 'width' and a 'height'")
        if entry["width"] * entry["height"] > max_pixels_limit():
            size = f"{entry['width']}x{entry['height']}"
            raise DatasetError(f"{path}: image {entry['file_name']!r} is too large ({size} pixels)")
        entries[entry.get("id")] = entry
    # Every mask is checked before anything is written.
    parsed = [_parse_annotation(ann, entries, names, path, Source(source)) for ann in data["annotations"]]

    try:
        ds = store.get_dataset(dataset)
    except NotFoundError:
        if root is None:
            raise
        ds = store.create_dataset(dataset, root)
    store.set_categories(dataset, _merge_categories(ds.categories, categories))
    try:
        records = store.add_images(dataset, [e["file_name"] for e in entries.values()])
    except ZerosegError as err:  # a missing or unreadable image: say which file named it
        raise type(err)(f"{path}: {err}") from None
    images = dict(zip(entries, records))
    for coco_id, record in images.items():
        entry = entries[coco_id]
        if (entry["height"], entry["width"]) != (record.height, record.width):
            raise DatasetError(
                f"{path}: {entry['file_name']} is {record.width}x{record.height} on disk, "
                f"{entry['width']}x{entry['height']} in the file"
            )
    new = [
        replace(new_annotation(segment, images[coco_id].id, status), iscrowd=iscrowd)
        for coco_id, segment, iscrowd in parsed
    ]
    added = store.add_annotations(new, author=author, skip_existing=True)
    return CocoImport(added=added, skipped=len(new) - len(added), images=records)


def _parse_annotation(
    ann: Any, entries: Mapping[Any, Mapping[str, Any]], names: Mapping[int, str], path: str, source: Source
) -> tuple[Any, Segment, bool]:
    """(COCO image id, segment, iscrowd) of one COCO annotation, its mask checked for its image and
    its scores for their types; ``source`` unless it names a known one."""
    where = f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else repr(ann)}"
    if not isinstance(ann, dict) or ann.get("image_id") not in entries:
        raise DatasetError(f"{where} names no image of the file")
    if ann.get("category_id") not in names:
        raise DatasetError(f"{where} names no category of the file")
    height, width = entries[ann["image_id"]]["height"], entries[ann["image_id"]]["width"]
    segmentation = ann.get("segmentation")
    try:
        if isinstance(segmentation, dict):
            mask = canonical_rle(segmentation, height, width)
        elif isinstance(segmentation, list):
            mask = polygons_to_rle(segmentation, height, width)
        else:
            raise DatasetError("it has no segmentation")
    except DatasetError as err:
        raise DatasetError(f"{where}: {err}") from None
    bbox, area = ann.get("bbox"), ann.get("area")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
        raise DatasetError(f"{where}: 'bbox' must be 4 numbers (x, y, w, h)")
    if area is not None and not _is_number(area):
        raise DatasetError(f"{where}: 'area' must be a number")
    for key in ("score", "stability_score", "label_score"):
        if ann.get(key) is not None and not (_is_number(ann[key]) and math.isfinite(ann[key])):
            raise DatasetError(f"{where}: {key!r} must be a number")
    for key in ("model_name", "model_version"):
        if ann.get(key) is not None and not isinstance(ann[key], str):
            raise DatasetError(f"{where}: {key!r} must be a string")
    known = ann.get("source") in {s.value for s in Source}
    # the prompt and crop box are not stored: leave them unread
    fields = {k: v for k, v in ann.items() if k not in ("point_coords", "crop_box")}
    fields["source"] = ann["source"] if known else source.value
    segment = coco.segment_of(fields, names[ann["category_id"]], mask)
    return ann["image_id"], segment, bool(ann.get("iscrowd", 0))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_coco_categories(categories: Any, path: str) -> None:
    if not isinstance(categories, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str) and c["name"]
        for c in categories
    ):
        raise DatasetError(f"{path}: 'categories' must be a list of objects with an integer 'id' and a 'name'")


def _merge_categories(known: list[dict[str, Any]], incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``known`` plus the ``incoming`` categories whose names it lacks (keeping their ids when free)."""
    merged = list(known)
    names = {c["name"] for c in merged}
    ids = {c["id"] for c in merged}
    for category in incoming:
        if category.get("name") in names:
            continue
        cid = category.get("id")
        if cid in ids:
            cid = max(ids) + 1
        merged.append({**category, "id": cid})
        names.add(category.get("name"))
        ids.add(cid)
    return merged


def _coco_keys(ann: AnnotationRecord, polygons: bool) -> dict[str, Any]:
    """What a COCO annotation of a stored one takes from the store rather than its segment."""
    return {"id": ann.id, "segmentation": _segmentation(ann, polygons), "iscrowd": ann.iscrowd}


def _segmentation(ann: AnnotationRecord, polygons: bool) -> Any:
    if polygons and not ann.iscrowd:
        outline = mask_to_polygons(ann.mask())
        if outline:
            return outline
    return dict(ann.rle)


def _check_coco(path: Path, expected: Mapping[int, dict[str, Any]], polygons: bool) -> None:
    """Read a written COCO file with pycocotools: every mask must decode at its image's size, and RLE
    masks to exactly the stored ones."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
        for ann_id, stored in expected.items():
            ann = coco.anns[ann_id]
            image = coco.imgs[ann["image_id"]]
            rle = coco.annToRLE(ann)
            if list(rle["size"]) != [image["height"], image["width"]]:
                raise ValueError(f"annotation {ann_id} does not fit its image")
            counts = rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]
            mask = mask_utils.decode({"size": rle["size"], "counts": counts})
            if not polygons and not np.array_equal(mask.astype(bool), rle_to_mask(stored)):
                raise ValueError(f"annotation {ann_id} reads back as another mask")
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:  # pycocotools tripped
        raise OutputError(f"pycocotools cannot read the COCO file back: {err} (nothing was written)") from None


# --- YOLO-seg -----------------------------------------------------------------------------
def export_yolo(
    store: Store, dataset: str, out_dir: str | os.PathLike[str], *, status: StatusFilter = Status.ACCEPTED
) -> Path:
    """Write YOLO-seg labels (``labels/<image path>.txt``) and ``classes.txt`` under ``out_dir``."""
    out = ensure_dir(out_dir)
    ds = store.get_dataset(dataset)
    annotated = list(store.iter_annotated(dataset, status=status))
    names = [c["name"] for c in _categories(ds, annotated)]
    index = {name: i for i, name in enumerate(names)}
    for (image, anns), file in zip(annotated, _output_files(annotated, ".txt")):
        lines = []
        for ann in anns:
            scale = np.array([image.width, image.height], dtype=np.float64)
            for polygon in mask_to_polygons(ann.mask()):
                xy = np.clip(np.asarray(polygon).reshape(-1, 2) / scale, 0.0, 1.0)
                lines.append(" ".join([str(index[_label(ann)]), *(f"{v:.6f}" for v in xy.ravel())]))
        atomic_write(out / "labels" / file, "".join(f"{line}\n" for line in lines))
    atomic_write(out / "classes.txt", "".join(f"{name}\n" for name in names))
    return out


# --- PNG masks ----------------------------------------------------------------------------
def export_png_masks(
    store: Store, dataset: str, out_dir: str | os.PathLike[str], *, status: StatusFilter = Status.ACCEPTED
) -> Path:
    """Write per-image class and instance PNGs (``semantic/``, ``instances/``) and ``classes.txt``."""
    out = ensure_dir(out_dir)
    ds = store.get_dataset(dataset)
    annotated = list(store.iter_annotated(dataset, status=status))
    names = [c["name"] for c in _categories(ds, annotated)]
    value = {name: i + 1 for i, name in enumerate(names)}
    class_dtype = np.uint8 if len(names) <= 255 else np.uint16
    for (image, anns), file in zip(annotated, _output_files(annotated, ".png")):
        semantic = np.zeros((image.height, image.width), dtype=class_dtype)
        instances = np.zeros((image.height, image.width), dtype=np.uint8 if len(anns) <= 255 else np.uint16)
        for k in sorted(range(len(anns)), key=lambda k: -anns[k].area):
            mask = anns[k].mask()
            semantic[mask] = value[_label(anns[k])]
            instances[mask] = k + 1
        save_png(out / "semantic" / file, semantic)
        save_png(out / "instances" / file, instances)
    atomic_write(out / "classes.txt", "".join(f"{name}\n" for name in ["background", *names]))
    return out


# --- shared -------------------------------------------------------------------------------
def _label(ann: AnnotationRecord) -> str:
    return ann.label if ann.label else UNLABELLED


def _categories(ds: DatasetRecord, annotated: Annotated) -> list[dict[str, Any]]:
    """The dataset's categories plus one per label they lack (:func:`zeroseg.engine.coco.categories_for`)."""
    return coco.categories_for((ann.label for _, anns in annotated for ann in anns), ds.categories)


def segment_of_record(ann: AnnotationRecord) -> Segment:
    """A stored annotation as a :class:`~zeroseg.segment.record.Segment` (mask, box and area as stored)."""
    return Segment(
        ann.rle,
        bbox=list(ann.bbox),
        area=ann.area,
        predicted_iou=ann.predicted_iou,
        stability_score=ann.stability_score,
        label=ann.label,
        label_score=ann.label_score,
        source=Source(ann.source).value,
        model_name=ann.model_name,
        model_version=ann.model_version,
    )


def _output_files(annotated: Annotated, suffix: str) -> list[Path]:
    """Relative output path per image (its own path with ``suffix``); two images must not share one."""
    files = [Path(image.path).with_suffix(suffix) for image, _ in annotated]
    if len(set(files)) != len(files):
        clash = next(f for f in files if files.count(f) > 1)
        raise OutputError(f"two images of the dataset would both write {clash} (nothing was written)")
    return files
