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
    join_words,
)

Event = dict[str, Any]


def _words(words: list[TimedWord]) -> list[dict[str, Any]]:
    return [_word(w) for w in words]


def _word(w: TimedWord) -> dict[str, Any]:
    """A word of an event; ``"leading_space": false`` only on a piece attached to the word before
    it (".m." after "p"), so the console joins a partial's committed and tentative words as the
    event's ``text`` does. Left out when true: most words, and events stay under the relay's size
    limit (docs/events.md)."""
    word = {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "probability": round(w.probability, 3)}
    return word if w.leading_space else word | {"leading_space": False}


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
            "text": join_words(f.committed + f.tentative)}


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
