"""A scripted Genesys AudioHook v2 client: replays a call file as Genesys Cloud would stream it.

It connects with ``X-API-KEY`` and the ``Audiohook-*`` headers, sends ``open`` (PCMU, channels
``external``/``internal``, ``inputVariables`` tenant/agent_id), waits for ``opened``, streams
interleaved stereo PCMU in binary messages, pings, can pause and resume, and ends with
``close`` -> ``closed``, then closes the socket. When the server sends ``disconnect`` the client
stops streaming and runs the same close transaction. Sequence numbers and positions follow the
protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from telephony import codecs
from telephony.clients.common import WIRE_RATE, Pacer, ReplayOptions, ReplayResult, split_parties

REPLY_TIMEOUT = 5.0


async def replay_audiohook(
    url: str, audio: np.ndarray, options: ReplayOptions | None = None, *, api_key: str
) -> ReplayResult:
    """Stream ``audio`` (int16, (channels, samples) at 8 kHz) to an AudioHook endpoint.

    Raises:
        websockets.exceptions.InvalidStatus: the server refused the upgrade (e.g. 401).
    """
    options = options or ReplayOptions(chunk_ms=100)
    customer, agent = split_parties(audio, options.customer_channel)
    session = _Session(str(uuid.uuid4()))
    headers = {
        "X-API-KEY": api_key,
        "Audiohook-Session-Id": session.id,
        "Audiohook-Organization-Id": str(uuid.uuid4()),
        "Audiohook-Correlation-Id": str(uuid.uuid4()),
    }
    started = time.monotonic()
    async with connect(url, additional_headers=headers, max_size=2**22) as ws:
        session.ws = ws
        reader = asyncio.create_task(session.read())
        await session.send("open", _open_parameters(agent is not None, options))
        await session.expect("opened")
        await _stream(session, customer, agent, options)
        reason = "disconnect" if session.disconnected.is_set() else "end"
        await session.send("close", {"reason": reason})
        with contextlib.suppress(asyncio.TimeoutError):
            await session.expect("closed")
        await ws.close()
        await reader
        session.result.close_code, session.result.close_reason = (
            ws.close_code,
            ws.close_reason or "",
        )
    session.result.wall_seconds = time.monotonic() - started
    return session.result


class _Session:
    """Client-side protocol state: sequence numbers, position, replies."""

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.ws: ClientConnection | None = None
        self.seq = 0
        self.serverseq = 0
        self.position = 0.0
        self.result = ReplayResult()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        """Set when the server sent ``disconnect``: stop streaming, then close."""

    async def send(self, kind: str, parameters: dict[str, Any]) -> None:
        assert self.ws is not None
        self.seq += 1
        await self.ws.send(
            json.dumps(
                {
                    "version": "2",
                    "id": self.id,
                    "type": kind,
                    "seq": self.seq,
                    "serverseq": self.serverseq,
                    "position": f"PT{self.position:.3f}S",
                    "parameters": parameters,
                }
            )
        )
        self.result.messages_sent += 1

    async def send_audio(self, data: bytes, seconds: float) -> None:
        assert self.ws is not None
        await self.ws.send(data)
        self.position += seconds
        self.result.messages_sent += 1

    async def expect(self, kind: str) -> dict[str, Any]:
        """Wait for the server message of type ``kind`` (others stay in ``result.received``)."""
        while True:
            message = await asyncio.wait_for(self._replies.get(), REPLY_TIMEOUT)
            if message.get("type") == kind:
                return message

    async def read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    continue
                message = json.loads(raw)
                self.serverseq = int(message.get("seq", self.serverseq))
                self.result.received.append(message)
                self._replies.put_nowait(message)
                if message.get("type") == "disconnect":
                    self.disconnected.set()


def _open_parameters(stereo: bool, options: ReplayOptions) -> dict[str, Any]:
    variables = {
        key: value
        for key, value in (("tenant", options.tenant), ("agent_id", options.agent_id))
        if value
    }
    return {
        "organizationId": str(uuid.uuid4()),
        "conversationId": str(uuid.uuid4()),
        "participant": {
            "id": str(uuid.uuid4()),
            "ani": "+15551230000",
            "aniName": "Customer",
            "dnis": "+15559870000",
        },
        "media": [
            {
                "type": "audio",
                "format": "PCMU",
                "rate": WIRE_RATE,
                "channels": ["external", "internal"] if stereo else ["external"],
            }
        ],
        "language": "en-US",
        "inputVariables": variables,
    }


async def _stream(
    session: _Session, customer: np.ndarray, agent: np.ndarray | None, options: ReplayOptions
) -> None:
    step = WIRE_RATE * options.chunk_ms // 1000
    pacer = Pacer(options.speed)
    next_ping = options.ping_every
    pause_start, pause_length = options.pause or (float("inf"), 0.0)
    paused_sent = False
    for offset in range(0, len(customer), step):
        if session.disconnected.is_set():
            break  # the server ended the session; the caller answers with close
        audio_time = offset / WIRE_RATE
        await pacer.wait_for(audio_time)
        if pause_start <= audio_time < pause_start + pause_length:
            if not paused_sent:
                await session.send("paused", {})
                paused_sent = True
            session.position = audio_time + step / WIRE_RATE  # discarded audio still advances
            session.result.sent_at.append(time.time())
            continue
        if paused_sent:
            await session.send(
                "resumed",
                {
                    "start": f"PT{pause_start:.3f}S",
                    "discarded": f"PT{audio_time - pause_start:.3f}S",
                },
            )
            paused_sent, pause_start = False, float("inf")
        channels = [customer[offset : offset + step]]
        if agent is not None:
            channels.append(agent[offset : offset + step])
        interleaved = np.stack(channels, axis=1).reshape(-1)
        await session.send_audio(codecs.ulaw_encode(interleaved), len(channels[0]) / WIRE_RATE)
        session.result.sent_at.append(time.time())
        if options.ping_every and audio_time >= next_ping:
            await session.send("ping", {})
            next_ping += options.ping_every
    session.result.audio_seconds = len(customer) / WIRE_RATE
    session.result.max_lag = pacer.max_lag
