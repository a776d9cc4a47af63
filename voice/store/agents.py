"""Agents and their access tokens: who may open the console, and which calls they may see.

A token is shown once, when it is made (``voice agents add``); the database keeps only its
SHA-256. A token is 32 random bytes (``secrets.token_urlsafe``), so a fast hash is as safe as a
slow one here and keeps authentication to one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voice.errors import StorageError, VoiceError
from voice.store.store import Store
from voice.store.tables_console import AgentRow, AgentSessionRow

AgentRole = Literal["agent", "supervisor"]
ROLES: tuple[AgentRole, ...] = ("agent", "supervisor")
TOKEN_PREFIX = "nl_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


class AgentError(VoiceError):
    """An agent cannot be created or changed as asked."""


class AuthenticationError(VoiceError):
    """A token is missing, unknown or belongs to a disabled agent."""


@dataclass(frozen=True)
class Agent:
    """An authenticated person: an agent sees their own calls, a supervisor all of a tenant's."""

    name: str
    role: AgentRole
    tenant: str | None = None
    token_hint: str = ""
    created_at: datetime | None = None
    last_seen_at: datetime | None = None
    disabled: bool = False

    @property
    def is_supervisor(self) -> bool:
        """Supervisors see every call of their tenant, set outcomes and upload recordings."""
        return self.role == "supervisor"

    def can_view(self, *, agent_id: str | None, tenant: str | None) -> bool:
        """Whether this person may see a call handled by ``agent_id`` for ``tenant``."""
        if self.tenant is not None and tenant != self.tenant:
            return False
        return self.is_supervisor or (agent_id is not None and agent_id == self.name)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (prefixed so secret scanners and people recognise it)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AgentStore:
    """Agents in the database; one transaction per method."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, name: str, *, role: AgentRole = "agent", tenant: str | None = None) -> tuple[Agent, str]:
        """Create an agent; returns it and its token (the only time the token is visible).

        Raises:
            AgentError: the name is malformed or taken, or the role unknown.
        """
        _check(name, role)
        token = new_token()
        row = AgentRow(name=name, role=role, tenant=tenant or None, token_hash=hash_token(token),
                       token_hint=token[:8], created_at=datetime.now(UTC), disabled=False)
        try:
            with self.store.session() as session:
                session.add(row)
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise AgentError(f"an agent named {name!r} exists already",
                                 hint=f"issue a new token with `voice agents token {name}`") from exc
            raise
        return agent_of_row(row), token

    def rotate(self, name: str) -> str:
        """Replace an agent's token (the old one stops working at once, and so do the browser
        sessions signed in with it); returns the new token.

        Raises:
            AgentError: no such agent.
        """
        token = new_token()
        with self.store.session() as session:
            row = self._row(session, name)
            row.token_hash, row.token_hint, row.disabled = hash_token(token), token[:8], False
            session.execute(delete(AgentSessionRow).where(AgentSessionRow.agent_pk == row.id))
        return token

    def remove(self, name: str) -> None:
        """Delete an agent (their calls stay; their token and browser sessions stop working).

        Raises:
            AgentError: no such agent.
        """
        with self.store.session() as session:
            row = self._row(session, name)
            session.execute(delete(AgentSessionRow).where(AgentSessionRow.agent_pk == row.id))
            session.delete(row)

    def list(self) -> list[Agent]:
        """Every agent, by name."""
        with self.store.session() as session:
            return [agent_of_row(r) for r in session.scalars(select(AgentRow).order_by(AgentRow.name)).all()]

    def authenticate(self, token: str | None) -> Agent:
        """The agent holding ``token``.

        Raises:
            AuthenticationError: no token, an unknown one, or a disabled agent.
        """
        if not token:
            raise AuthenticationError("no access token", hint="create one with `voice agents add NAME`")
        digest = hash_token(token.strip())
        with self.store.session() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.token_hash == digest)).one_or_none()
            if row is None or row.disabled or not secrets.compare_digest(row.token_hash, digest):
                raise AuthenticationError("unknown or revoked access token",
                                          hint="ask a supervisor for a new one (`voice agents token NAME`)")
            return agent_of_row(row)

    def touch(self, name: str) -> None:
        """Remember when an agent last signed in."""
        with self.store.session() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.name == name)).one_or_none()
            if row is not None:
                row.last_seen_at = datetime.now(UTC)

    @staticmethod
    def _row(session: Session, name: str) -> AgentRow:
        row = session.scalars(select(AgentRow).where(AgentRow.name == name)).one_or_none()
        if row is None:
            raise AgentError(f"no agent named {name!r}", hint="list agents with `voice agents list`")
        return row


def _check(name: str, role: str) -> None:
    if not _NAME.match(name or ""):
        raise AgentError(f"bad agent name {name!r}",
                         hint="use the agent id your telephony sends: letters, digits and . _ @ + - (max 128)")
    if role not in ROLES:
        raise AgentError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")


def agent_of_row(row: AgentRow) -> Agent:
    """The :class:`Agent` an ``agents`` row stands for."""
    return Agent(name=row.name, role=row.role, tenant=row.tenant,  # type: ignore[arg-type]
                 token_hint=row.token_hint, created_at=row.created_at, last_seen_at=row.last_seen_at,
                 disabled=row.disabled)
