"""Browser sessions: the session cookie holds a random id whose hash is stored here, so signing
out ends the cookie on every server process. Cookies made before this revision held the API
token itself; they no longer authenticate and the pages ask to sign in again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("agent_pk", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_pk"], ["agents.id"], name=op.f("fk_agent_sessions_agent_pk_agents"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_agent_sessions_session_hash")),
    )
    op.create_index("ix_agent_sessions_agent_pk", "agent_sessions", ["agent_pk"])
    op.create_index("ix_agent_sessions_expires_at", "agent_sessions", ["expires_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_agent_sessions_expires_at", table_name="agent_sessions")
    op.drop_index("ix_agent_sessions_agent_pk", table_name="agent_sessions")
    op.drop_table("agent_sessions")
