"""The real app on a real SQLite database, with calls scripted through the real CallRecorder.

Only the engines are left out: a :class:`ScriptedCall` pushes the frames that ASR, NLU and the
suggestion engine would produce into the same recorder the live pipeline ends with, so events,
the call registry, stored turns, the stored transcript and the call's WAV are the real ones.
:class:`ServerThread` serves the app with uvicorn on 127.0.0.1 in a background thread, so sync
Playwright can drive a browser from the test's own thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from voice.config import ServerConfig
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    NluFrame,
    SuggestionFrame,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.live.services import LiveServices
from voice.processor import FrameProcessor
from voice.processors.recorder import CallRecorder
from voice.server.app import create_app
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store
from voice.store.live import LiveCallStore


class FakeAsrRuntime:
    """Stands in for the streaming ASR runtime: scripted calls never reach it."""

    def metrics(self) -> dict[str, Any]:
        return {"fake": True}

    def close(self) -> None:
        pass

    def processor_for(self, started: CallStartedFrame) -> Any:
        raise AssertionError("scripted tests do not open calls through the transports")


def make_services(data_dir: Path, **overrides: Any) -> LiveServices:
    """LiveServices on a SQLite file in ``data_dir``, without engines."""
    config = ServerConfig(data_dir=str(data_dir), sip_port=-1, **overrides)
    store = Store.open(config.database_url)
    return LiveServices(config=config, hub=EventHub(), registry=CallRegistry(), store=store,
                        live_store=LiveCallStore(store), extractor=None, asr=FakeAsrRuntime())


def words(text: str, start: float, end: float) -> list[TimedWord]:
    """Evenly timed words as the live ASR gives them: Whisper's leading spaces stripped
    (``asr.engine`` and ``asr.batched`` do), so a page that glued words together would show it."""
    tokens = text.split()
    step = (end - start) / max(len(tokens), 1)
    return [TimedWord(t, round(start + i * step, 3), round(start + (i + 1) * step, 3), 0.9)
            for i, t in enumerate(tokens)]


class ScriptedCall:
    """One call whose frames the test decides; everything after the engines is real."""

    _ids = itertools.count(1)

    def __init__(self, services: LiveServices, call_id: str, *, agent_id: str, tenant: str = "default",
                 record_audio: bool = False) -> None:
        self.services = services
        self.call_id = call_id
        self.started = CallStartedFrame(call_id=call_id, tenant=tenant, agent_id=agent_id,
                                        legs={"inbound": "customer", "outbound": "agent"}, source="twilio")
        audio_dir = Path(services.config.data_dir) / "audio" if record_audio else None
        self.recorder = CallRecorder(hub=services.hub, registry=services.registry, live_store=services.live_store,
                                     store=services.store, executor=services.db_executor, audio_dir=audio_dir,
                                     model_name="scripted")

    async def start(self) -> None:
        await self.recorder.process_frame(self.started)

    async def partial(self, leg: str, role: str, committed: str, tentative: str, start: float, end: float) -> None:
        both = words(f"{committed} {tentative}".strip(), start, end)
        n = len(committed.split())
        await self.recorder.process_frame(TranscriptPartialFrame(
            leg=leg, committed=both[:n], tentative=both[n:], audio_time=end,
            role=role, speaker=leg))  # type: ignore[arg-type]

    async def final(self, turn_id: str, leg: str, role: str, text: str, start: float, end: float) -> None:
        await self.recorder.process_frame(TranscriptFinalFrame(
            turn_id=turn_id, leg=leg, text=text, words=words(text, start, end), start=start, end=end,
            audio_time=end, role=role, speaker=leg))  # type: ignore[arg-type]

    async def nlu(self, turn_id: str, role: str, intent: str | None, entities: list[dict[str, Any]],
                  audio_time: float) -> None:
        frame = NluFrame(turn_id=turn_id, role=role, intent=intent,  # type: ignore[arg-type]
                         intent_score=0.8 if intent else None, entities=entities, audio_time=audio_time)
        await self.recorder.process_frame(frame)

    async def suggest(self, turn_id: str, texts: list[tuple[str, str]], audio_time: float) -> list[str]:
        """Publish a suggestion event with (text, action) pairs; returns the suggestion ids."""
        ids = [f"{self.call_id}:{turn_id}:{rank}:{next(self._ids)}" for rank in range(len(texts))]
        suggestions = [{"id": sid, "text": text, "action": action, "score": round(0.6 / (rank + 1), 3),
                        "why": f"successful agents said this after {turn_id} in 41 % of won calls",
                        "source": "pfg#3"} for rank, (sid, (text, action)) in enumerate(zip(ids, texts, strict=True))]
        await self.recorder.process_frame(SuggestionFrame(
            turn_id=turn_id, suggestions=suggestions, model_version="test-v1",
            latency_ms={"total": 12.5, "engine": 9.0}, audio_time=audio_time, arm="A"))
        return ids

    async def audio(self, leg: str, pcm: np.ndarray, rate: int, pts: float) -> None:
        await self.recorder.process_frame(AudioFrame(pcm=pcm, sample_rate=rate, leg=leg, pts=pts))

    async def end(self, audio_time: float, reason: str = "hangup") -> None:
        await self.recorder.process_frame(CallEndedFrame(call_id=self.call_id, reason=reason, audio_time=audio_time))


@dataclass(frozen=True)
class ScriptLine:
    """A line of the bundled sample call's reference transcript."""

    start: float
    end: float
    speaker: str
    text: str


