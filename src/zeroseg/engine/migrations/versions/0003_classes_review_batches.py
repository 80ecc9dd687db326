"""Class lists, review fields, edit batches and the app's image statuses.

- ``classes``: a dataset's class list (name, colour, key, description, position); the vocabulary that
  0002 kept on ``datasets`` becomes its classes, in order, coloured from the palette, and the column goes.
- ``annotations.reviewer`` and ``annotations.comment``: who reviewed a mask and what they said.
- ``edits.batch``: edits made together (a merge, a split) are undone together.
- image statuses gain ``in_progress``, ``annotated`` and ``rejected``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The palette as it was when this revision was written (a revision must not follow later code).
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#808080",
)  # fmt: skip
OLD_STATUSES = ("new", "auto_done", "reviewed")
NEW_STATUSES = ("new", "auto_done", "in_progress", "annotated", "reviewed", "rejected")


def _status_check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    classes = op.create_table(
        "classes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("color", sa.String(7), nullable=False),
        sa.Column("key", sa.String(1), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_classes_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classes")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_classes_dataset_id_name")),
        sa.UniqueConstraint("dataset_id", "key", name=op.f("uq_classes_dataset_id_key")),
        sqlite_autoincrement=True,
    )
    connection = op.get_bind()
    rows = []
    for dataset_id, vocabulary in connection.execute(sa.text("SELECT id, vocabulary FROM datasets ORDER BY id")):
        names = json.loads(vocabulary) if isinstance(vocabulary, str) else (vocabulary or [])
        seen: set[str] = set()
        for name in names:
            if isinstance(name, str) and name.strip() and name not in seen:
                seen.add(name)
                position = len(seen) - 1
                rows.append({"dataset_id": dataset_id, "position": position, "name": name[:200],
                             "color": PALETTE[position % len(PALETTE)], "key": None, "description": None})  # fmt: skip
    if rows:
        op.bulk_insert(classes, rows)
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("vocabulary")
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(sa.Column("reviewer", sa.String(200), nullable=True))
        batch.add_column(sa.Column("comment", sa.Text(), nullable=True))
    with op.batch_alter_table("edits") as batch:
        batch.add_column(sa.Column("batch", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_edits_batch"), ["batch"])
    with op.batch_alter_table("images") as batch:
        batch.drop_constraint(op.f("ck_images_image_status"), type_="check")
        batch.create_check_constraint("image_status", sa.text(_status_check(NEW_STATUSES)))


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        sa.text("UPDATE images SET status = 'new' WHERE status IN ('in_progress', 'annotated', 'rejected')")
    )
    with op.batch_alter_table("images") as batch:
        batch.drop_constraint(op.f("ck_images_image_status"), type_="check")
        batch.create_check_constraint("image_status", sa.text(_status_check(OLD_STATUSES)))
    with op.batch_alter_table("edits") as batch:
        batch.drop_index(op.f("ix_edits_batch"))
        batch.drop_column("batch")
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("comment")
        batch.drop_column("reviewer")
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("vocabulary", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    vocabularies: dict[int, list[str]] = {}
    for dataset_id, name in connection.execute(
        sa.text("SELECT dataset_id, name FROM classes ORDER BY dataset_id, position, id")
    ):
        vocabularies.setdefault(dataset_id, []).append(name)
    for dataset_id, names in vocabularies.items():
        connection.execute(
            sa.text("UPDATE datasets SET vocabulary = :names WHERE id = :id"),
            {"names": json.dumps(names), "id": dataset_id},
        )
    op.drop_table("classes")
