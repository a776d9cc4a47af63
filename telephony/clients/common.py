"""What the scripted Twilio and AudioHook clients share: call audio, options, results, pacing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voice.audio import float_to_int16, load_audio

WIRE_RATE = 8000


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    """How a scripted client replays a call."""

    chunk_ms: int = 20
    """Audio per media message (Twilio sends 20 ms; Genesys AudioHook about 100-200 ms)."""
    speed: float = 1.0
    """1.0 = real time, 2.0 = twice as fast, 0 = as fast as the socket takes it."""
    tenant: str | None = None
    agent_id: str | None = None
    mixed: bool = False
    """Twilio: a mono file carries both parties (sent as customParameters ``mixed=true``)."""
    customer_channel: int = 0
    """Which channel of a stereo file is the customer (Twilio inbound, AudioHook external)."""
    dtmf: Sequence[tuple[float, str]] = ()
    """(call-audio second, digit) pairs to send as keypad presses."""
    marks_from_server: bool = True
    """Echo every ``mark`` the server sends, as Twilio does once playback reaches it."""
    ping_every: float = 5.0
    """AudioHook: seconds of audio between pings (0: never)."""
    pause: tuple[float, float] | None = None
    """AudioHook: (start, length) in seconds of a client-side pause (paused/resumed)."""


@dataclass
class ReplayResult:
    """What the client sent and what the server said."""

    audio_seconds: float = 0.0
    """Seconds of call audio sent (per channel)."""
    messages_sent: int = 0
    wall_seconds: float = 0.0
    received: list[Any] = field(default_factory=list)
    """Every text message from the server, JSON-decoded."""
    close_code: int | None = None
    close_reason: str = ""
    max_lag: float = 0.0
    """Worst lateness of a send against the real-time schedule (seconds)."""
    sent_at: list[float] = field(default_factory=list)
    """Wall clock (``time.time()``, as the server's ``emitted_at``) when the audio chunk ``k``
    (call audio ``[k * chunk_ms, (k + 1) * chunk_ms)``, every channel) had been sent: latency
    benchmarks subtract it from event times."""


def load_call(path: str | Path) -> np.ndarray:
    """A call file as int16 of shape (channels, samples) at 8 kHz (any format ``voice`` reads)."""
    audio = load_audio(path, target_rate=WIRE_RATE)
    return float_to_int16(audio.samples)


def split_parties(audio: np.ndarray, customer_channel: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(customer, agent) from a (channels, samples) array; agent is None for mono."""
    audio = np.atleast_2d(audio)
    if audio.shape[0] == 1:
        return audio[0], None
    return audio[customer_channel], audio[1 - customer_channel]


class Pacer:
    """Sleeps until each chunk's real-time deadline (absolute, so drift does not accumulate)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = time.monotonic()
        self.max_lag = 0.0

    async def wait_for(self, audio_time: float) -> None:
        """Wait until ``audio_time`` of call audio may be sent."""
        if self.speed <= 0:
            await asyncio.sleep(0)
            return
        delay = self.start + audio_time / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self.max_lag = max(self.max_lag, -delay)
