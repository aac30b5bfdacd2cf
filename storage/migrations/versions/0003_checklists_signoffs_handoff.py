"""checklists, sign-offs and the day-team handoff: ticked tasks, each role's sign-off, handoff times

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_checks",
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("done_by", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("release_id", "scope", "number"),
    )
    op.create_table(
        "signoffs",
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("release_id", "role"),
    )
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("signoffs_requested_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("handoff_posted_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("handoff_accepted_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("handoff_accepted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        for column in ("handoff_accepted_at", "handoff_accepted_by", "handoff_posted_at", "approved_at"):
            batch.drop_column(column)
        batch.drop_column("signoffs_requested_at")
    op.drop_table("signoffs")
    op.drop_table("task_checks")
