"""The access log: opening a call's transcript or live stream, playing its recording, setting its
outcome and erasing it each leave an entry naming who, as what, from where, whatever ``Range``
or ``since`` the client sends (repeats within minutes fold into one entry); a refused request
leaves none; the entries outlive the erased call, and ``voice calls access-log`` lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.server.harness import scripted
from tests.voice.console_app import console_env
from voice.cli import cli

pytestmark = pytest.mark.unit


def test_accesses_to_a_call_are_logged_and_outlive_its_erasure(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        scripted(env, "CA-audit", "alice", end=True, audio=True)
        alice, sue = env.headers("alice"), env.headers("sue")
        answers = [
            env.client.get("/api/qa/calls/CA-audit", headers=alice),
            env.client.get("/api/calls/CA-audit/audio", headers={**alice, "Range": "bytes=1-"}),  # all but a byte
            env.client.get("/api/calls/CA-audit/audio", headers={**alice, "Range": "bytes=4000-"}),  # a seek: folded
            env.client.get("/api/calls/CA-audit/events?since=3", headers=alice),  # the stream, minus its start
            env.client.get("/api/qa/calls/CA-audit", headers=env.headers("bob")),  # refused: 403
            env.client.put("/api/calls/CA-audit/outcome", json={"success": True}, headers=sue),
            env.client.get("/api/calls/CA-audit", headers=sue),
            env.client.delete("/api/calls/CA-audit", headers=sue),
        ]
    assert [a.status_code for a in answers] == [200, 206, 206, 200, 403, 200, 200, 200]

    listed = CliRunner().invoke(cli, ["calls", "access-log", "--call-id", "CA-audit", "--jsonl",
                                      "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    entries = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert [(e["actor"], e["actor_role"], e["action"]) for e in entries] == [
        ("alice", "agent", "view_transcript"), ("alice", "agent", "play_audio"), ("alice", "agent", "stream_call"),
        ("sue", "supervisor", "set_outcome"), ("sue", "supervisor", "view_transcript"),
        ("sue", "supervisor", "erase_call")]
    assert all(e["call_id"] == "CA-audit" and e["client"] == "testclient" for e in entries)
    assert entries == sorted(entries, key=lambda e: e["at"])
