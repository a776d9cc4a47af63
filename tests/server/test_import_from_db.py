"""``voice data import db``: the server's stored calls of a tenant, with the outcomes the CRM set
through ``PUT /api/calls/{id}/outcome``, become conversation JSONL that trains a model; calls
without an outcome yet, and other tenants' calls, are left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.server.harness import scripted
from tests.voice.console_app import console_env
from voice.cli import cli

pytestmark = pytest.mark.unit


def test_stored_calls_with_crm_outcomes_become_training_conversations(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        for call_id, tenant in (("CA-won", "acme"), ("CA-lost", "acme"), ("CA-open", "acme"), ("CA-other", "globex")):
            scripted(env, call_id, "alice", end=True, tenant=tenant)
        sue = env.headers("sue")
        for call_id, outcome in (("CA-won", {"success": True, "value": 129.9}), ("CA-lost", {"success": False}),
                                 ("CA-other", {"success": True})):
            assert env.client.put(f"/api/calls/{call_id}/outcome", json=outcome, headers=sue).status_code == 200

    out = tmp_path / "training" / "acme.jsonl"
    result = CliRunner().invoke(cli, ["data", "import", "db", "--tenant", "acme", "--out", str(out),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 calls have no outcome yet" in result.output
    conversations = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(c["id"], c["tenant"], c["agent_id"], c["outcome"]) for c in conversations] == [
        ("CA-won", "acme", "alice", {"success": True, "value": 129.9}),
        ("CA-lost", "acme", "alice", {"success": False})]
    assert [(t["role"], t["text"]) for t in conversations[0]["turns"]] == [
        ("customer", "Hi, my order never arrived."), ("agent", "I'm sorry. Let me check that order for you right now.")]
    checked = CliRunner().invoke(cli, ["data", "check", str(out)])
    assert checked.exit_code == 0, checked.output


def test_a_database_that_is_not_there_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "import", "db", "--tenant", "acme", "--out", str(tmp_path / "x.jsonl"),
                                      "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no database" in result.output
    assert not (tmp_path / "nowhere").exists()