def bundled_sample() -> tuple[Path, list[ScriptLine]]:
    """The 30 s two-party phone call in the pyannote.audio wheel (MIT) and its STM transcript."""
    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "sample"
    lines = []
    for raw in (folder / "sample.stm").read_text(encoding="utf-8").splitlines():
        _, _, speaker, start, end, text = raw.split(" ", 5)
        lines.append(ScriptLine(float(start), float(end), speaker, text))
    return folder / "sample.wav", lines


class ServerThread:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a background thread."""

    def __init__(self, app: Any, *, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="test-server", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.thread.is_alive():
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError(f"the test server did not start within {self.start_timeout:.0f} s")

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's event loop (the hub is not thread-safe) and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


def new_app(services: LiveServices) -> Any:
    """The app exactly as ``voice serve`` builds it, with the given services."""
    return create_app(services.config, services)


SERVICE_LINES = (
    ("Thanks for calling. Could I have your account number, please?", "ask_account"),
    ("I understand. Let me check that order for you right now.", "check_order"),
    ("Is there anything else I can help you with today?", "wrap_up"),
    ("Where are you calling from today?", "ask_location"),
    ("Hello, this is the help desk. How can I help?", "greet"),
)


def bag_cosine(a: str, b: str) -> float:
    """Cosine of word counts: a real (if plain) text similarity for the fake engine."""
    from collections import Counter

    wa, wb = Counter(a.lower().split()), Counter(b.lower().split())
    dot = sum(wa[w] * wb[w] for w in wa)
    norm = (sum(v * v for v in wa.values()) * sum(v * v for v in wb.values())) ** 0.5
    return round(dot / norm, 4) if norm else 0.0


def fake_batch_suggest(engine: Any, turns: list[Any], *, k: int, agent_id: str | None, tenant: str,
                       call_id: str) -> list[tuple[int, list[dict[str, Any]]]]:
    """The suggestion engine's batch interface, answered from fixed lines ranked by the context."""
    results = []
    for index, turn in enumerate(turns):
        if turn.role != "agent":
            continue
        context = " ".join(t.text for t in turns[max(0, index - 2):index])
        ranked = sorted(SERVICE_LINES, key=lambda line: -bag_cosine(line[0], context))[:k]
        results.append((index, [{"text": text, "action": action, "score": round(0.5 / (rank + 1), 3),
                                 "similarity": bag_cosine(text, turn.text)}
                                for rank, (text, action) in enumerate(ranked)]))
    return results


def fake_reviewer_loader(path: Path) -> Any:
    """Stands in for ``voice.batch.review.load_reviewer``: the real Reviewer over the fake engine."""
    from voice.batch.review import Reviewer

    return Reviewer(engine=None, batch_suggest=fake_batch_suggest)


def stored_feedback(store: Store, call_id: str) -> list[dict[str, Any]]:
    """Feedback rows of a call, as the suggestion engine's store reads them back."""
    from voice.store.feedback import FeedbackStore

    return [r for r in FeedbackStore(store).records() if r["call_id"] == call_id]


