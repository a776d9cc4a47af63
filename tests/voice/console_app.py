"""The real console app on a SQLite database, for the tests under tests/voice.

Builds on ``tests.server.harness``: :func:`console_env` is the same app as the ``env`` fixture
of ``tests/server`` (alice and bob agents, sue supervisor of every tenant, gus of globex); opened
again on the same ``data_dir`` with the same tokens, it stands for a restarted server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.server.harness import Env, make_services, new_app
from voice.store.agents import AgentStore

PEOPLE = (("alice", "agent", None), ("bob", "agent", None), ("sue", "supervisor", None),
          ("gus", "supervisor", "globex"))


def add_people(services: Any) -> dict[str, str]:
    """Tokens of the four people, by name."""
    agents = AgentStore(services.store)
    return {name: agents.add(name, role=role, tenant=tenant)[1] for name, role, tenant in PEOPLE}


@contextmanager
def console_env(data_dir: Path, tokens: dict[str, str] | None = None, **overrides: Any) -> Iterator[Env]:
    """The app under a TestClient; people are added unless ``tokens`` (a restart) are given."""
    services = make_services(data_dir, **overrides)
    tokens = tokens if tokens is not None else add_people(services)
    with TestClient(new_app(services)) as client:  # the lifespan closes the services
        yield Env(client, services, tokens)
