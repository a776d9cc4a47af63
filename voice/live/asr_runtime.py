"""The live server's speech recognition: one model, one decode scheduler, a processor per call.

Loaded once per process (prewarm). Settings are the ones measured best on 2 CPU cores with
tiny.en (docs/benchmarks.md, "Live calls"): one single-threaded decode per core on one shared
model, greedy partials and greedy whole-turn finals (with 10 s of earlier speech as context), partials every 1 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.processor import FrameProcessor


@dataclass
class AsrRuntime:
    """Engine + scheduler shared by every call of the process."""

    engine: Any
    scheduler: Any
    streaming_config: Any
    speakers: Any = None
    """Process-wide speaker embedder for mixed legs (loaded on first mixed call)."""

    @classmethod
    def load(cls, config: ServerConfig) -> AsrRuntime:
        """Load the Whisper model and start the decode workers."""
        from asr import AsrOptions
        from asr.live import load_streaming_engine
        from asr.streaming import DecodeRequest, StreamingConfig, WhisperTurnDecoder
        from voice.live.scheduler import DecodeScheduler, SchedulerConfig

        workers = config.asr_workers or os.cpu_count() or 1
        engine = load_streaming_engine(config.model, device=config.device, workers=workers, cpu_threads=1)
        # measured: greedy finals cost +0.9 WER points and save 22 % decode CPU against beam 5
        # (docs/benchmarks.md, Live calls): the turn-end latency matters more here.
        decoder = WhisperTurnDecoder(engine, partial=AsrOptions(beam_size=1), final=AsrOptions(beam_size=1))
        decoder.decode_batch([DecodeRequest(np.zeros(16000, dtype=np.float32), 0.0, None, True, 0)])  # warm-up
        scheduler = DecodeScheduler(decoder.decode_batch, SchedulerConfig(workers=workers))
        return cls(engine=engine, scheduler=scheduler, streaming_config=StreamingConfig())

    def processor_for(self, started: CallStartedFrame) -> FrameProcessor:
        """The streaming ASR processor of a new call (and speaker attribution for mixed legs)."""
        from voice.processors.asr import StreamingAsrProcessor

        return StreamingAsrProcessor(self.scheduler, config=self.streaming_config)

    def needs_speakers(self, started: CallStartedFrame) -> bool:
        """True when a leg carries both parties (its role is unknown)."""
        return any(role not in ("agent", "customer") for role in started.legs.values())

    def metrics(self) -> dict[str, Any]:
        """Scheduler load, for /healthz."""
        from dataclasses import asdict, is_dataclass

        m = self.scheduler.metrics()
        return asdict(m) if is_dataclass(m) and not isinstance(m, type) else dict(m)

    def close(self) -> None:
        """Stop the decode workers."""
        self.scheduler.close(wait=False)
