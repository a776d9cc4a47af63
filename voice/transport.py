"""The seam between telephony transports and the call pipeline.

A transport (Twilio or AudioHook WebSocket, SIP/RTP, WebRTC) only moves bytes. For every new call
it builds a :class:`~voice.frames.CallStartedFrame` and asks the server's :class:`CallHandler`
for a :class:`CallSink`; from then on it pushes frames into that sink and never waits on the
pipeline. The pipeline talks back through the :class:`CallOutput` it was handed (Twilio marks
and ``clear``, AudioHook events, hanging up). Wire formats live in :class:`FrameSerializer`
subclasses, one per provider, as in pipecat's ``serializers/``.

Contract for every transport (the pipeline can rely on it):

1. ``await handler.open_call(started, output)`` once per call, before any other frame;
2. ``sink.push(frame)`` any number of times: ``AudioFrame`` per leg named in
   ``started.legs`` (mono int16 at the configured rate, ``pts`` in call-audio seconds, never
   going backwards; gaps on the wire arrive as silence), ``DtmfFrame``, ``MarkFrame`` (Twilio
   playback reached a mark), ``SettingsUpdateFrame`` (AudioHook language update),
   ``ErrorFrame`` (fatal: the far end broke the protocol), ``EndOfInputFrame`` when a leg stops;
3. a final ``CallEndedFrame`` pushed, then ``sink.close(reason)`` exactly once. After ``close``
   the transport pushes nothing more, and ``output`` silently drops what it is given.

Everything runs on the server's event loop: transports call ``push`` from it, and the pipeline
must call ``output`` from it too (``loop.call_soon_threadsafe`` from a worker thread).

This module imports only ``voice.frames`` (a leaf) so transports can depend on it freely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from voice.frames import CallStartedFrame, Frame

WireMessage = str | bytes
"""One message on the wire: a WebSocket text (JSON) or binary frame, or a datagram payload."""


class CallSink(Protocol):
    """Where a transport delivers one call's frames; implemented by the pipeline side."""

    def push(self, frame: Frame) -> None:
        """Queue ``frame`` for the call's pipeline. Must not block and must not raise."""
        ...

    def close(self, reason: str) -> None:
        """The transport is done with the call (``reason``: hangup, stop, error: ...)."""
        ...


class CallOutput(Protocol):
    """How the pipeline sends frames back to the far end of one call; owned by the transport."""

    def send(self, frame: Frame) -> None:
        """Queue ``frame`` for the far end; frames the ingress cannot carry are dropped."""
        ...

    def hang_up(self, reason: str) -> None:
        """End the call from our side (close the socket, send BYE). Idempotent."""
        ...


@runtime_checkable
class CallHandler(Protocol):
    """The server's entry point for new calls; transports get one at construction."""

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> CallSink:
        """Create the pipeline for a new call and return where its frames go.

        Raises:
            voice.errors.VoiceError: the call is refused (unknown tenant, server draining); the
                transport then rejects it in its own terms (SIP 503, WebSocket close).
        """
        ...


class FrameSerializer(ABC):
    """Converts one provider's wire messages to frames and back, for one call.

    Serializers are stateful per call (sequence numbers, stream ids, resamplers), synchronous and
    free of I/O, so they are tested with plain messages in and frames out.
    """

    @abstractmethod
    def deserialize(self, message: WireMessage) -> list[Frame]:
        """Frames carried by one incoming message (often none: pings, marks of no interest).

        Raises:
            voice.errors.VoiceError: the message is malformed or breaks the protocol; the
                transport ends this call only, with the error's text as the reason.
        """

    @abstractmethod
    def serialize(self, frame: Frame) -> WireMessage | None:
        """The wire message for an outgoing frame, or ``None`` if this provider cannot carry it."""

    def finish(self) -> list[Frame]:
        """End of the stream (the far end said so, or the connection dropped): flush what is
        held (resampler tails) and return each leg's ``EndOfInputFrame``. Idempotent."""
        return []

    def take_replies(self) -> list[WireMessage]:
        """Protocol replies owed to the far end after the last ``deserialize`` (pong, opened).

        The transport sends them at once, in order. Most providers have none.
        """
        return []

    @property
    def ended(self) -> bool:
        """True once the far end has said the stream is over (Twilio stop, AudioHook close)."""
        return False
