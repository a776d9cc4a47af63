"""Runs one call over one accepted WebSocket: bytes in and out, nothing else.

The serializer owns the wire format; this class moves messages between the socket, the
serializer and the pipeline's sink, and sends what the pipeline gives its ``CallOutput``. A
malformed or out-of-protocol message closes *this* socket with a close code and the error as the
reason (1007 for unreadable data, 1008 for protocol violations, 1011 for our own bugs); other
calls never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from telephony.errors import MalformedMessageError, ProtocolError
from voice.errors import VoiceError
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame, ErrorFrame, Frame
from voice.transport import CallHandler, CallSink, FrameSerializer, WireMessage

log = logging.getLogger(__name__)
CLOSE_NORMAL, CLOSE_MALFORMED, CLOSE_PROTOCOL = 1000, 1007, 1008
CLOSE_TOO_BIG, CLOSE_INTERNAL, CLOSE_TRY_LATER = 1009, 1011, 1013
LINGER_AFTER_END = 5.0
"""Seconds we wait for the far end to close after it said the stream ended."""


class WebSocketCallTransport:
    """One WebSocket, one call. Also the call's ``CallOutput``."""

    def __init__(
        self,
        websocket: WebSocket,
        serializer: FrameSerializer,
        handler: CallHandler,
        *,
        max_message_bytes: int = 1 << 20,
    ) -> None:
        self.websocket = websocket
        self.serializer = serializer
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.sink: CallSink | None = None
        self.started: CallStartedFrame | None = None
        self._outbox: asyncio.Queue[WireMessage | None] = asyncio.Queue()
        self._audio_end = 0.0
        self._close: tuple[int, str] | None = None  # code and reason once we decided to close

    async def run(self) -> None:
        """Serve the socket until either side ends the call."""
        writer = asyncio.create_task(self._write_loop())
        reason = "disconnect"
        try:
            reason = await self._read_loop()
        finally:
            self._end_call(reason)
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=2.0)
            await self._close_socket()

    # --- CallOutput ---

    def send(self, frame: Frame) -> None:
        """Serialize ``frame`` for the far end (dropped if the provider cannot carry it)."""
        if self._close is not None:
            return
        message = self.serializer.serialize(frame)
        if message is not None:
            self._outbox.put_nowait(message)

    def hang_up(self, reason: str) -> None:
        """Say goodbye in the provider's terms (AudioHook ``disconnect``), then close."""
        if self._close is None:
            self.send(
                CallEndedFrame(call_id=self.started.call_id if self.started else "", reason=reason)
            )
            self._close = (CLOSE_NORMAL, reason[:120])
            self._outbox.put_nowait(None)

    # --- internals ---

    async def _read_loop(self) -> str:
        loop = asyncio.get_running_loop()
        ended_at: float | None = None
        while self._close is None:
            timeout = (
                None if ended_at is None else max(0.0, ended_at + LINGER_AFTER_END - loop.time())
            )
            try:
                message = await asyncio.wait_for(self._receive(), timeout)
            except (TimeoutError, WebSocketDisconnect):
                break
            if message is None:
                break
            reason = await self._handle(message)
            if reason is not None:
                return reason
            if self.serializer.ended and ended_at is None:
                ended_at = loop.time()
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
            self.send(
                CallEndedFrame(call_id=started.call_id, reason=reason)
            )  # AudioHook: disconnect
            return self._fail(CLOSE_TRY_LATER, reason)
        self.started = started
        return None

    def _push(self, frame: Frame) -> None:
        if self.sink is None:
            return
        if isinstance(frame, AudioFrame):
            self._audio_end = max(self._audio_end, frame.pts + frame.duration)
        self.sink.push(frame)

    def _fail(self, code: int, reason: str) -> str:
        log.info("closing %s: %s", self.websocket.url.path, reason)
        self._close = (code, reason.encode("utf-8")[:120].decode("utf-8", "ignore"))
        if self.sink is not None:
            self.sink.push(ErrorFrame(message=reason, fatal=True, source="telephony.websocket"))
        return f"error: {reason}"

    def _end_call(self, reason: str) -> None:
        if self.sink is None:
            return
        with contextlib.suppress(Exception):
            for frame in self.serializer.finish():
                self._push(frame)
        assert self.started is not None
        self.sink.push(
            CallEndedFrame(call_id=self.started.call_id, reason=reason, audio_time=self._audio_end)
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
