"""The live server's speech recognition: one model, one decode scheduler, a processor per call.

Loaded once per process (prewarm). Settings are the ones measured best on 2 CPU cores with
tiny.en (docs/results/streaming.md, "Latency goals on 2 CPU cores"): see
:func:`live_streaming_config` and :func:`decode_slots`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from voice.config import ServerConfig
from voice.errors import ConfigError
from voice.frames import CallStartedFrame
from voice.processor import FrameProcessor

if TYPE_CHECKING:
    from asr.streaming import StreamingConfig


@dataclass
class AsrRuntime:
    """Engine + scheduler shared by every call of the process."""

    engine: Any
    scheduler: Any
    streaming_config: Any
    speakers: Any = None
    """Process-wide speaker embedder for mixed legs (loaded on first mixed call)."""
    early_final_counts: Counter[str] = field(default_factory=Counter)
    """Early finals of every call so far: started, and adopted as the turn's final (/metrics)."""
    stand_in_counts: Counter[str] = field(default_factory=Counter)
    """Turns of every call so far closed without their final decode: ``streamed`` (partial
    words stand in) and ``untranscribed`` (no words at all) (/metrics)."""
    join_on_close: bool = False
    """Wait for the decode workers at close: a torch worker still alive when the interpreter
    exits aborts the process ("terminate called without an active exception")."""

    @classmethod
    def load(cls, config: ServerConfig) -> AsrRuntime:
        """Load the Whisper model and start the decode workers."""
        from asr import AsrOptions
        from asr.engine import resolve_device
        from asr.live import EncoderWindow, load_streaming_engine
        from asr.streaming import DecodeRequest, WhisperTurnDecoder
        from voice.live.scheduler import DecodeScheduler, SchedulerConfig
        from voice.processors.asr_legs import cheap_final

        if check_backend(config.asr_backend) == "torch":
            return cls._load_torch(config)
        on_cpu = resolve_device(config.device, "auto")[0] == "cpu"
        around = partial_window(config.asr_partial_window) if on_cpu else None  # a bad setting fails before the load
        workers, threads = decode_slots(config, on_cpu=on_cpu)
        window: EncoderWindow = "trimmed" if on_cpu else "full"
        engine = load_streaming_engine(
            config.model, device=config.device, workers=workers, cpu_threads=threads, encoder_window=window
        )
        # measured (128 SpokenWOZ turns through mu-law, 20 s window, 3 s context): beam-5 finals
        # 25.0 % WER against greedy 28.3 % (offline 24.3 %), for 725 instead of 547 ms a final.
        decoder = WhisperTurnDecoder(engine, partial=AsrOptions(beam_size=1),
                                     final=AsrOptions(beam_size=config.asr_final_beam), around=around)
        decoder.decode_batch([DecodeRequest(np.zeros(16000, dtype=np.float32), 0.0, None, True, 0)])  # warm-up
        scheduler = DecodeScheduler(decoder.decode_batch, SchedulerConfig(workers=workers), cheapen=cheap_final)
        return cls(engine=engine, scheduler=scheduler, streaming_config=live_streaming_config(on_cpu=on_cpu))

    @classmethod
    def _load_torch(cls, config: ServerConfig) -> AsrRuntime:
        """The batched torch decoder (asr.torch_backend): every pending request of every call in
        one encoder pass and one decode loop, the decode step a CUDA graph on a GPU. Settings as
        measured on an H200 (docs/results/gpu.md): 4 decode workers (8 were worse), one graph per
        row bucket for each, partials every 0.5 s with prompts and the full window. Finals are
        beam-searched (``asr_final_beam``, 5): the H200 capacity runs used greedy finals."""
        from asr import AsrOptions
        from asr.streaming import StreamingConfig
        from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder
        from voice.live.scheduler import DecodeScheduler, SchedulerConfig
        from voice.processors.asr_legs import cheap_final

        workers = config.asr_workers or TORCH_WORKERS
        backend = TorchBackendConfig(device=config.device, graph_copies=workers,
                                     max_rows=config.asr_max_batch or TorchBackendConfig.max_rows)
        decoder = TorchWhisperDecoder.load(config.model, backend, final=AsrOptions(beam_size=config.asr_final_beam))
        scheduler = DecodeScheduler(decoder.decode_batch, SchedulerConfig(workers=workers, max_batch=backend.max_rows),
                                    cheapen=cheap_final)
        return cls(engine=decoder, scheduler=scheduler, streaming_config=StreamingConfig(step=0.5),
                   join_on_close=True)

    def processor_for(self, started: CallStartedFrame) -> FrameProcessor:
        """The streaming ASR processor of a new call (and speaker attribution for mixed legs)."""
        from voice.processors.asr import StreamingAsrProcessor

        return StreamingAsrProcessor(self.scheduler, config=self.streaming_config,
                                     early_final_totals=self.early_final_counts,
                                     stand_in_totals=self.stand_in_counts)

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
        self.scheduler.close(wait=self.join_on_close)


