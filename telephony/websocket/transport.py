"""Runs one call over one accepted WebSocket: bytes in and out, nothing else.

The serializer owns the wire format; this class moves messages between the socket, the
serializer and the pipeline's sink, and sends what the pipeline gives its ``CallOutput``. A
malformed or out-of-protocol message closes *this* socket with a close code and the error as the
reason (1007 for unreadable data, 1008 for protocol violations, 1009 for a message over
``max_message_bytes``, 1011 for our own bugs, in a serializer or in ``handler.open_call``); other
calls never notice. Before that close the serializer may say goodbye in the provider's terms: if
it has a ``fail(info)`` method (AudioHook: ``disconnect`` with reason ``error``), the transport
calls it and sends the replies it queued; Twilio has no such message and just sees the close.

Providers with a close transaction (AudioHook: our ``disconnect``, their ``close``, our
``closed``, then *they* close the socket) set the serializer's ``awaiting_close`` after saying
goodbye; the socket then stays open for the far end's close, at most ``close_timeout`` seconds.

Nothing waits forever: a socket whose call has not started (Twilio ``start``, AudioHook ``open``)
within ``start_timeout`` seconds of the upgrade is a protocol error (1008; AudioHook gets its
``disconnect`` first), and a started call that receives no message at all for ``idle_timeout``
seconds ends as a hang-up would (reason ``idle timeout``; AudioHook ``disconnect`` with reason
``completed``), like SIP's ``rtp_timeout``. Any message counts, pings included: a paused
AudioHook session sends no audio but keeps pinging (every 5 s in the reference client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from telephony.errors import MalformedMessageError, ProtocolError
from telephony.settings import TelephonySettings
from voice.errors import VoiceError
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame, ErrorFrame, Frame
from voice.transport import CallHandler, CallSink, FrameSerializer, WireMessage

log = logging.getLogger(__name__)
CLOSE_NORMAL, CLOSE_MALFORMED, CLOSE_PROTOCOL = 1000, 1007, 1008
CLOSE_TOO_BIG, CLOSE_INTERNAL, CLOSE_TRY_LATER = 1009, 1011, 1013
LINGER_AFTER_END = 5.0
"""Seconds we wait for the far end to close after it said the stream ended."""
CLOSE_TIMEOUT = 5.0
"""Seconds we wait for the far end's close transaction after our goodbye (AudioHook)."""
START_TIMEOUT = 10.0
"""Seconds a socket may stay open before its call starts, for a serializer without settings."""
IDLE_TIMEOUT = 60.0
"""Seconds a started call may go without any message, for a serializer without settings."""
IDLE_REASON = "idle timeout"
"""End reason of a started call that went quiet (SIP's counterpart: ``rtp timeout``)."""


