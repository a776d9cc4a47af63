"""Server shutdown: calls still flushing are cut off but keep their transcript, blocking joins stay off
the event loop, and calls end before the event relay closes (so other processes see them end)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import voice.server.app as app_module
from tests.server.harness import ScriptedAsrRuntime, make_services, new_app
from voice.frames import CallStartedFrame, EndOfInputFrame, Frame, TranscriptFinalFrame
from voice.live.session import DRAIN_TIMEOUT, CallManager
from voice.processor import FrameProcessor, Pipeline
from voice.processors.asr import StreamingAsrProcessor
from voice.processors.recorder import CallRecorder
from voice.store import Store
from voice.store.live import LiveCallStore

pytestmark = pytest.mark.unit

STARTED = CallStartedFrame(call_id="CA-shut", tenant="acme", agent_id="alice",
                           legs={"inbound": "customer", "outbound": "agent"}, source="twilio")


class StuckFlushAsr(FrameProcessor):
    """Hears one turn, then never finishes flushing the end of input (decoders overloaded)."""

    async def process_frame(self, frame: Frame) -> None:
        await self.push_frame(frame)
        if isinstance(frame, CallStartedFrame):
            await self.push_frame(TranscriptFinalFrame(
                turn_id="inbound-1", leg="inbound", text="my card number changed", words=[], start=0.0, end=1.5,
                audio_time=1.5, role="customer", speaker="inbound"))
        elif isinstance(frame, EndOfInputFrame):
            await asyncio.Event().wait()


class Output:
    """A transport's call output that goes nowhere."""

    async def send(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __getattr__(self, _name: str) -> Any:
        return lambda *_a, **_k: None


def test_the_drain_outlasts_the_asr_flush_timeout() -> None:
    flush = inspect.signature(StreamingAsrProcessor).parameters["flush_timeout"].default
    assert DRAIN_TIMEOUT > flush
    assert CallManager(lambda *_: Pipeline([FrameProcessor()])).drain_timeout == DRAIN_TIMEOUT


def test_a_call_cut_off_at_shutdown_keeps_its_turns_and_ends(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    services = make_services(tmp_path)

    def build(started: CallStartedFrame, _output: Any) -> Pipeline:
        return Pipeline([StuckFlushAsr(), CallRecorder(
            hub=services.hub, registry=services.registry, live_store=services.live_store, store=services.store,
            executor=services.db_executor, audio_dir=None, model_name="scripted")])

    services.manager = CallManager(build, drain_timeout=0.2)

    async def scenario() -> None:
        await services.manager.open_call(STARTED, Output())
        await asyncio.sleep(0.05)  # the call's task takes the start and the first turn
        await services.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(scenario(), 30))

    assert "CA-shut" in caplog.text and "cutting them off" in caplog.text
    store = Store.open(services.config.database_url)
    try:
        assert [s.text for s in store.get_transcript("CA-shut").segments] == ["my card number changed"]
        assert LiveCallStore(store).call("CA-shut").status == "done"
        assert [e["type"] for e in services.hub.history("CA-shut")][-1] == "call.ended"
    finally:
        store.close()


def test_closing_the_services_does_not_block_the_event_loop(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    writing = threading.Event()
    services.db_executor.submit(writing.wait)  # a database write still in progress
    loop_ran = threading.Event()

    async def scenario() -> None:
        closing = asyncio.create_task(services.close())
        await asyncio.sleep(0.05)  # runs only if close() waits off the loop
        loop_ran.set()
        writing.set()
        await closing

    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    began = time.monotonic()
    while not loop_ran.is_set() and time.monotonic() - began < 5:
        time.sleep(0.01)
    writing.set()  # unblock a loop stuck in the shutdown, so the thread ends either way
    runner.join(10)

    assert loop_ran.is_set() and time.monotonic() - began < 5, "close() blocked the event loop"


def test_calls_end_before_the_event_relay_closes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    relayed: list[str] = []

    class Relay:
        counts: dict[str, int] = {}

        def __init__(self, hub: Any) -> None:
            self.hub = hub
            hub.observers.append(self.offer)

        def offer(self, event: dict[str, Any]) -> None:
            relayed.append(event["type"])

        def close(self) -> None:
            self.hub.observers.remove(self.offer)

    monkeypatch.setattr(app_module, "_start_relay", lambda _config, services: Relay(services.hub))
    services = make_services(tmp_path)
    services.asr = ScriptedAsrRuntime([])

    async def open_call() -> None:
        await services.manager.open_call(STARTED, Output())
        await asyncio.sleep(0.05)

    with TestClient(new_app(services)) as client:
        client.portal.call(open_call)  # type: ignore[union-attr]
        assert relayed == ["call.started"]

    assert relayed == ["call.started", "call.ended"]


def test_sip_peers_get_their_bye_before_the_drain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drain ends every call's pipeline at once, but the SIP dialogs were hung up only after
    it: peers heard no BYE and kept sending RTP, unheard, for up to the drain's 45 s."""
    steps: list[str] = []

    class Sip:
        def hang_up(self) -> None:
            steps.append("bye")

        async def stop(self) -> None:
            steps.append("stop")

    async def start_sip(_config: Any, _services: Any) -> Sip:
        return Sip()

    monkeypatch.setattr(app_module, "_start_sip", start_sip)
    services = make_services(tmp_path)
    drain = services.manager.drain

    async def recorded_drain(timeout: float | None = None) -> list[str]:  # noqa: ASYNC109 - as drain's
        steps.append("drain")
        return await drain(timeout)

    monkeypatch.setattr(services.manager, "drain", recorded_drain)
    with TestClient(new_app(services)):
        pass
    assert steps[:3] == ["bye", "drain", "stop"]  # (the services drain again, idle, as they close)
