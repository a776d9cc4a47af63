"""Voice activity detection: WebRTC frame gate + Silero speech probability, batch and streaming.

- :func:`detect_speech` finds speech regions in a recording (the batch path hands them to ASR,
  so silence, tones and hold music are never decoded).
- :class:`VadStream` is the live path's per-leg analyzer: PCM in, speech-started /
  speech-stopped events out, time taken from the samples themselves.

Both run the same code (:class:`VadStream` over the whole array), so a recording and its live
replay give the same regions.
"""

from __future__ import annotations

import numpy as np

from voice.errors import AudioDecodeError
from voice.vad.analyzer import SpeechRegion, VadEvent, VadEventType, VadParams
from voice.vad.silero import SILERO_RATE, load_silero
from voice.vad.stream import VadStream

__all__ = [
    "SpeechRegion",
    "VadEvent",
    "VadEventType",
    "VadParams",
    "VadStream",
    "detect_speech",
    "load_silero",
]


def detect_speech(audio: np.ndarray, params: VadParams = VadParams()) -> list[SpeechRegion]:  # noqa: B008
    """Speech regions of mono float32 16 kHz ``audio``, padded by ``params.speech_pad``.

    Regions whose padding would overlap are merged; all lie within [0, duration].

    Raises:
        AudioDecodeError: ``audio`` is not a 1-D float array.
    """
    if (
        not isinstance(audio, np.ndarray)
        or audio.ndim != 1
        or not np.issubdtype(audio.dtype, np.floating)
    ):
        raise AudioDecodeError(
            f"detect_speech needs 1-D float audio, got {getattr(audio, 'shape', type(audio))}",
            hint="pass one channel at 16 kHz (voice.audio.load_audio(...).channel(i))",
        )
    stream = VadStream(params)
    events = stream.process(audio) + stream.finish()
    duration = len(audio) / SILERO_RATE
    regions: list[SpeechRegion] = []
    for event in events:
        if event.type is not VadEventType.SPEECH_STOPPED:
            continue
        start = max(0.0, event.speech_start - params.speech_pad)
        end = min(duration, event.time + params.speech_pad)
        if regions and start <= regions[-1].end:
            regions[-1] = SpeechRegion(regions[-1].start, end)
        else:
            regions.append(SpeechRegion(round(start, 3), round(end, 3)))
    return [SpeechRegion(round(r.start, 3), round(r.end, 3)) for r in regions]
