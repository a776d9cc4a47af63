"""Over a real socket: a Twilio message with a JSON integer of thousands of digits closes 1007
(it was 1011, an internal error, with a traceback), AudioHook gets its ``disconnect`` with the
reason, and the call's end is marked an error with that reason (it was an ordinary end)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from tests.telephony.test_audiohook_close import Client, provoked_disconnect
from tests.telephony.test_websocket_idle_timeout import START, app_for, wait_closed
from voice.frames import CallEndedFrame

pytestmark = pytest.mark.e2e
HUGE = "1" + "0" * 5000


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30.0))


def test_twilio_huge_json_integer_closes_1007_and_ends_the_call_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[int | None, str | None, RecordedCall]:
        async with serve(app_for(handler)) as host, connect(f"ws://{host}/ws/twilio") as ws:
            await ws.send(json.dumps(START))
            await ws.send('{"event": "media", "sequenceNumber": ' + HUGE + "}")
            await wait_closed(ws)
            call = handler.calls[0]
            await asyncio.wait_for(call.closed.wait(), 5.0)
            return ws.close_code, ws.close_reason, call

    with caplog.at_level(logging.INFO):
        code, reason, call = run(scenario())
    assert code == 1007 and (reason or "").startswith("malformed JSON")
    (ended,) = call.of_type(CallEndedFrame)
    assert ended.error and ended.reason.startswith("error: malformed JSON")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_audiohook_huge_duration_is_a_disconnect_with_the_reason() -> None:
    handler = CollectingHandler()

    async def huge_duration(ws: Any, client: Client) -> None:
        await client.send("discarded", {"start": "PT" + "9" * 5000 + "H", "discarded": "PT1S"})

    replies, call = provoked_disconnect(app_for(handler, audiohook_close_timeout=5.0), handler, huge_duration)
    assert [r["type"] for r in replies] == ["opened", "disconnect", "closed"]
    assert replies[1]["parameters"]["reason"] == "error" and "out of range" in replies[1]["parameters"]["info"]
    (ended,) = call.of_type(CallEndedFrame)
    assert ended.error and "out of range" in ended.reason
