"""Options of a batch transcription job: everything that changes the output of one file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from voice.errors import ConfigError

SpeakerMode = Literal["auto", "channels", "diarize", "none"]
FORMATS = ("json", "rttm", "srt", "vtt")


@dataclass(frozen=True, kw_only=True)
class TranscribeOptions:
    """How to turn one recording into a transcript. Defaults suit 2-party phone calls."""

    model: str = "base"
    """Whisper model: ``tiny.en``, ``base`` or the path of a CTranslate2 model directory."""
    device: str = "auto"
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available: float16, else int8 on CPU)."""
    language: str | None = "en"
    """Spoken language, or ``None`` to detect it per file."""
    beam_size: int = 5
    """Beam width of the Whisper decoder (1 = greedy: faster, slightly less accurate)."""
    speakers: SpeakerMode = "auto"
    """auto: stereo files by channel, mono files diarized; channels; diarize (mix to mono); none."""
    num_speakers: int | None = None
    """Exact number of speakers for diarization (otherwise estimated)."""
    min_speakers: int | None = None
    max_speakers: int | None = None
    agent_channel: int | None = None
    """Channel (0-based) that carries the agent in stereo recordings; ``None`` decides from what is said."""
    diarization: str = "default"
    """``default`` (offline segmentation-3.0 + CAM++) or a local pyannote pipeline directory."""
    redact: bool = False
    """Mask card numbers, SSNs, e-mails and phone numbers in every output."""
    raw_rate: int | None = None
    """Sample rate of headerless PCM input (.raw/.pcm, signed 16-bit little-endian)."""
    raw_channels: int = 1
    """Channels of headerless PCM input (interleaved)."""

    def __post_init__(self) -> None:
        if self.speakers not in ("auto", "channels", "diarize", "none"):
            raise ConfigError(f"unknown speakers mode {self.speakers!r}", hint="use auto, channels, diarize or none")
        if self.num_speakers is not None and (self.min_speakers or self.max_speakers):
            raise ConfigError("give --num-speakers or --min/--max-speakers, not both")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 (got {value})")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ConfigError("min_speakers is larger than max_speakers")
        if self.beam_size < 1:
            raise ConfigError("beam_size must be at least 1")
        self._check_raw_and_channel()

    def _check_raw_and_channel(self) -> None:
        if self.raw_rate is not None and self.raw_rate <= 0:
            raise ConfigError(f"raw_rate must be a positive sample rate (got {self.raw_rate})",
                              hint="e.g. --raw-rate 8000 for telephone PCM")
        if self.raw_channels < 1:
            raise ConfigError(f"raw_channels must be at least 1 (got {self.raw_channels})")
        if self.agent_channel is not None and self.agent_channel < 0:
            raise ConfigError(f"agent_channel counts from 0 (got {self.agent_channel})",
                              hint="use 0 for the left channel, 1 for the right")

    def fingerprint(self) -> str:
        """Short hash of the options; a finished file is re-done when its options changed."""
        payload = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready copy, recorded in every transcript."""
        return asdict(self)
