"""A scripted Twilio Media Streams client: replays a call file as Twilio would stream it.

It sends ``connected``, ``start`` (``both_tracks`` for a stereo file, customParameters
``tenant``/``agent_id``), one ``media`` message per track every ``chunk_ms`` with Twilio's
``timestamp``, ``dtmf`` at the requested times and ``stop``; it echoes every ``mark`` the server
sends, as Twilio does when playback reaches it.
"""

from __future__ import annotations

import asyncio
import base64
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
from telephony.websocket.twilio_auth import twilio_signature


async def replay_twilio(
    url: str, audio: np.ndarray, options: ReplayOptions | None = None, *, auth_token: str | None = None
) -> ReplayResult:
    """Stream ``audio`` (int16, (channels, samples) at 8 kHz) to a Twilio-style endpoint;
    with ``auth_token`` the upgrade carries Twilio's ``X-Twilio-Signature`` for ``url``."""
    options = options or ReplayOptions()
    headers = {"X-Twilio-Signature": twilio_signature(auth_token, url)} if auth_token else {}
    result = ReplayResult()
    customer, agent = split_parties(audio, options.customer_channel)
    stream_sid = f"MZ{uuid.uuid4().hex}"
    started = time.monotonic()
    async with connect(url, max_size=2**22, additional_headers=headers) as ws:
        reader = asyncio.create_task(_read(ws, result, stream_sid, options))
        sender = _Sender(ws, stream_sid, result)
        await sender.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await sender.send(_start_message(stream_sid, agent is not None, options))
        await _stream_audio(sender, customer, agent, options, result)
        await sender.send({"event": "stop", "stop": {"accountSid": "AC0", "callSid": "CA0"}})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), timeout=0.5)
        await ws.close()
        await reader
        result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
    result.wall_seconds = time.monotonic() - started
    return result


class _Sender:
    def __init__(self, ws: ClientConnection, stream_sid: str, result: ReplayResult) -> None:
        self.ws, self.stream_sid, self.result = ws, stream_sid, result
        self.sequence = 0

    async def send(self, message: dict[str, Any]) -> None:
        self.sequence += 1
        message = {**message, "sequenceNumber": str(self.sequence), "streamSid": self.stream_sid}
        await self.ws.send(json.dumps(message))
        self.result.messages_sent += 1


def _start_message(stream_sid: str, stereo: bool, options: ReplayOptions) -> dict[str, Any]:
    params = {
        key: value
        for key, value in (("tenant", options.tenant), ("agent_id", options.agent_id))
        if value
    }
    if options.mixed and not stereo:
        params["mixed"] = "true"
    return {
        "event": "start",
        "start": {
            "accountSid": "AC0",
            "callSid": f"CA{uuid.uuid4().hex}",
            "streamSid": stream_sid,
            "tracks": ["inbound", "outbound"] if stereo else ["inbound"],
            "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": WIRE_RATE, "channels": 1},
        },
    }


async def _stream_audio(
    sender: _Sender,
    customer: np.ndarray,
    agent: np.ndarray | None,
    options: ReplayOptions,
    result: ReplayResult,
) -> None:
    step = WIRE_RATE * options.chunk_ms // 1000
    pending_dtmf = sorted(options.dtmf)
    pacer = Pacer(options.speed)
    for chunk, offset in enumerate(range(0, len(customer), step)):
        audio_time = offset / WIRE_RATE
        await pacer.wait_for(audio_time)
        while pending_dtmf and pending_dtmf[0][0] <= audio_time:
            _, digit = pending_dtmf.pop(0)
            await sender.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})
        for track, samples in (("inbound", customer), ("outbound", agent)):
            if samples is None:
                continue
            payload = base64.b64encode(codecs.ulaw_encode(samples[offset : offset + step])).decode()
            await sender.send(
                {
                    "event": "media",
                    "media": {
                        "track": track,
                        "chunk": str(chunk + 1),
                        "timestamp": str(offset * 1000 // WIRE_RATE),
                        "payload": payload,
                    },
                }
            )
        result.sent_at.append(time.time())
    result.audio_seconds = len(customer) / WIRE_RATE
    result.max_lag = pacer.max_lag


async def _read(
    ws: ClientConnection, result: ReplayResult, stream_sid: str, options: ReplayOptions
) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            message = json.loads(raw)
            result.received.append(message)
            if message.get("event") == "mark" and options.marks_from_server:
                await ws.send(
                    json.dumps(
                        {"event": "mark", "streamSid": stream_sid, "mark": message.get("mark", {})}
                    )
                )