TORCH_WORKERS = 4
"""Decode workers of the torch backend by default (H200: 4 met the goals at 56 calls in one
process, 8 missed at 64)."""

ASR_BACKENDS = ("faster-whisper", "torch")


def check_backend(setting: str) -> str:
    """``setting`` if it names an ASR backend.

    Raises:
        ConfigError: it does not.
    """
    if setting not in ASR_BACKENDS:
        raise ConfigError(f"asr_backend {setting!r} is not one of {', '.join(ASR_BACKENDS)}",
                          hint="faster-whisper on CPU; torch batches calls on a GPU")
    return setting


def partial_window(setting: str) -> Callable[[bool], AbstractContextManager[None]]:
    """``around`` for the decoder: partials use the ``"minimum,padding"`` encoder window, finals
    the default (``asr.live.FINAL_TRIM``).

    Raises:
        ConfigError: the setting is not two positive numbers.
    """
    from asr.live import FINAL_TRIM, EncoderTrim, trimmed_to

    try:
        minimum, padding = (float(part) for part in setting.split(","))
    except ValueError as exc:
        raise ConfigError(f"asr_partial_window {setting!r} is not 'minimum,padding' in seconds",
                          hint='e.g. "12,8"; "20,10" decodes partials like finals') from exc
    if minimum <= 0 or padding <= 0:
        raise ConfigError(f"asr_partial_window {setting!r}: both numbers must be positive")
    partial = EncoderTrim(minimum, padding)
    return lambda final: trimmed_to(FINAL_TRIM if final else partial)


def decode_slots(config: ServerConfig, *, on_cpu: bool) -> tuple[int, int]:
    """(concurrent decodes, CPU threads per decode) for ``config``.

    By default one single-thread decode per core, on CPU as on CUDA (where the host threads feed
    the GPU). Measured on 2 cores (docs/results/streaming.md, "Two single-thread decodes"): with
    early finals hiding the final's own decode time, two decodes at once beat one 2-thread
    decode at one call (commit 1.01 / 1.81 s against 1.05 / 1.98 s) and far more at two and four
    calls, where a final no longer waits behind another stream's partial.
    """
    cores = os.cpu_count() or 1
    workers = config.asr_workers or cores
    return workers, config.asr_threads or (cores if workers == 1 and on_cpu else 1)


def live_streaming_config(*, on_cpu: bool) -> StreamingConfig:
    """The live path's streaming policy.

    Every turn's final starts early, ``end_pad`` into each pause, so it is mostly done when the
    VAD closes the turn. On CPU decodes are scarce, so each is made cheaper, and the saved time
    buys partials twice as often. Measured on 2 cores, tiny.en, one real-time stereo call
    (docs/results/streaming.md): words committed p50 2.73 -> 1.34 s, VAD close -> final
    896 -> 448 ms. The parts:
    - a 20 s encoder window (``asr.live``, ``encoder_window="trimmed"``, set by the caller);
    - 3 s of earlier speech as the final's context, not 10 s: WER +1.3 points over offline
      against +2.6 in the full window (126 SpokenWOZ turns: within noise), 465 vs 989 ms a final;
    - no prompt for partials: partial decodes 656 -> 436 ms, committed words no worse;
    - a partial every 0.5 s of new audio instead of 1 s.
    On CUDA the decodes are batched and cheap: the full window, 10 s of context, prompts, 1 s.
    """
    from asr.streaming import StreamingConfig

    if not on_cpu:
        return StreamingConfig(early_final=True)
    return StreamingConfig(early_final=True, final_context=3.0, prompt_chars=0, step=0.5)