class _ScriptedAsr(FrameProcessor):
    """Turns call audio into the transcript frames of a known script as the audio clock passes them."""

    def __init__(self, lines: list[tuple[float, float, str, str, str]]) -> None:
        super().__init__()
        self.lines = lines
        self.done: set[int] = set()

    async def process_frame(self, frame: Any) -> None:
        await self.push_frame(frame)
        if not isinstance(frame, AudioFrame):
            return
        now = frame.pts + len(frame.pcm) / frame.sample_rate
        for index, (start, end, leg, role, text) in enumerate(self.lines):
            if index in self.done or leg != frame.leg or end + 0.3 > now:
                continue
            self.done.add(index)
            await self.push_frame(TranscriptFinalFrame(
                turn_id=f"{leg}-{index}", leg=leg, text=text, words=words(text, start, end), start=start, end=end,
                audio_time=now, role=role, speaker=leg))  # type: ignore[arg-type]


class ScriptedAsrRuntime(FakeAsrRuntime):
    """The ASR runtime's interface, answering every call from one script (start, end, leg, role, text)."""

    def __init__(self, lines: list[tuple[float, float, str, str, str]]) -> None:
        self.lines = lines

    def processor_for(self, started: CallStartedFrame) -> Any:
        return _ScriptedAsr(self.lines)


class EngineSuggestions:
    """The suggestion router's interface over one real engine and a worker thread."""

    def __init__(self, model_dir: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from suggest.engine import SuggestionEngine

        self.engine = SuggestionEngine.load(model_dir)
        self.pool = ThreadPoolExecutor(1, "suggest")

    def for_call(self, started: CallStartedFrame) -> tuple[Any, Any]:
        """What ``SuggestionRouter.for_call`` gives a call: no intents, the engine's suggestions."""
        return None, self.processor_for(started)

    def processor_for(self, started: CallStartedFrame) -> Any:
        from voice.processors.suggest import SuggestProcessor

        pool, engine = self.pool, self.engine

        class _Service:
            def submit(self, context: Any) -> Any:
                return pool.submit(engine.suggest, context)

        return SuggestProcessor(service=_Service())

    def close(self) -> None:
        self.pool.shutdown()


def scripted_services_loader(lines: list[tuple[float, float, str, str, str]]) -> Any:
    """A stand-in for ``LiveServices.load``: real store, hub, recorder, NLU and suggestion engine; scripted ASR."""

    def load(config: ServerConfig) -> LiveServices:
        from voice.batch.engines import entity_extractor

        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        store = Store.open(config.database_url)
        suggestions = EngineSuggestions(config.suggest_model) if config.suggest_model else None
        return LiveServices(config=config, hub=EventHub(), registry=CallRegistry(), store=store,
                            live_store=LiveCallStore(store), extractor=entity_extractor(),
                            asr=ScriptedAsrRuntime(lines), suggestions=suggestions)

    return load


@dataclass
class Env:
    """The app under a TestClient, its services, and a token per named agent (``env`` fixture)."""

    client: Any
    services: Any
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def run(self, fn: Any, *args: Any) -> Any:
        return self.client.portal.call(fn, *args)


def scripted(env: Env, call_id: str, agent_id: str, *, end: bool = False, tenant: str = "default",
             audio: bool = False) -> ScriptedCall:
    """A two-turn call (customer, then agent) through the real recorder, with a 4 s tone if ``audio``."""
    call = ScriptedCall(env.services, call_id, agent_id=agent_id, tenant=tenant, record_audio=audio)
    env.run(call.start)
    if audio:
        tone = (np.sin(np.arange(16000 * 4) / 16000 * 2 * np.pi * 440) * 8000).astype(np.int16)
        env.run(call.audio, "inbound", tone, 16000, 0.0)
    env.run(call.final, "t1", "inbound", "customer", "Hi, my order never arrived.", 0.5, 2.0)
    env.run(call.final, "t2", "outbound", "agent", "I'm sorry. Let me check that order for you right now.", 2.2, 4.0)
    if end:
        env.run(call.end, 4.0)
    return call
