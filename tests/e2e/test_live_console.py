"""The whole live path into the console: a shared SpokenWOZ call replayed in real time through the
Twilio client into the real server (streaming ASR, NLU, suggestion model trained on a slice of
PersuasionForGood), watched in chromium by its agent. Transcript lines and a suggestion card
appear, the accept shortcut stores feedback, and a second agent gets 403 for the call."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import (
    ARTIFACTS,
    chromium,
    open_console,
    percentiles,
    save_measurement,
    screenshot,
    wait_until,
)
from tests.server.harness import ServerThread, stored_feedback
from voice.config import ServerConfig
from voice.server.app import create_app
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e
CALL = "SNG0072"
CALL_SECONDS = 60  # the first minute holds several turns of each party
MODEL_CONVERSATIONS = 200


@pytest.fixture(scope="module")
def suggestion_model(shared_data: Path) -> Path:
    """A real model on a slice of PersuasionForGood, trained once and cached under artifacts/."""
    from voice.batch.demo_model import cached_pfg_model

    return cached_pfg_model(shared_data / "dialogues" / "persuasionforgood", ARTIFACTS / "cache" / "models",
                            ARTIFACTS / "cache", limit=MODEL_CONVERSATIONS)


def _replay_in_background(host: str, audio, agent_id: str) -> threading.Thread:
    from telephony.clients import ReplayOptions, replay_twilio

    options = ReplayOptions(speed=1.0, tenant="default", agent_id=agent_id)
    thread = threading.Thread(target=lambda: asyncio.run(replay_twilio(f"ws://{host}/ws/twilio", audio, options)),
                              name="twilio-replay", daemon=True)
    thread.start()
    return thread


def test_a_real_call_reaches_the_agent_console(tmp_path: Path, shared_data: Path, suggestion_model: Path) -> None:
    from telephony.clients import load_call

    audio = load_call(shared_data / "diarization" / "spokenwoz_calls_8k" / f"{CALL}.wav")[:, : CALL_SECONDS * 8000]
    config = ServerConfig(data_dir=str(tmp_path), sip_port=-1, model="tiny.en", suggest_model=str(suggestion_model))
    app = create_app(config)
    with ServerThread(app, start_timeout=180) as server, chromium() as browser:
        agents = AgentStore(app.state.services.store)
        alice, bob = agents.add("alice")[1], agents.add("bob")[1]
        page = open_console(browser, server.url, alice, state="waiting")
        replay = _replay_in_background(server.host, audio, "alice")
        page.wait_for_selector('#status[data-state="live"]', timeout=30_000)
        wait_until(page, "document.querySelectorAll('#transcript .turn').length >= 2", timeout=90)
        page.wait_for_selector("#cards .card:not(.placeholder)", timeout=60_000)
        call_id = page.evaluate("() => window.nextline.stream.callId")
        screenshot(page, "agent-console-live")

        page.locator("body").press("a")
        page.wait_for_selector("#cards .card[data-state='accepted']")
        deadline = time.monotonic() + 10
        while not any(r["event"] == "accepted" for r in stored_feedback(app.state.services.store, call_id)):
            assert time.monotonic() < deadline, "the accepted suggestion was not stored"
            time.sleep(0.1)

        headers = {"Authorization": f"Bearer {bob}"}
        assert httpx.get(f"{server.url}/api/calls/{call_id}", headers=headers).status_code == 403
        assert httpx.get(f"{server.url}/api/calls/{call_id}/events", headers=headers).status_code == 403

        replay.join(timeout=CALL_SECONDS + 60)
        page.wait_for_selector('#status[data-state="ended"]', timeout=60_000)
        latencies = page.evaluate("() => window.nextline.metrics.suggestions.filter((x) => !x.replayed)")
        server_ms = [x["server_ms"] for x in latencies if x["server_ms"] is not None]
        save_measurement("ui-latency-live", {
            "call": CALL, "seconds": CALL_SECONDS,
            "suggestion_emitted_to_dom_ms": percentiles([x["dom_ms"] for x in latencies]),
            "server_turn_to_suggestion_ms": percentiles(server_ms)})
        screenshot(page, "agent-console-live-ended")
        assert page.script_errors == []
