"""Typed frames that flow through a live call pipeline.

This module is a leaf: it imports nothing from the project but the leaf ``voice.errors``, so
transports, processors and the server can all speak it. Frames are behaviour-free dataclasses
in three lanes (pipecat's design):

- ``SystemFrame``: urgent, bypasses queues (call start/end, errors, cancel);
- ``DataFrame``: ordered content (audio, transcripts, suggestions);
- ``ControlFrame``: ordered control (settings updates, end of input).

Times: ``pts`` and ``audio_time`` are seconds of *call audio* (0 = first sample of the call), so
latency can be measured as wall clock minus the wall time at which that audio arrived.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from voice.errors import VoiceError

Role = Literal["agent", "customer", "unknown"]
"""Which side of the call a leg or speaker is on."""

PTS_JUMP = 0.25
"""Seconds an audio frame may start after the end of its leg's previous frame before the gap is a
jump in the leg's timeline (a hold, an outage the transport did not fill); smaller gaps are
jitter, and the samples keep the time. The ASR and the speaker attribution must agree on it."""

_frame_ids = itertools.count(1)


class InvalidFrameError(VoiceError, ValueError):
    """A frame was built with values no processor can use (e.g. sample rate 0, pts NaN)."""


def audio_frame_problem(sample_rate: Any, pts: Any) -> str | None:
    """Why an AudioFrame with these values is unusable, or ``None`` when it is fine."""
    if not _finite(sample_rate) or sample_rate <= 0:
        return f"sample_rate must be a positive number of Hz, got {sample_rate!r}"
    if not _finite(pts):
        return f"pts must be a finite number of seconds, got {pts!r}"
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(kw_only=True)
class Frame:
    """Base of every frame."""

    id: int = field(default_factory=lambda: next(_frame_ids))
    """Process-unique, increasing id (orders frames that carry equal timestamps)."""


@dataclass(kw_only=True)
class SystemFrame(Frame):
    """Urgent frames: processed ahead of queued data."""


@dataclass(kw_only=True)
class DataFrame(Frame):
    """Ordered content frames."""


@dataclass(kw_only=True)
class ControlFrame(Frame):
    """Ordered control frames."""


# --- call lifecycle -------------------------------------------------------------------------


@dataclass(kw_only=True)
class CallStartedFrame(SystemFrame):
    """A call (or a recording replayed as a call) begins."""

    call_id: str
    """Stable id of the call, unique per deployment."""
    tenant: str = "default"
    """Which customer's model and data the call belongs to."""
    agent_id: str | None = None
    """The agent handling the call, when the ingress carries it."""
    legs: dict[str, Role] = field(default_factory=dict)
    """Leg name -> role, e.g. ``{"inbound": "customer", "outbound": "agent"}``."""
    source: str = "unknown"
    """Ingress that produced the call: twilio, audiohook, sip, siprec, webrtc, file."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Ingress-specific fields (call SID, SIP Call-ID, custom parameters)."""
    context: dict[str, float] = field(default_factory=dict)
    """Numeric facts known at call start (CRM: customer tier, campaign, price), by name; the
    suggestion model reads the names it was trained with (``SuggestContext.context``)."""


@dataclass(kw_only=True)
class CallEndedFrame(SystemFrame):
    """The call is over; processors flush and release per-call state."""

    call_id: str
    reason: str = "hangup"
    audio_time: float = 0.0
    error: bool = False
    """The call ends in failure (refused, broken), not normally: a provider that reports how a call
    ended (AudioHook ``disconnect``) says ``error`` rather than ``completed``."""


@dataclass(kw_only=True)
class ErrorFrame(SystemFrame):
    """An error travelling upstream; ``fatal`` ends the call, otherwise it is reported."""

    message: str
    fatal: bool = False
    source: str = ""


# --- audio ----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class AudioFrame(DataFrame):
    """A chunk of PCM audio from one leg of the call."""

    pcm: np.ndarray
    """Mono int16 samples."""
    sample_rate: int
    leg: str
    """Leg name, e.g. ``"agent"``/``"customer"`` or ``"mixed"`` for a single mixed channel."""
    pts: float
    """Call-audio time of the first sample, in seconds."""

    def __post_init__(self) -> None:
        # Why here: a rate of 0 raised ZeroDivisionError inside the transport (CallSession.push
        # reads ``duration``), and pts NaN raised in the recorder on every frame.
        problem = audio_frame_problem(self.sample_rate, self.pts)
        if problem is not None:
            raise InvalidFrameError(
                f"bad AudioFrame on leg {self.leg!r}: {problem}",
                hint="transports must stamp a positive rate and a finite pts",
            )

    @property
    def duration(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.pcm) / self.sample_rate


@dataclass(kw_only=True)
class DtmfFrame(DataFrame):
    """A keypad digit pressed on one leg (RFC 4733, Twilio dtmf, SIP INFO)."""

    digit: str
    leg: str
    """The leg the press came from: the leg whose audio carries its tone, where it is sent in-band too."""
    audio_time: float
    """When the key was pressed: the tone's start where ``at_tone_start``, otherwise when a message
    reported the press (Twilio ``dtmf``: about when the tone ended; SIP INFO: when it arrived)."""
    duration: float | None = None
    """Seconds the tone lasted, where the transport says (RFC 4733's end event, SIP INFO ``Duration=``)."""
    at_tone_start: bool = False
    """``audio_time`` was read from the media's own timestamps (RFC 4733): the tone's start on the
    leg's timeline, not a message's arrival."""
    masked_audio: list[tuple[float, float]] = field(default_factory=list)
    """Spans of the leg's audio (seconds) that redaction masked, the tone's: the recorder silences them."""


