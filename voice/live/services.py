"""Process-wide services of the live server, loaded once at start (prewarm), shared by all calls.

One Whisper model and one decode scheduler serve every call; one entity extractor; one
suggestion engine per tenant model behind one micro-batcher; one database writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.live.session import CallManager
from voice.processor import FrameProcessor, Pipeline
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.transport import CallOutput

log = logging.getLogger(__name__)


@dataclass
class LiveServices:
    """Everything a call's pipeline is built from."""

    config: ServerConfig
    hub: EventHub
    registry: CallRegistry
    store: Any
    live_store: Any
    extractor: Any
    asr: Any
    """The streaming ASR runtime (engine + decode scheduler), see voice.live.asr_runtime."""
    suggestions: Any = None
    """voice.live.suggestions.SuggestionRouter, or None when no model is configured."""
    speaker_embedder: Any = None
    """CAM++ for legs that carry both parties (online speaker attribution); loaded on first need."""
    db_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "db-writer"))
    speakers_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "speakers"))
    nlu_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2, "nlu"))
    manager: CallManager = field(init=False)
    storage_failure: str | None = field(default=None, init=False)
    """Why the last heartbeat round's database work failed (None: it succeeded), for /healthz."""
    pending_saves: int = field(default=0, init=False)
    """Call-end saves waiting in ``data_dir/pending`` after the last heartbeat round."""
    _reported_pending: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.manager = CallManager(self.build_pipeline)

    @property
    def pending_dir(self) -> Path:
        """Where call-end saves the database refused wait for it (``voice.store.live.PendingSave``)."""
        from voice.store.live import PENDING_FOLDER

        return Path(self.config.data_dir) / PENDING_FOLDER

    @classmethod
    def load(cls, config: ServerConfig) -> LiveServices:
        """Open the database and load every model (blocking; run before serving)."""
        from voice.batch.engines import entity_extractor
        from voice.live.asr_runtime import AsrRuntime
        from voice.live.suggestions import SuggestionRouter
        from voice.store import Store
        from voice.store.live import LiveCallStore

        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        store = Store.open(config.database_url)
        suggestions = SuggestionRouter.load(config) if (config.suggest_model or config.models_root) else None
        services = cls(config=config, hub=EventHub(), registry=CallRegistry(), store=store,
                       live_store=LiveCallStore(store), extractor=entity_extractor(),
                       asr=AsrRuntime.load(config), suggestions=suggestions)
        if suggestions is not None and suggestions.split is not None:
            from voice.store.feedback import FeedbackStore

            # Each call's A/B arm, recorded at its start (`voice ab report` counts it from there).
            suggestions.record_assignments(FeedbackStore(store), services.db_executor)
        return services

    def build_pipeline(self, started: CallStartedFrame, output: CallOutput) -> Pipeline:
        """The processors of one call: ASR -> NLU -> suggestions -> recorder."""
        from voice.processors.nlu import NluProcessor
        from voice.processors.recorder import CallRecorder

        processors: list[FrameProcessor] = [self.asr.processor_for(started)]
        if any(role not in ("agent", "customer") for role in started.legs.values()):
            from voice.processors.speakers import SpeakerAttributionProcessor

            # Before NLU and suggestions, which need each turn's role.
            processors.append(SpeakerAttributionProcessor(embedder=self._speaker_embedder(),
                                                          executor=self.speakers_executor))
        intent, suggest = self.suggestions.for_call(started) if self.suggestions else (None, None)
        processors.append(NluProcessor(extractor=self.extractor, executor=self.nlu_executor, intent=intent,
                                       redact=_redacted_labels() if self.config.redact else None))
        if suggest is not None:
            processors.append(suggest)
        audio_dir = Path(self.config.data_dir) / "audio" if self.config.record_audio else None
        processors.append(CallRecorder(hub=self.hub, registry=self.registry, live_store=self.live_store,
                                       store=self.store, executor=self.db_executor, audio_dir=audio_dir,
                                       model_name=self.config.model, redacted=self.config.redact,
                                       pending_dir=self.pending_dir))
        return Pipeline(processors)

    def _speaker_embedder(self) -> Any:
        if self.speaker_embedder is None:
            import torch

            from diarize.embedding import SpeakerEmbedder

            # measured: with torch's default of 2 threads CAM++ ran several times slower beside
            # the ASR workers on 2 cores (docs/results/online_diarization.md).
            torch.set_num_threads(1)
            self.speaker_embedder = SpeakerEmbedder.load()
        return self.speaker_embedder

    @contextlib.asynccontextmanager
    async def call_liveness(self, every: float | None = None) -> AsyncIterator[None]:
        """While open: stamp this process's calls and close calls a stopped process left ``active``.

        The first round runs before this returns (start-up recovery); see voice/store/retention.py
        for why this is a heartbeat per call and not a blanket reset (processes share one database).
        """
        from voice.store.retention import HEARTBEAT_SECONDS

        period = HEARTBEAT_SECONDS if every is None else every
        await self._liveness_round()
        task = asyncio.create_task(self._liveness_loop(period), name="call-liveness")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _liveness_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self._liveness_round()

    async def _liveness_round(self) -> None:
        from voice.store.live import pending_call_ids, replay_pending_saves
        from voice.store.retention import interrupt_orphans, touch_calls

        loop = asyncio.get_running_loop()
        carried = list(self.manager.sessions)
        try:
            # Call-end saves the database refused first: a call stored here is `done`, so the
            # sweep below cannot take it for one whose process stopped (it stopped heartbeating
            # when it ended). One that still cannot be stored is spared by the sweep.
            await loop.run_in_executor(self.db_executor, lambda: replay_pending_saves(
                self.live_store, self.pending_dir, reported=self._reported_pending))
            waiting = await loop.run_in_executor(self.db_executor, pending_call_ids, self.pending_dir)
            # Stamp our own calls next, so a sweep can never close a call we carry.
            await loop.run_in_executor(self.db_executor, touch_calls, self.store, carried)
            await loop.run_in_executor(self.db_executor, lambda: interrupt_orphans(self.store, keep=waiting))
            if self.config.record_audio:
                await loop.run_in_executor(self.db_executor, self._recover_audio)
        except Exception as exc:  # the database may be down for a while; calls go on, retried next round
            self.storage_failure = f"{type(exc).__name__}: {exc}"
            log.exception("call heartbeat failed; retrying in the next round")
        else:
            self.storage_failure = None
        # Every file, also one that cannot be read (pending_call_ids skips it): /healthz shows
        # them while they wait, whatever keeps them there.
        with contextlib.suppress(OSError):
            self.pending_saves = sum(1 for _ in self.pending_dir.glob("*.json")) if self.pending_dir.is_dir() else 0

    def _recover_audio(self) -> list[str]:
        """The recordings of calls a dead process left as spool files in this data dir, and of
        ``done`` calls whose WAV could not be written at their end (a full disk kept their spool)."""
        from voice.processors.audio_spool import recover_interrupted_calls
        from voice.store.retention import ORPHAN_AFTER

        audio_dir = Path(self.config.data_dir) / "audio"
        if not audio_dir.is_dir():
            return []
        return recover_interrupted_calls(
            audio_dir, status_of=self.live_store.spool_status,
            attach=lambda call_id, wav: self.live_store.attach_recovered_audio(call_id, str(wav)),
            idle_seconds=ORPHAN_AFTER.total_seconds())

    async def close(self) -> None:
        """Drain calls, stop workers and close the database (blocking joins run off the event loop)."""
        await self.manager.drain()
        await asyncio.to_thread(self.asr.close)
        if self.suggestions is not None:
            await asyncio.to_thread(self.suggestions.close)
        for executor in (self.db_executor, self.nlu_executor, self.speakers_executor):
            await asyncio.to_thread(executor.shutdown, wait=True)
        await asyncio.to_thread(self.store.close)


def _redacted_labels() -> frozenset[str]:
    from suggest.nlu.entities import REDACTED_LABELS

    return REDACTED_LABELS
