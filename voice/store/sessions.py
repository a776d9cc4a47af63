"""Browser sessions: what the console's session cookie stands for.

``POST /api/session`` trades an agent's API token for a session: a fresh random id (32 random
bytes, ``secrets.token_urlsafe``) that the cookie carries instead of the token. The database keeps
only the id's SHA-256 (as for tokens), bound to the agent and to the agent's token at sign-in, so:

- signing out deletes the row, and the cookie stops working on every server process;
- a new token (``voice agents token NAME``) or removing the agent ends the agent's sessions;
- a session ends ``max_age`` (30 days, the cookie's own age) after its last sign-in. Expired
  rows are purged whenever someone signs in.

The pages sign in on every load; a browser that sends its still-valid session of the same agent
and token keeps it (tabs share the cookie, and one row per browser is enough).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from voice.store.agents import Agent, AuthenticationError, agent_of_row, hash_token
from voice.store.store import Store
from voice.store.tables_console import AgentRow, AgentSessionRow


class SessionStore:
    """Browser sessions in the database; one transaction per method."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, token: str, *, max_age: timedelta, current: str | None = None) -> tuple[Agent, str]:
        """Sign in with an API token: the agent, and a session id valid for ``max_age``. That is
        ``current`` (the browser's session) when it is a live session of this agent and token,
        else a new one (the only time it is visible). Expired sessions of anyone are deleted.

        Raises:
            AuthenticationError: no token, an unknown one, or a disabled agent.
        """
        if not token or not token.strip():
            raise AuthenticationError("no access token", hint="create one with `voice agents add NAME`")
        digest = hash_token(token.strip())
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.store.session() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.token_hash == digest)).one_or_none()
            if row is None or row.disabled or not secrets.compare_digest(row.token_hash, digest):
                raise AuthenticationError("unknown or revoked access token",
                                          hint="ask a supervisor for a new one (`voice agents token NAME`)")
            session.execute(delete(AgentSessionRow).where(AgentSessionRow.expires_at <= now))
            kept = _live_session(session, row, current) if current else None
            if kept is not None and current:
                kept.expires_at, session_id = now + max_age, current
            else:
                session.add(AgentSessionRow(session_hash=hash_token(session_id), agent_pk=row.id,
                                            token_hash=row.token_hash, created_at=now, expires_at=now + max_age))
            return agent_of_row(row), session_id

    def agent(self, session_id: str | None) -> Agent:
        """The agent signed in as ``session_id``.

        Raises:
            AuthenticationError: no session id, or one that is unknown, signed out, expired, or
                whose agent is removed, disabled or has a new token since.
        """
        if not session_id:
            raise AuthenticationError("no access token", hint="create one with `voice agents add NAME`")
        query = (select(AgentRow)
                 .join(AgentSessionRow, AgentSessionRow.agent_pk == AgentRow.id)
                 .where(AgentSessionRow.session_hash == hash_token(session_id),
                        AgentSessionRow.expires_at > datetime.now(UTC),
                        AgentSessionRow.token_hash == AgentRow.token_hash))
        with self.store.session() as session:
            row = session.scalars(query).one_or_none()
            if row is None or row.disabled:
                raise AuthenticationError("unknown, expired or ended session",
                                          hint="sign in again with your access token")
            return agent_of_row(row)

    def close(self, session_id: str) -> None:
        """Sign out: the session stops working at once (a no-op for an unknown id)."""
        with self.store.session() as session:
            session.execute(delete(AgentSessionRow).where(AgentSessionRow.session_hash == hash_token(session_id)))


def _live_session(session: Session, agent: AgentRow, session_id: str) -> AgentSessionRow | None:
    """The row of ``session_id`` if it is an unexpired session of ``agent`` and its current token
    (expired rows are deleted before this is asked)."""
    return session.scalars(select(AgentSessionRow).where(
        AgentSessionRow.session_hash == hash_token(session_id), AgentSessionRow.agent_pk == agent.id,
        AgentSessionRow.token_hash == agent.token_hash)).one_or_none()
