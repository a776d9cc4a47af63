"""Frames -> JSON events for the agent's screen (the documented event stream, see docs/events.md).

Every event has ``type``, ``call_id``, ``seq``, ``audio_time`` (call-audio seconds when the audio
that caused it ended) and ``emitted_at`` (server wall clock, Unix seconds); the hub stamps the
last three.
"""

from __future__ import annotations

from typing import Any

from voice.frames import (
    CallEndedFrame,
    CallStartedFrame,
    DtmfFrame,
    ErrorFrame,
    Frame,
    NluFrame,
    SuggestionFrame,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)

Event = dict[str, Any]


def _words(words: list[TimedWord]) -> list[dict[str, Any]]:
    return [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
             "probability": round(w.probability, 3)} for w in words]


def _joined(words: list[TimedWord]) -> str:
    # The streaming policy's words carry no leading space (asr.engine strips Whisper's), so
    # join with spaces; stripping first keeps words that still have one from doubling it.
    return " ".join(text for text in (w.text.strip() for w in words) if text)


def frame_to_event(frame: Frame) -> Event | None:
    """The event for a frame the agent's screen cares about, else ``None``."""
    converter = _CONVERTERS.get(type(frame))
    return converter(frame) if converter else None


def _started(f: CallStartedFrame) -> Event:
    return {"type": "call.started", "audio_time": 0.0, "tenant": f.tenant, "agent_id": f.agent_id,
            "legs": f.legs, "source": f.source}


def _partial(f: TranscriptPartialFrame) -> Event:
    return {"type": "transcript.partial", "audio_time": round(f.audio_time, 3), "leg": f.leg, "role": f.role,
            "speaker": f.speaker, "committed": _words(f.committed), "tentative": _words(f.tentative),
            "text": _joined(f.committed + f.tentative)}


def _final(f: TranscriptFinalFrame) -> Event:
    return {"type": "transcript.final", "audio_time": round(f.audio_time, 3), "turn_id": f.turn_id, "leg": f.leg,
            "role": f.role, "speaker": f.speaker, "text": f.text, "words": _words(f.words),
            "start": round(f.start, 3), "end": round(f.end, 3)}


def _nlu(f: NluFrame) -> Event:
    return {"type": "nlu", "audio_time": round(f.audio_time, 3), "turn_id": f.turn_id, "role": f.role,
            "intent": f.intent, "intent_score": f.intent_score, "entities": f.entities}


def _suggestion(f: SuggestionFrame) -> Event:
    return {"type": "suggestion", "audio_time": round(f.audio_time, 3), "turn_id": f.turn_id,
            "suggestions": f.suggestions, "model_version": f.model_version, "arm": f.arm,
            "latency_ms": f.latency_ms}


def _dtmf(f: DtmfFrame) -> Event:
    return {"type": "dtmf", "audio_time": round(f.audio_time, 3), "digit": f.digit, "leg": f.leg}


def _ended(f: CallEndedFrame) -> Event:
    return {"type": "call.ended", "audio_time": round(f.audio_time, 3), "reason": f.reason}


def _error(f: ErrorFrame) -> Event:
    return {"type": "error", "audio_time": None, "message": f.message, "fatal": f.fatal, "source": f.source}


_CONVERTERS: dict[type, Any] = {
    CallStartedFrame: _started, TranscriptPartialFrame: _partial, TranscriptFinalFrame: _final,
    NluFrame: _nlu, SuggestionFrame: _suggestion, DtmfFrame: _dtmf, CallEndedFrame: _ended, ErrorFrame: _error,
}

__all__ = ["frame_to_event"]