@dataclass(kw_only=True)
class EndOfInputFrame(ControlFrame):
    """No more audio will come for ``leg`` (stream stopped); flush pending work."""

    leg: str
    audio_time: float


# --- speech and transcripts -----------------------------------------------------------------


@dataclass(kw_only=True)
class SpeechStartedFrame(DataFrame):
    """VAD heard speech start on a leg."""

    leg: str
    audio_time: float


@dataclass(kw_only=True)
class SpeechStoppedFrame(DataFrame):
    """VAD endpointing closed a turn on a leg (speech ended and stayed silent long enough)."""

    leg: str
    audio_time: float
    turn_start: float
    """Call-audio time at which the closed turn's speech started."""


@dataclass(frozen=True)
class TimedWord:
    """A recognised word with call-audio times (frames' own type; engines have theirs)."""

    text: str
    start: float
    end: float
    probability: float = 1.0
    leading_space: bool = field(default=True, kw_only=True)
    """Whether the word starts a new word (Whisper wrote it with a leading space). False for a
    piece attached to the word before it (".m." after "p", "-Fi." after "Wi"): :func:`join_words`
    writes no space before it. Keyword-only, so positional construction (and subclasses' own
    fields after ``probability``) keep their meaning."""


def word_dict(word: TimedWord) -> dict[str, object]:
    """``word`` as a JSON-ready dict; ``leading_space`` only where it is false (an attached piece),
    so stored words keep the shape they had before the flag (transcript schema 1.1 adds it)."""
    data: dict[str, object] = {"text": word.text, "start": word.start, "end": word.end,
                               "probability": word.probability}
    if not word.leading_space:
        data["leading_space"] = False
    return data


def join_words(words: Iterable[TimedWord]) -> str:
    """The text of ``words`` as the recogniser wrote it: one space before each word that starts a
    new word, none before an attached piece ("7 p.m.", "Wi-Fi.", not "7 p .m.").

    Each word's own surrounding whitespace is dropped (an older recording's words may still carry
    Whisper's leading space). The live path builds text from words with it, so a partial's event
    text, the console's and the final's agree.
    """
    text = ""
    for word in words:
        piece = word.text.strip()
        if piece:
            text += (" " if text and word.leading_space else "") + piece
    return text


@dataclass(kw_only=True)
class TranscriptPartialFrame(DataFrame):
    """Streaming hypothesis for the open turn: committed words are stable, tentative may change."""

    leg: str
    committed: list[TimedWord]
    tentative: list[TimedWord]
    audio_time: float
    role: Role = "unknown"
    speaker: str | None = None


@dataclass(kw_only=True)
class TranscriptFinalFrame(DataFrame):
    """The final text of a finished turn (whole-turn decode), replacing its partials."""

    turn_id: str
    leg: str
    text: str
    words: list[TimedWord]
    start: float
    end: float
    audio_time: float
    role: Role = "unknown"
    speaker: str | None = None
    masked_audio: list[tuple[float, float]] = field(default_factory=list)
    """Spans of the leg's audio (seconds) that redaction masked: the recorder silences them."""


@dataclass(kw_only=True)
class NluFrame(DataFrame):
    """Understanding of a final turn: intent and entities."""

    turn_id: str
    role: Role
    intent: str | None
    intent_score: float | None
    entities: list[dict[str, Any]]
    audio_time: float


@dataclass(kw_only=True)
class SuggestionFrame(DataFrame):
    """Next-best-line suggestions for the agent, produced after a turn ended."""

    turn_id: str
    suggestions: list[dict[str, Any]]
    """Each: ``text``, ``action``, ``score``, ``why`` (and engine-specific extras)."""
    model_version: str
    latency_ms: dict[str, float]
    """Latency breakdown, e.g. ``{"queue": .., "embed": .., "policy": .., "total": ..}``."""
    audio_time: float
    arm: str | None = None
    """A/B arm that chose the model version, when an experiment is configured."""


@dataclass(kw_only=True)
class SettingsUpdateFrame(ControlFrame):
    """Change a processor's settings mid-call (e.g. the agent leg, the suggestion model)."""

    settings: dict[str, Any]


# --- far-end control (telephony ingress; added for voice.transport) --------------------------


@dataclass(kw_only=True)
class MarkFrame(DataFrame):
    """A named point in the outgoing stream (Twilio ``mark``).

    Sent to ``CallOutput`` it asks the far end to report when playback reaches it; the far end's
    report comes back into the pipeline as a ``MarkFrame`` with the same name.
    """

    name: str
    audio_time: float = 0.0
    """Call-audio time when the mark was received (0 for an outgoing mark)."""


@dataclass(kw_only=True)
class ClearPlaybackFrame(ControlFrame):
    """Drop audio queued for playback at the far end (Twilio ``clear``), e.g. on barge-in."""


@dataclass(kw_only=True)
class TransportMessageFrame(DataFrame):
    """An ingress-specific message for the far end, e.g. AudioHook ``event`` entities.

    ``message`` is the provider payload without its envelope; the serializer adds the envelope
    (AudioHook: ``{"entities": [...]}`` becomes the parameters of an ``event`` message).
    """

    message: dict[str, Any]
