"""Live calls: a heartbeat per call, so calls a crashed process left ``active`` can be closed.

Rows written before this revision have no heartbeat; ``voice/store/retention.py`` treats them
by their start time with a longer bound (a process of the previous release may still carry them
during a rolling deploy, and it never heartbeats).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    # Rows a sweep marked 'interrupted' mean nothing to the previous release; it knows 'failed'.
    op.execute("UPDATE calls SET status = 'failed' WHERE status = 'interrupted'")
    # recreate="never": SQLite drops the column in place (3.35+). Rebuilding `calls` would DROP it
    # with foreign keys on, and that cascades: every segment, live turn and outcome would go too.
    with op.batch_alter_table("calls", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("heartbeat_at")
