"""The ``env`` fixture: the real app on a real SQLite database with four agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.server.harness import Env, fake_reviewer_loader, make_services, new_app
from voice.server.console import console_for
from voice.store.agents import AgentStore


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """alice and bob (agents), sue (supervisor of every tenant), gus (supervisor of globex)."""
    services = make_services(tmp_path, suggest_model=str(tmp_path / "model-v1"))
    agents = AgentStore(services.store)
    tokens = {name: agents.add(name, role=role, tenant=tenant)[1] for name, role, tenant in (
        ("alice", "agent", None), ("bob", "agent", None), ("sue", "supervisor", None),
        ("gus", "supervisor", "globex"))}
    app = new_app(services)
    with TestClient(app) as client:
        console_for(app).reviews.loader = fake_reviewer_loader
        yield Env(client, services, tokens)
