"""One live server for the whole folder (models load once), a supervisor's view of it, and the
shared speech the peers play."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.events import CallRecord, EventClient
from tests.live.peers import Prompts
from tests.live.server import LiveServer

SPOKENWOZ_CALL = "SNG0480"
"""The shared SpokenWOZ call the Twilio, AudioHook and bad-input tests replay (both parties
talk in its first half minute: 41 customer and 49 agent reference words)."""
CLIP_SECONDS = 36.0
REPLAY_SPEED = 2.0
"""Faster than real time: the pipeline keeps up at 2x on 2 cores (finals queue, nothing lost)."""
MODEL = "tiny.en"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``voice serve`` in-process: HTTP and SIP on free 127.0.0.1 ports, real tiny.en."""
    from asr.models import ModelNotFoundError, resolve_whisper_model

    try:
        resolve_whisper_model(MODEL)
    except ModelNotFoundError as exc:
        pytest.skip(f"{MODEL} is not installed: {exc}")
    with LiveServer(tmp_path_factory.mktemp("live-server"), model=MODEL) as server:
        yield server


@pytest.fixture(scope="session")
def supervisor(live_server: LiveServer) -> EventClient:
    """The event stream and call API as a supervisor (sees every call)."""
    return EventClient(
        live_server.host, live_server.add_agent("live-supervisor", role="supervisor")
    )


@pytest.fixture(scope="session")
def prompts(shared_data: Path) -> Prompts:
    return Prompts(shared_data / "asr" / "asterisk_prompts_8k")


@pytest.fixture(scope="session")
def spokenwoz(shared_data: Path) -> Path:
    return shared_data / "diarization" / "spokenwoz_calls_8k"


@pytest.fixture(scope="session")
def spokenwoz_clip(spokenwoz: Path):
    """The first CLIP_SECONDS of the shared call as int16 (2, samples) at 8 kHz."""
    from telephony.clients import load_call

    return load_call(spokenwoz / f"{SPOKENWOZ_CALL}.wav")[:, : int(CLIP_SECONDS * 8000)]


async def replay_and_follow(
    live_server: LiveServer, supervisor: EventClient, audio, *, agent_id: str, dtmf=()
) -> tuple[CallRecord, object]:
    """Replay ``audio`` through ``/ws/twilio`` at REPLAY_SPEED while following its events."""
    from telephony.clients import ReplayOptions, replay_twilio

    options = ReplayOptions(speed=REPLAY_SPEED, tenant="acme", agent_id=agent_id, dtmf=list(dtmf))
    replay = asyncio.create_task(
        replay_twilio(f"ws://{live_server.host}/ws/twilio", audio, options)
    )
    record = await supervisor.follow(lambda c: c["agent_id"] == agent_id)
    return record, await replay


@pytest.fixture(scope="session")
def twilio_alone(live_server: LiveServer, supervisor: EventClient, spokenwoz_clip) -> CallRecord:
    """The shared clip through Twilio with nothing else running: the reference run that the
    Twilio test checks and the bad-input test compares its healthy call with."""
    record, result = asyncio.run(
        replay_and_follow(
            live_server, supervisor, spokenwoz_clip, agent_id="agent-alone", dtmf=[(2.0, "7")]
        )
    )
    assert result.close_code == 1000, result.close_reason
    return record
