"""Erasure drops a call from the hub and the registry on the event loop, never from the worker
thread that deletes the rows (the loop iterates both while it serves ``GET /api/calls``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import Env, scripted
from tests.voice.console_app import console_env
from voice.audio import AudioInfo
from voice.server.retention_api import retention_task
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _record_forgets(monkeypatch: pytest.MonkeyPatch, services: Any) -> list[tuple[str, str, bool]]:
    """Each hub/registry ``forget`` as (what, call id, ran on the event loop)."""
    seen: list[tuple[str, str, bool]] = []
    for name in ("hub", "registry"):
        target = getattr(services, name)
        forget = target.forget

        def recording(call_id: str, name: str = name, forget: Any = forget) -> None:
            seen.append((name, call_id, _on_loop()))
            forget(call_id)

        monkeypatch.setattr(target, "forget", recording)
    return seen


def test_erasing_a_call_forgets_it_on_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with console_env(tmp_path) as env:
        scripted(env, "CA-1", "alice", end=True)
        seen = _record_forgets(monkeypatch, env.services)
        answer = env.client.delete("/api/calls/CA-1", headers=env.headers("sue"))
        assert answer.status_code == 200 and answer.json()["erased"] == ["CA-1"]
        assert sorted(seen) == [("hub", "CA-1", True), ("registry", "CA-1", True)]
        assert not env.services.hub.knows("CA-1") and env.services.registry.get("CA-1") is None


def _old_call(env: Env, call_id: str, days_ago: float) -> None:
    created = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")
    transcript = CallTranscript(call_id=call_id, audio=AudioInfo("live:twilio", "wav", 8000, 1, 3.0),
                                speakers=[], segments=[], created_at=created)
    env.services.store.save_transcript(transcript, source="live:twilio")


def test_the_retention_purge_forgets_calls_on_the_event_loop(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with console_env(tmp_path) as env:
        _old_call(env, "CA-old", days_ago=100)
        services = env.services
        services.config = type(services.config)(**{**services.config.__dict__, "retention_days": 90.0})
        seen = _record_forgets(monkeypatch, services)

        async def purge() -> None:
            async with retention_task(services, every=3600):
                for _ in range(200):
                    if len(seen) == 2:
                        return
                    await asyncio.sleep(0.02)

        asyncio.run(purge())
    assert sorted(seen) == [("hub", "CA-old", True), ("registry", "CA-old", True)]