class WebSocketCallTransport:
    """One WebSocket, one call. Also the call's ``CallOutput``."""

    def __init__(
        self,
        websocket: WebSocket,
        serializer: FrameSerializer,
        handler: CallHandler,
        *,
        max_message_bytes: int = 1 << 20,
        close_timeout: float | None = None,
        start_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.websocket = websocket
        self.serializer = serializer
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.close_timeout = CLOSE_TIMEOUT if close_timeout is None else close_timeout
        # Unless given, the timeouts come from the serializer's settings (Twilio and AudioHook
        # both carry theirs), so the routes need not pass them.
        settings = getattr(serializer, "settings", None)
        if not isinstance(settings, TelephonySettings):
            settings = None
        if start_timeout is None:
            start_timeout = settings.websocket_start_timeout if settings else START_TIMEOUT
        if idle_timeout is None:
            idle_timeout = settings.websocket_idle_timeout if settings else IDLE_TIMEOUT
        self.start_timeout = start_timeout
        """Seconds from the upgrade until the call must have started."""
        self.idle_timeout = idle_timeout
        """Seconds a started call may go without any message."""
        self.sink: CallSink | None = None
        self.started: CallStartedFrame | None = None
        self._outbox: asyncio.Queue[WireMessage | None] = asyncio.Queue()
        self._audio_end = 0.0
        self._close: tuple[int, str] | None = None  # code and reason once we decided to close
        self._end_reason: str | None = None  # set when we ended the call but await their close
        self._close_timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Serve the socket until either side ends the call."""
        writer = asyncio.create_task(self._write_loop())
        reason = "disconnect"
        try:
            reason = await self._read_loop()
        finally:
            if self._close_timer is not None:
                self._close_timer.cancel()
            self._end_call(reason)
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=2.0)
            await self._close_socket()

    # --- CallOutput ---

    def send(self, frame: Frame) -> None:
        """Serialize ``frame`` for the far end (dropped if the provider cannot carry it)."""
        if self._close is not None or self._end_reason is not None:
            return
        message = self.serializer.serialize(frame)
        if message is not None:
            self._outbox.put_nowait(message)

    def hang_up(self, reason: str) -> None:
        """Say goodbye in the provider's terms (AudioHook ``disconnect``), then close.

        With a close transaction the far end closes, after its ``close`` got ``closed``.
        """
        if self._close is not None or self._end_reason is not None:
            return
        call_id = self.started.call_id if self.started else ""
        self.send(CallEndedFrame(call_id=call_id, reason=reason))
        closing = (CLOSE_NORMAL, reason[:120])
        if self._awaiting_close():
            self._await_close(closing, f"hang up: {reason}")
            return
        self._close = closing
        self._outbox.put_nowait(None)

    # --- internals ---

    async def _read_loop(self) -> str:
        loop = asyncio.get_running_loop()
        ended_at: float | None = None
        start_deadline = loop.time() + self.start_timeout
        while self._close is None:
            if ended_at is not None:  # the far end said the stream ended: linger for its close
                timeout: float | None = max(0.0, ended_at + LINGER_AFTER_END - loop.time())
            elif self._end_reason is not None:
                timeout = None  # awaiting their close: the close timer bounds it
            elif self.started is None:
                timeout = max(0.0, start_deadline - loop.time())  # pings do not extend it
            else:
                timeout = self.idle_timeout  # any message is activity
            try:
                message = await asyncio.wait_for(self._receive(), timeout)
            except WebSocketDisconnect:
                break
            except TimeoutError:
                if ended_at is not None:
                    break
                reason = self._time_out()
                if reason is not None:
                    return reason
                continue
            if message is None:
                break
            reason = await self._handle(message)
            if reason is not None:
                return reason
            if self.serializer.ended and ended_at is None:
                ended_at = loop.time()
                if self._close_timer is not None:  # the close transaction completed
                    self._close_timer.cancel()
        if self._end_reason is not None:
            return self._end_reason
        if self._close is not None:
            return f"hang up: {self._close[1]}"
        return "stop" if self.serializer.ended else "disconnect"

    async def _receive(self) -> WireMessage | None:
        event = await self.websocket.receive()
        if event["type"] == "websocket.disconnect":
            return None
        text, data = event.get("text"), event.get("bytes")
        return text if text is not None else (data or b"")

    async def _handle(self, message: WireMessage) -> str | None:
        """Process one message; returns a reason when the call must end because of it."""
        if len(message) > self.max_message_bytes:
            return self._fail(CLOSE_TOO_BIG, f"message of {len(message)} bytes is too large")
        try:
            frames = self.serializer.deserialize(message)
        except MalformedMessageError as exc:
            return self._fail(CLOSE_MALFORMED, exc.message)
        except ProtocolError as exc:
            return self._fail(CLOSE_PROTOCOL, exc.message)
        except Exception as exc:  # a bug in a serializer must end this call only
            log.exception("serializer failed")
            return self._fail(CLOSE_INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            for reply in self.serializer.take_replies():
                self._outbox.put_nowait(reply)
        for frame in frames:
            if isinstance(frame, CallStartedFrame):
                refused = await self._open(frame)
                if refused is not None:
                    return refused
            else:
                self._push(frame)
        return None

    async def _open(self, started: CallStartedFrame) -> str | None:
        try:
            self.sink = await self.handler.open_call(started, self)
        except VoiceError as exc:
            reason = f"call refused: {exc.message}"
            # AudioHook: disconnect with reason error (the info says why)
            self.send(CallEndedFrame(call_id=started.call_id, reason=reason, error=True))
            return self._fail(CLOSE_TRY_LATER, reason)
        except Exception as exc:  # our bug (a model that fails to load, a full disk): 1011
            log.exception("opening call %s failed", started.call_id)
            reason = f"internal error: {type(exc).__name__}"
            self.send(CallEndedFrame(call_id=started.call_id, reason=reason, error=True))
            return self._fail(CLOSE_INTERNAL, reason)
        self.started = started
        return None

    def _push(self, frame: Frame) -> None:
        if self.sink is None:
            return
        if isinstance(frame, AudioFrame):
            self._audio_end = max(self._audio_end, frame.pts + frame.duration)
        self.sink.push(frame)

    def _time_out(self) -> str | None:
        """No call started in time (a protocol error), or a started call went quiet (a hang-up).

        Returns the end reason, or None while awaiting the far end's close (AudioHook).
        """
        if self.started is None:
            return self._fail(CLOSE_PROTOCOL, f"no call started within {self.start_timeout:g} s")
        log.info("call %s: no message for %g s: ending it", self.started.call_id, self.idle_timeout)
        self.send(CallEndedFrame(call_id=self.started.call_id, reason=IDLE_REASON))  # AudioHook: disconnect
        closing = (CLOSE_NORMAL, IDLE_REASON)
        if self._awaiting_close():
            self._await_close(closing, IDLE_REASON)
            return None
        self._close = closing
        return IDLE_REASON

    def _fail(self, code: int, reason: str) -> str | None:
        """End the call for an error; returns the end reason, or None while awaiting their close."""
        if self._end_reason is not None:
            return None  # already ending and awaiting their close: the first reason stands
        closing = (code, reason.encode("utf-8")[:120].decode("utf-8", "ignore"))
        self._say_goodbye(reason)
        if self.sink is not None:
            self.sink.push(ErrorFrame(message=reason, fatal=True, source="telephony.websocket"))
        if self._awaiting_close():  # the serializer said goodbye (AudioHook disconnect)
            log.info("ending %s, awaiting the close: %s", self.websocket.url.path, reason)
            self._await_close(closing, f"error: {reason}")
            return None
        log.info("closing %s: %s", self.websocket.url.path, reason)
        self._close = closing
        return f"error: {reason}"

    def _say_goodbye(self, info: str) -> None:
        """Let the serializer announce the error in its protocol, and send what it queued."""
        # Duck-typed like ``awaiting_close``: only some providers have a goodbye message.
        fail = getattr(self.serializer, "fail", None)
        if callable(fail):
            try:
                fail(info)
            except Exception:  # a bug in the goodbye must not keep the socket open
                log.exception("serializer failed to say goodbye")
        for reply in self.serializer.take_replies():
            self._outbox.put_nowait(reply)

    def _awaiting_close(self) -> bool:
        # A capability of the serializer, read as data (voice.transport.FrameSerializer does not
        # declare it: only some providers have a close transaction).
        return bool(getattr(self.serializer, "awaiting_close", False))

    def _await_close(self, closing: tuple[int, str], reason: str) -> None:
        """Keep reading for the far end's close; force ``closing`` after ``close_timeout``."""
        if self._end_reason is not None:
            return  # already waiting: the first reason and deadline stand
        self._end_reason = reason
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(self.close_timeout, self._give_up_on_close, closing)

    def _give_up_on_close(self, closing: tuple[int, str]) -> None:
        if self._close is None and not self.serializer.ended:
            path = self.websocket.url.path
            log.info("no close transaction within %.1f s on %s", self.close_timeout, path)
            self._close = closing
            self._outbox.put_nowait(None)  # the write loop closes; the read loop then sees it

    def _end_call(self, reason: str) -> None:
        if self.sink is None:
            return
        with contextlib.suppress(Exception):
            for frame in self.serializer.finish():
                self._push(frame)
        assert self.started is not None
        self.sink.push(
            CallEndedFrame(
                call_id=self.started.call_id,
                reason=reason,
                audio_time=self._audio_end,
                error=reason.startswith("error:"),  # ended by a protocol error, not by either side
            )
        )
        self.sink.close(reason)
        self.sink = None

    async def _write_loop(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                if self._close is not None:
                    await self._close_socket()  # our hang-up: the read loop then sees the close
                return
            try:
                if isinstance(message, bytes):
                    await self.websocket.send_bytes(message)
                else:
                    await self.websocket.send_text(message)
            except Exception:  # the peer is gone; the read loop will notice
                return

    async def _close_socket(self) -> None:
        if self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        code, reason = self._close or (CLOSE_NORMAL, "")
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)
