"""Twilio serializer at the end of a stream and with out-of-range numbers."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from telephony import codecs
from telephony.errors import ProtocolError
from telephony.settings import TelephonySettings
from telephony.websocket.twilio import TwilioSerializer
from voice.frames import AudioFrame, CallStartedFrame, DtmfFrame, EndOfInputFrame, MarkFrame

pytestmark = pytest.mark.unit
PAYLOAD = base64.b64encode(codecs.ulaw_encode(np.full(160, 1000, dtype=np.int16))).decode()


def started() -> TwilioSerializer:
    serializer = TwilioSerializer(TelephonySettings(sample_rate=8000))
    start = {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"]}
    frames = serializer.deserialize(json.dumps({"event": "start", "start": start}))
    assert isinstance(frames[0], CallStartedFrame)
    return serializer


def media(timestamp: object) -> str:
    """A media message; ``timestamp`` is spliced in raw (``Infinity`` is not valid JSON)."""
    body = json.dumps({"event": "media", "media": {"track": "inbound", "payload": PAYLOAD}})
    return body[:-2] + f', "timestamp": {timestamp}}}}}'



def test_nothing_after_stop_reaches_the_pipeline() -> None:
    serializer = started()
    frames = serializer.deserialize(media(0))
    frames += serializer.deserialize(json.dumps({"event": "stop", "stop": {}}))
    assert isinstance(frames[-1], EndOfInputFrame) and serializer.ended
    late = serializer.deserialize(media(20))
    late += serializer.deserialize(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}))
    late += serializer.deserialize(json.dumps({"event": "mark", "mark": {"name": "m"}}))
    late += serializer.deserialize(json.dumps({"event": "stop", "stop": {}}))
    assert late == []
    assert serializer.ignored_after_stop == 4
    assert not [f for f in frames if isinstance(f, (DtmfFrame, MarkFrame))]
    assert sum(isinstance(f, AudioFrame) for f in frames) >= 1


@pytest.mark.parametrize("timestamp", ["Infinity", "-Infinity", "1e999", "NaN"])
def test_a_non_finite_timestamp_is_a_protocol_error(timestamp: str) -> None:
    serializer = started()
    with pytest.raises(ProtocolError, match="timestamp"):
        serializer.deserialize(media(timestamp))
