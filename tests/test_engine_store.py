"""Data engine store: schema and migrations, datasets/images/annotations, undo, atomic writes.

Every store test runs on SQLite and on PostgreSQL (see pg_server.py for where the server comes from).
"""
from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_server import isolated_schema, pg_url  # noqa: F401  (pg_url is a fixture)
from PIL import Image

from zeroseg.engine import (
    UNSET,
    EditAction,
    ImageStatus,
    NewAnnotation,
    Source,
    Status,
    Store,
    db,
)
from zeroseg.engine import store as store_module
from zeroseg.engine.schema import Base, Dataset
from zeroseg.engine.schema import Image as ImageRow
from zeroseg.errors import DatasetError, ImageReadError, NotFoundError
from zeroseg.io import load_image, mask_to_rle

SIZES = {"a.png": (40, 30), "sub/b.png": (24, 16), "c.jpg": (33, 21)}  # name -> (width, height)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with isolated_schema(request.getfixturevalue("pg_url")) as url:
            yield url


@pytest.fixture
def store(db_url):
    with Store(db_url) as opened:
        yield opened


@pytest.fixture
def root(tmp_path) -> Path:
    """A dataset folder: three images (one in a sub-folder), a hidden file and a non-image."""
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name, (width, height) in SIZES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / name)
    Image.new("RGB", (5, 5)).save(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def dataset(store, root):
    store.create_dataset("ds", root)
    return store.add_images("ds")


def _mask(image, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((image.height, image.width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# --- schema -------------------------------------------------------------------------------
def test_migrations_create_exactly_the_models(store):
    with store._engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert db.current_revision(connection) == "0004"


def test_upgrade_from_0001_keeps_datasets_and_adds_a_vocabulary(db_url, root):
    from alembic import command

    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0001")
        connection.execute(
            sa.text("INSERT INTO datasets (name, root, categories, created_at) VALUES ('old', :root, '[]', :at)"),
            {"root": str(root), "at": "2026-01-01 00:00:00"},
        )
    engine.dispose()
    with Store(db_url) as store:
        assert store.get_dataset("old").vocabulary == []
        assert store.set_vocabulary("old", ["cat", "dog"]).vocabulary == ["cat", "dog"]
        with pytest.raises(DatasetError, match="vocabulary"):
            store.set_vocabulary("old", ["cat", ""])
    with Store(db_url) as store:
        assert store.get_dataset("old").vocabulary == ["cat", "dog"]
        assert store.create_dataset("new", root).vocabulary == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with Store.open(tmp_path) as store, store._engine.connect() as connection:
        assert (tmp_path / db.DB_FILENAME).is_file()
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == db.SQLITE_BUSY_TIMEOUT_MS


def test_store_refuses_a_schema_from_a_newer_version(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff'")
    engine.dispose()
    with pytest.raises(DatasetError, match="ffff"):
        Store(url)


def test_unreachable_database_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot open the store"):
        Store(f"postgresql+psycopg://nobody:secret@/db?host={tmp_path}&port=1")
    with pytest.raises(DatasetError, match="cannot open the store"):
        Store(f"sqlite:///{tmp_path}")  # a folder, not a file


def test_resolve_url(tmp_path, monkeypatch):
    monkeypatch.delenv(db.DB_ENV, raising=False)
    monkeypatch.setenv("ZEROSEG_HOME", str(tmp_path / "home"))
    assert db.resolve_url() == f"sqlite:///{tmp_path / 'home' / db.DB_FILENAME}"
    assert db.resolve_url(tmp_path) == f"sqlite:///{tmp_path / db.DB_FILENAME}"
    assert db.resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv(db.DB_ENV, "sqlite:///elsewhere.db")
    assert db.resolve_url() == "sqlite:///elsewhere.db"
    assert db.resolve_url(tmp_path) == f"sqlite:///{tmp_path / db.DB_FILENAME}"  # explicit wins


def test_opening_without_create_makes_no_database(tmp_path):
    with pytest.raises(NotFoundError, match="no database at"):
        Store.open(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()
    assert not db.exists(f"sqlite:///{tmp_path / 'nothing' / db.DB_FILENAME}")
    Store.open(tmp_path / "made").close()
    with Store.open(tmp_path / "made", create=False) as store:
        assert store.datasets() == []
    assert db.display_url("postgresql+psycopg://me:secret@host/db") == "postgresql+psycopg://me:***@host/db"


# --- datasets and images ------------------------------------------------------------------
def test_datasets(store, root, tmp_path):
    created = store.create_dataset("ds", root, categories=[{"id": 3, "name": "cat"}])
    assert created.root == root.resolve()
    assert created.categories == [{"id": 3, "name": "cat", "supercategory": ""}]
    assert store.get_dataset("ds") == created
    assert [d.name for d in store.datasets()] == ["ds"]
    with pytest.raises(DatasetError, match="exists"):
        store.create_dataset("ds", root)
    with pytest.raises(DatasetError, match="not a folder"):
        store.create_dataset("other", tmp_path / "missing")
    with pytest.raises(NotFoundError):
        store.get_dataset("missing")
    with pytest.raises(DatasetError, match="twice"):
        store.set_categories("ds", [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])


def test_scans_skip_symlinks_that_leave_the_root(store, root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 6)).save(outside / "secret.png")
    (root / "secret.png").symlink_to(outside / "secret.png")
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)
    (root / "alias.png").symlink_to(root / "a.png")  # stays inside: an image of the dataset
    assert [p.relative_to(root).as_posix() for p in store_module.scan_images(root)] == [
        "a.png", "alias.png", "c.jpg", "sub/b.png",
    ]  # fmt: skip
    store.create_dataset("ds", root)
    assert sorted(i.path for i in store.add_images("ds")) == ["a.png", "alias.png", "c.jpg", "sub/b.png"]
    with pytest.raises(DatasetError, match="outside"):
        store.add_images("ds", ["secret.png"])


def test_datasets_are_found_by_name_or_folder(store, root, tmp_path):
    store.create_dataset("ds", root)
    assert store.find_dataset("ds").root == root.resolve()
    assert store.find_dataset(str(root)).name == "ds" and store.dataset_at(root / "sub" / "..").name == "ds"
    assert store.dataset_at(tmp_path) is None
    with pytest.raises(NotFoundError, match="no dataset called"):
        store.find_dataset(str(tmp_path))


def test_out_of_range_ids_are_not_found(store, dataset):
    for bad in (2**70, 2**63, 0, -1):
        with pytest.raises(NotFoundError):
            store.get_image(bad)
        with pytest.raises(NotFoundError):
            store.get_annotation(bad)
    with pytest.raises(NotFoundError):
        store.add_annotations([], done_images=[2**70])


def test_add_images_reads_hash_and_size(store, root, dataset):
    assert [image.path for image in dataset] == sorted(SIZES)  # hidden and non-image files skipped
    for image in dataset:
        width, height = SIZES[image.path]
        assert (image.width, image.height) == (width, height)
        assert image.sha256 == hashlib.sha256((root / image.path).read_bytes()).hexdigest()
        assert image.file == root.resolve() / image.path
        assert image.status is ImageStatus.NEW
        assert store.get_image(image.id) == image
    assert store.find_image("ds", "sub/b.png") == dataset[2]
    assert store.find_image("ds", root / "a.png") == dataset[0]
    assert store.find_image("ds", "nope.png") is None


def test_add_images_again_is_harmless_but_changed_files_are_refused(store, root, dataset):
    again = store.add_images("ds", [root / "c.jpg", "a.png", "a.png"])
    assert [image.id for image in again] == [dataset[1].id, dataset[0].id, dataset[0].id]
    assert len(store.images("ds")) == 3
    Image.new("RGB", (40, 30), "red").save(root / "a.png")
    with pytest.raises(DatasetError, match="changed"):
        store.add_images("ds", ["a.png"])


def test_add_images_errors(store, root, dataset, tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    with pytest.raises(DatasetError, match="outside the dataset root"):
        store.add_images("ds", [tmp_path / "outside.png"])
    with pytest.raises(ImageReadError, match="not found"):
        store.add_images("ds", ["missing.png"])
    with pytest.raises(ImageReadError, match="not an image"):
        store.add_images("ds", ["notes.txt"])
    with pytest.raises(NotFoundError):
        store.add_images("missing", ["a.png"])
    assert len(store.images("ds")) == 3  # nothing half-added


def test_image_size_follows_exif_rotation(store, root):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: width and height swap
    Image.new("RGB", (50, 20)).save(root / "rotated.jpg", exif=exif)
    store.create_dataset("ds", root)
    (image,) = store.add_images("ds", ["rotated.jpg"])
    assert (image.height, image.width) == load_image(root / "rotated.jpg").shape[:2] == (50, 20)


def test_image_status_and_paging(store, dataset):
    store.set_image_status(dataset[0].id, ImageStatus.AUTO_DONE)
    store.set_image_status([dataset[1].id], ImageStatus.REVIEWED)
    assert [i.id for i in store.images("ds", status=ImageStatus.NEW)] == [dataset[2].id]
    assert len(store.images("ds", status=[ImageStatus.NEW, ImageStatus.REVIEWED])) == 2
    assert [i.id for i in store.images("ds", offset=1, limit=1)] == [dataset[1].id]
    with pytest.raises(NotFoundError):
        store.set_image_status([dataset[0].id, 999], ImageStatus.NEW)
    assert store.get_image(dataset[0].id).status is ImageStatus.AUTO_DONE  # all or nothing


def test_unique_constraints_hold_in_the_database(store, dataset):
    duplicate_path = ImageRow(dataset_id=dataset[0].dataset_id, path="a.png", sha256="0" * 64, width=1, height=1)
    no_dataset = ImageRow(dataset_id=999, path="x.png", sha256="0" * 64, width=1, height=1)  # foreign key
    for row in (duplicate_path, Dataset(name="ds", root="/"), no_dataset):
        with pytest.raises(DatasetError, match="refused"), store._write() as session:  # bypasses the API's checks
            session.add(row)


# --- annotations --------------------------------------------------------------------------
def test_add_annotations_in_one_transaction(store, dataset, monkeypatch):
    a, c, b = dataset  # a.png, c.jpg, sub/b.png
    new = [
        NewAnnotation(a.id, _mask(a, (2, 3, 10, 8)), label="cat", predicted_iou=np.float32(0.5), source=Source.AUTO,
                      status=Status.PROPOSED, model_name="vit_b", model_version="1", stability_score=0.9),
        NewAnnotation(a.id, mask_to_rle(_mask(a, (0, 0, 1, 1)))),
        NewAnnotation(b.id, _mask(b, (5, 5, 6, 9)), label="dog", label_score=0.7),
    ]  # fmt: skip
    added = store.add_annotations(new, author="auto", done_images=[a.id, c.id])
    first = added[0]
    assert (first.bbox, first.area, first.label, first.predicted_iou) == ([2.0, 3.0, 8.0, 5.0], 40.0, "cat", 0.5)
    assert (first.source, first.status, first.model_name) == (Source.AUTO, Status.PROPOSED, "vit_b")
    assert first.author == "auto"
    assert np.array_equal(first.mask(), _mask(a, (2, 3, 10, 8)))
    assert added[1].rle == mask_to_rle(_mask(a, (0, 0, 1, 1))) and added[1].status is Status.ACCEPTED
    assert [s.status for s in store.images("ds")] == [ImageStatus.AUTO_DONE, ImageStatus.AUTO_DONE, ImageStatus.NEW]
    assert store.annotations_for(a.id) == added[:2]
    assert store.annotations_for(a.id, status=Status.ACCEPTED) == added[1:2]
    assert store.get_annotation(first.id) == first
    (create,) = store.history(annotation_id=first.id)
    assert create.action is EditAction.CREATE and create.before is None and create.author == "auto"
    assert create.after["label"] == "cat" and create.after["rle"] == first.rle
    monkeypatch.setattr(store_module, "_CHUNK", 2)  # page through the images
    pairs = list(store.iter_annotated("ds", status=None))
    assert [(image.id, len(anns)) for image, anns in pairs] == [(a.id, 2), (c.id, 0), (b.id, 1)]


def test_a_bad_annotation_adds_nothing(store, dataset):
    a = dataset[0]
    good = NewAnnotation(a.id, _mask(a, (0, 0, 4, 4)))
    with pytest.raises(DatasetError, match="does not fit"):
        store.add_annotations([good, NewAnnotation(a.id, np.zeros((3, 3), dtype=bool))])
    with pytest.raises(NotFoundError, match="999"):
        store.add_annotations([good, NewAnnotation(999, np.zeros((3, 3), dtype=bool))])
    with pytest.raises(NotFoundError, match="999"):
        store.add_annotations([good], done_images=[999])
    with pytest.raises(DatasetError, match="finite"):
        store.add_annotations([good, NewAnnotation(a.id, _mask(a, (0, 0, 4, 4)), predicted_iou=float("nan"))])
    with pytest.raises(DatasetError, match="bbox"):
        store.add_annotations([good, NewAnnotation(a.id, _mask(a, (0, 0, 4, 4)), bbox="abcd")])
    with pytest.raises(DatasetError, match="label_score"):
        store.add_annotations([good, NewAnnotation(a.id, _mask(a, (0, 0, 4, 4)), label_score="high")])
    assert store.annotations_for(a.id, include_deleted=True) == []
    assert store.get_image(a.id).status is ImageStatus.NEW
    with pytest.raises(NotFoundError):
        store.annotations_for(999)
    with pytest.raises(NotFoundError):
        store.get_annotation(999)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("0\x7f", "alphabet"),  # character outside the COCO alphabet
        ("n13a0000000000R=é", "alphabet"),
        ("n13a0000000000R=o", "truncated"),  # ends inside a multi-character run
        ("oooooooooo0", "impossibly large"),
        ("52", "cover"),  # runs add up to fewer pixels than the image
        ([3, -1, 2], "negative"),
        ([1.5, 2], "integers"),
        (7, "string or a list"),
    ],
)
def test_malformed_rle_is_refused(store, dataset, counts, message):
    a = dataset[0]
    with pytest.raises(DatasetError, match=message):
        store.add_annotation(NewAnnotation(a.id, {"size": [a.height, a.width], "counts": counts}))


def test_rle_must_fit_its_image(store, dataset):
    a = dataset[0]
    with pytest.raises(DatasetError, match="does not fit"):
        store.add_annotation(NewAnnotation(a.id, mask_to_rle(np.zeros((a.width, a.height), dtype=bool))))
    with pytest.raises(DatasetError, match="size"):
        store.add_annotation(NewAnnotation(a.id, {"size": [a.height], "counts": ""}))
    with pytest.raises(DatasetError, match="bool"):
        store.add_annotation(NewAnnotation(a.id, np.full((a.height, a.width), 0.5)))


def test_uncompressed_and_non_canonical_rle_are_stored_canonically(store, dataset):
    a = dataset[0]
    mask = _mask(a, (3, 4, 9, 11))
    canonical = mask_to_rle(mask)
    flat = mask.T.ravel()  # column-major runs
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    padded = [0, 0, *runs, 0]  # zero-length runs change nothing
    for counts in (runs, padded, canonical["counts"].encode()):
        record = store.add_annotation(NewAnnotation(a.id, {"size": [a.height, a.width], "counts": counts}))
        assert record.rle == canonical


def test_update_delete_and_undo(store, dataset):
    a = dataset[0]
    ann = store.add_annotation(NewAnnotation(a.id, _mask(a, (0, 0, 5, 5)), label="cat", status=Status.PROPOSED))
    updated = store.update_annotation(ann.id, label="dog", status=Status.ACCEPTED, author="ann")
    assert (updated.label, updated.status, updated.updated_at >= ann.updated_at) == ("dog", Status.ACCEPTED, True)
    edit = store.history(annotation_id=ann.id)[-1]
    assert (edit.action, edit.before, edit.after, edit.author) == (
        EditAction.UPDATE, {"label": "cat", "status": "proposed"}, {"label": "dog", "status": "accepted"}, "ann",
    )  # fmt: skip
    assert store.update_annotation(ann.id, label="dog", source=Source.MANUAL) == updated  # no change, no edit
    assert len(store.history(annotation_id=ann.id)) == 2
    reshaped = store.update_annotation(ann.id, mask=_mask(a, (10, 10, 12, 13)), label=None, predicted_iou=0.8)
    assert (reshaped.area, reshaped.bbox) == (6.0, [10.0, 10.0, 2.0, 3.0])
    assert (reshaped.label, reshaped.predicted_iou) == (None, 0.8)
    assert store.delete_annotation(ann.id).deleted
    assert store.annotations_for(a.id) == [] and len(store.annotations_for(a.id, include_deleted=True)) == 1
    with pytest.raises(DatasetError, match="deleted"):
        store.update_annotation(ann.id, label="x")

    undone = store.undo(image_id=a.id, author="ann")
    assert undone.action is EditAction.RESTORE and not store.get_annotation(ann.id).deleted
    store.undo(annotation_id=ann.id)  # the mask change
    back = store.get_annotation(ann.id)
    assert (back.rle, back.area, back.label, back.predicted_iou) == (updated.rle, 25.0, "dog", None)
    store.undo(image_id=a.id)  # the first update
    assert store.get_annotation(ann.id).status is Status.PROPOSED
    assert store.undo(image_id=a.id).action is EditAction.DELETE  # the create
    assert store.annotations_for(a.id) == []
    assert store.undo(image_id=a.id) is None  # nothing left
    history = store.history(image_id=a.id)
    assert [e.undo_of for e in history[-4:]] == [history[3].id, history[2].id, history[1].id, history[0].id]


def test_undo_after_new_edits_reverts_the_newest(store, dataset):
    a = dataset[0]
    ann = store.add_annotation(NewAnnotation(a.id, _mask(a, (0, 0, 5, 5)), label="a"))
    store.update_annotation(ann.id, label="b")
    store.undo(annotation_id=ann.id)
    store.update_annotation(ann.id, label="c")
    store.undo(annotation_id=ann.id)
    assert store.get_annotation(ann.id).label == "a"
    other = store.add_annotation(NewAnnotation(a.id, _mask(a, (6, 6, 9, 9))))
    store.undo(image_id=a.id)  # the newest edit of the image is the other annotation's create
    assert store.get_annotation(other.id).deleted and not store.get_annotation(ann.id).deleted


def test_update_and_undo_arguments(store, dataset):
    with pytest.raises(NotFoundError):
        store.update_annotation(999, label="x")
    with pytest.raises(NotFoundError):
        store.delete_annotation(999)
    with pytest.raises(NotFoundError):
        store.undo(image_id=999)
    with pytest.raises(ValueError):
        store.undo()
    with pytest.raises(ValueError):
        store.history(image_id=1, annotation_id=1)
    assert repr(UNSET) == "UNSET"


# --- concurrency and crashes ----------------------------------------------------------------
def test_concurrent_writers_do_not_fail(db_url, dataset):
    """Two threads and a second store on the same database write at once: no lock errors."""
    image = dataset[0]
    errors: list[BaseException] = []

    def write(store: Store, label: str) -> None:
        try:
            for _ in range(8):
                (ann,) = store.add_annotations([NewAnnotation(image.id, _mask(image, (0, 0, 3, 3)), label=label)])
                store.update_annotation(ann.id, status=Status.REJECTED)
                store.undo(annotation_id=ann.id)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with Store(db_url) as first, Store(db_url) as second:
        threads = [threading.Thread(target=write, args=(s, n)) for s, n in ((first, "x"), (first, "y"), (second, "z"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        anns = first.annotations_for(image.id)
        assert len(anns) == 24 and {a.status for a in anns} == {Status.ACCEPTED}


BATCH = 10  # annotations per transaction of the writer below
KILLS = 3

_WRITER = textwrap.dedent(
    f"""
    import sys
    import numpy as np
    from zeroseg.engine import NewAnnotation, Store

    store = Store(sys.argv[1])
    image = store.get_image(int(sys.argv[2]))
    masks = np.random.default_rng(0).random(({BATCH}, image.height, image.width)) < 0.5
    batch = 0
    while True:
        added = store.add_annotations([NewAnnotation(image.id, m, label=f"batch{{batch}}") for m in masks])
        store.update_annotation(added[0].id, label=f"updated{{batch}}")
        batch += 1
    """
)


def test_a_killed_writer_leaves_no_partial_annotation(store, db_url, dataset):
    """SIGKILL a process that writes batches of annotations, at a random moment, a few times over."""
    image = dataset[0]
    for _ in range(KILLS):
        before = len(store.annotations_for(image.id))
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, db_url, str(image.id)], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(store.annotations_for(image.id)) < before + 2 * BATCH:
                assert writer.poll() is None, writer.communicate()[1].decode()
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.01)
            time.sleep(random.uniform(0.0, 0.05))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        assert writer.returncode == -signal.SIGKILL
        with Store(db_url) as reopened:
            _check_whole(reopened, image.id)
    store.add_annotation(NewAnnotation(image.id, _mask(image, (0, 0, 2, 2))))  # still writable


def _check_whole(store: Store, image_id: int) -> None:
    """Batches are whole, every annotation has its create edit, every update is applied, the file is sound."""
    anns = store.annotations_for(image_id)
    assert len(anns) % BATCH == 0
    with store._engine.connect() as connection:
        orphans = connection.execute(
            sa.text(
                "SELECT count(*) FROM annotations a WHERE NOT EXISTS "
                "(SELECT 1 FROM edits e WHERE e.annotation_id = a.id AND e.action = 'create')"
            )
        ).scalar()
        assert orphans == 0
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    updates = {e.annotation_id: e.after["label"] for e in store.history(image_id=image_id) if e.action == "update"}
    assert {a.id: a.label for a in anns if a.label.startswith("updated")} == updates


# --- issue 18: classes, edit batches, review fields, image filters ---------------------------
def test_upgrade_from_0002_turns_the_vocabulary_into_classes(db_url, root):
    from alembic import command

    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0002")
        connection.execute(
            sa.text(
                "INSERT INTO datasets (name, root, categories, vocabulary, created_at) "
                "VALUES ('old', :root, '[]', :names, :at)"
            ),
            {"root": str(root), "names": '["cat", "dog", "cat", ""]', "at": "2026-01-01 00:00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO images (dataset_id, path, sha256, width, height, status, created_at) "
                "VALUES (1, 'a.png', 'x', 40, 30, 'reviewed', :at)"
            ),
            {"at": "2026-01-01 00:00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO annotations (image_id, rle, bbox, area, iscrowd, source, status, deleted, created_at, "
                "updated_at) VALUES (1, :rle, '[0, 0, 1, 1]', 1, false, 'manual', 'accepted', false, :at, :at)"
            ),
            {"rle": '{"size": [30, 40], "counts": "01n\\\\0"}', "at": "2026-01-01 00:00:00"},
        )
    engine.dispose()
    with Store(db_url) as store:  # tables rebuilt by the upgrade keep the rows that refer to them
        assert len(store.annotations_for(1)) == 1 and store.annotations_for(1)[0].comment is None
        classes = store.classes("old")
        assert [(c.name, c.position, c.key) for c in classes] == [("cat", 0, None), ("dog", 1, None)]
        assert [c.color for c in classes] == list(store_module.PALETTE[:2])
        assert store.get_dataset("old").vocabulary == ["cat", "dog"]
        (image,) = store.images("old")
        assert image.status is ImageStatus.REVIEWED
        store.set_image_status(image.id, ImageStatus.IN_PROGRESS)  # the new statuses are allowed
        assert store.get_image(image.id).status is ImageStatus.IN_PROGRESS
        store.set_vocabulary("old", ["dog", "cow"])
    from alembic import command as commands

    engine = sa.create_engine(db_url)
    with engine.begin() as connection:  # and back: the class names become the vocabulary again
        commands.downgrade(db.alembic_config(connection), "0002")
        assert connection.execute(sa.text("SELECT vocabulary FROM datasets")).scalar() in ('["dog", "cow"]', ["dog", "cow"])
        assert connection.execute(sa.text("SELECT status FROM images")).scalar() == "new"  # in_progress is not in 0002
        assert connection.execute(sa.text("SELECT count(*) FROM annotations")).scalar() == 1
    engine.dispose()


def test_class_list(store, dataset):
    cat = store.add_class("ds", "cat", key="c", description="house cats")
    dog = store.add_class("ds", " dog ", color="#00FF00")
    assert (dog.name, dog.color, dog.position) == ("dog", "#00ff00", 1)
    assert cat.color == store_module.PALETTE[0]
    with pytest.raises(store_module.ConflictError, match="called 'cat'"):
        store.add_class("ds", "cat")
    with pytest.raises(store_module.ConflictError, match="key 'c'"):
        store.add_class("ds", "cow", key="c")
    for bad in ({"color": "red"}, {"key": "ab"}, {"key": " "}):
        with pytest.raises(DatasetError):
            store.add_class("ds", "cow", **bad)
    with pytest.raises(store_module.ConflictError):
        store.update_class(dog.id, key="c")
    assert store.update_class(dog.id, key="d", description="").key == "d"
    assert store.get_dataset("ds").vocabulary == ["cat", "dog"]
    # the vocabulary view replaces the list, keeping what kept names had
    store.set_vocabulary("ds", ["dog", "bird"])
    kept = {c.name: c for c in store.classes("ds")}
    assert list(kept) == ["dog", "bird"] and kept["dog"].key == "d" and kept["dog"].color == "#00ff00"
    store.delete_class(kept["bird"].id)
    assert [c.name for c in store.classes("ds")] == ["dog"]
    with pytest.raises(NotFoundError):
        store.get_class(kept["bird"].id)


def test_renaming_and_merging_classes_relabel_in_one_transaction(store, dataset):
    a, b = dataset[0], dataset[1]
    cat = store.add_class("ds", "cat")
    dog = store.add_class("ds", "dog")
    made = store.add_annotations(
        [NewAnnotation(a.id, _mask(a, (0, 0, 5, 5)), label="cat"),
         NewAnnotation(b.id, _mask(b, (0, 0, 5, 5)), label="cat"),
         NewAnnotation(b.id, _mask(b, (5, 5, 9, 9)), label="dog")]
    )  # fmt: skip
    store.update_class(cat.id, name="kitten", author="ann")
    assert [store.get_annotation(m.id).label for m in made] == ["kitten", "kitten", "dog"]
    assert store.history(annotation_id=made[0].id)[-1].author == "ann"
    assert store.label_counts("ds") == {"kitten": 2, "dog": 1}
    assert store.merge_class(dog.id, cat.id, author="bob").name == "kitten"
    assert [c.name for c in store.classes("ds")] == ["kitten"]
    assert {store.get_annotation(m.id).label for m in made} == {"kitten"}
    store.undo(image_id=b.id)  # the merge's relabel on image b, then the rename's
    assert store.get_annotation(made[2].id).label == "dog"
    with pytest.raises(DatasetError):
        store.merge_class(cat.id, cat.id)


def test_a_batch_of_edits_is_undone_together(store, dataset):
    image = dataset[0]
    one, two = store.add_annotations(
        [NewAnnotation(image.id, _mask(image, (0, 0, 5, 5))), NewAnnotation(image.id, _mask(image, (5, 0, 9, 5)))]
    )
    union = _mask(image, (0, 0, 9, 5))
    changed, (merged,) = store.edit_annotations(add=[NewAnnotation(image.id, union)], delete=[one.id, two.id], author="m")
    assert changed == [] and merged.area == 45
    assert [a.id for a in store.annotations_for(image.id)] == [merged.id]
    reverts = store.undo_batch(image_id=image.id, author="u")
    assert len(reverts) == 3 and len({e.batch for e in reverts}) == 1
    assert [a.id for a in store.annotations_for(image.id)] == [one.id, two.id]
    (updated,), _ = store.edit_annotations(masks={one.id: union})
    assert updated.area == 45 and store.undo(image_id=image.id).action is EditAction.UPDATE
    assert store.get_annotation(one.id).area == 25
    with pytest.raises(NotFoundError):
        store.edit_annotations(delete=[one.id, 10**6])
    assert len(store.annotations_for(image.id)) == 2  # nothing happened


def test_review_fields_and_image_filters(store, dataset):
    a, b, c = dataset
    first = store.add_annotation(NewAnnotation(a.id, _mask(a, (0, 0, 5, 5)), label="cat"), author="ann")
    store.add_annotation(NewAnnotation(b.id, _mask(b, (0, 0, 5, 5)), source=Source.AUTO), author="bot")
    reviewed = store.update_annotation(first.id, status=Status.REJECTED, reviewer="rev", comment="too big")
    assert (reviewed.reviewer, reviewed.comment) == ("rev", "too big")
    store.undo(annotation_id=first.id)
    assert store.get_annotation(first.id).comment is None
    store.set_image_status(c.id, ImageStatus.ANNOTATED)
    ids = lambda **f: [i.id for i in store.find_images("ds", **f)[0]]  # noqa: E731
    assert ids(label="cat") == [a.id] and ids(unlabelled=True) == [b.id]
    assert ids(source=Source.AUTO) == [b.id] and ids(author="ann") == [a.id]
    assert ids(status=[ImageStatus.ANNOTATED]) == [c.id]
    assert ids(path="sub/") == [i.id for i in dataset if i.path.startswith("sub/")]
    assert ids(path="%") == [] and ids(label="cat", source=Source.AUTO) == []
    page, total = store.find_images("ds", offset=1, limit=1)
    assert total == 3 and [i.id for i in page] == [b.id]
    progress = store.progress("ds")
    assert progress["total"] == 3 and progress["by_status"]["annotated"] == 1 and progress["by_status"]["new"] == 2
    assert progress["annotations"] == 2 and progress["by_label"] == {"cat": 1}
