"""Initial schema: datasets, images, annotations and their edit history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("root", sa.String(4096), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("status", _enum("image_status", "new", "auto_done", "reviewed"), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_images_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("dataset_id", "path", name=op.f("uq_images_dataset_id_path")),
    )
    op.create_index(op.f("ix_images_dataset_id_status"), "images", ["dataset_id", "status"])
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("rle", sa.JSON(), nullable=False),
        sa.Column("bbox", sa.JSON(), nullable=False),
        sa.Column("area", sa.Double(), nullable=False),
        sa.Column("iscrowd", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("label_score", sa.Double(), nullable=True),
        sa.Column("predicted_iou", sa.Double(), nullable=True),
        sa.Column("stability_score", sa.Double(), nullable=True),
        sa.Column("source", _enum("source", "manual", "assisted", "auto"), nullable=False),
        sa.Column("status", _enum("status", "proposed", "accepted", "rejected"), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_annotations_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_image_id_deleted"), "annotations", ["image_id", "deleted"])
    op.create_table(
        "edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("action", _enum("edit_action", "create", "update", "delete", "restore"), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        _timestamp("at"),
        sa.Column("undo_of", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"], ["annotations.id"], name=op.f("fk_edits_annotation_id_annotations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_edits_image_id_images"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["undo_of"], ["edits.id"], name=op.f("fk_edits_undo_of_edits"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edits")),
        sa.UniqueConstraint("undo_of", name=op.f("uq_edits_undo_of")),
    )
    op.create_index(op.f("ix_edits_annotation_id"), "edits", ["annotation_id"])
    op.create_index(op.f("ix_edits_image_id"), "edits", ["image_id"])


def downgrade() -> None:
    op.drop_table("edits")
    op.drop_table("annotations")
    op.drop_table("images")
    op.drop_table("datasets")
