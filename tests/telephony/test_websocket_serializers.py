"""Twilio Media Streams and Genesys AudioHook v2 serializers: messages in, frames out."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from telephony import codecs
from telephony.errors import MalformedMessageError, ProtocolError
from telephony.settings import TelephonySettings
from telephony.websocket.audiohook import AudioHookSerializer, format_duration, parse_duration
from telephony.websocket.twilio import TwilioSerializer
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    ClearPlaybackFrame,
    DtmfFrame,
    EndOfInputFrame,
    MarkFrame,
    SettingsUpdateFrame,
    TransportMessageFrame,
)

pytestmark = pytest.mark.unit
SETTINGS = TelephonySettings(sample_rate=8000)


def twilio_start(**params: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ1",
            "start": {
                "streamSid": "MZ1",
                "callSid": "CA1",
                "accountSid": "AC1",
                "tracks": ["inbound", "outbound"],
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def twilio_media(track: str, timestamp_ms: int, samples: np.ndarray) -> str:
    payload = base64.b64encode(codecs.ulaw_encode(samples)).decode()
    return json.dumps(
        {
            "event": "media",
            "streamSid": "MZ1",
            "media": {
                "track": track,
                "chunk": "1",
                "timestamp": str(timestamp_ms),
                "payload": payload,
            },
        }
    )


def test_twilio_start_maps_tracks_and_custom_parameters() -> None:
    serializer = TwilioSerializer(SETTINGS)
    assert serializer.deserialize(json.dumps({"event": "connected", "protocol": "Call"})) == []
    (started,) = serializer.deserialize(twilio_start(tenant="acme", agent_id="agent-42"))
    assert isinstance(started, CallStartedFrame) and started.source == "twilio"
    assert (started.tenant, started.agent_id) == ("acme", "agent-42")
    assert started.legs == {"inbound": "customer", "outbound": "agent"}
    assert started.metadata["call_sid"] == "CA1"


def test_call_start_facts_come_from_context_parameters_and_bad_ones_are_left_out() -> None:
    serializer = TwilioSerializer(SETTINGS)
    params = {"context.customer_tier": "2", "context.monthly_price": "39.9", "context.plan": "gold",
              "context.churn": "nan", "campaign": "7"}  # fmt: skip
    (started,) = serializer.deserialize(twilio_start(tenant="acme", **params))
    assert started.context == {"customer_tier": 2.0, "monthly_price": 39.9}
    (plain,) = TwilioSerializer(SETTINGS).deserialize(twilio_start(tenant="acme"))
    assert plain.context == {}


def test_twilio_single_track_flagged_mixed_has_an_unknown_role() -> None:
    mono = json.loads(twilio_start(mixed="true"))
    mono["start"]["tracks"] = ["inbound"]
    (started,) = TwilioSerializer(SETTINGS).deserialize(json.dumps(mono))
    assert started.legs == {"inbound": "unknown"}  # the pipeline attributes speakers itself
    # the flag means nothing for two tracks: each is one party
    (stereo,) = TwilioSerializer(SETTINGS).deserialize(twilio_start(mixed="true"))
    assert stereo.legs == {"inbound": "customer", "outbound": "agent"}


def test_twilio_media_decodes_per_track_on_the_timestamp_clock() -> None:
    serializer = TwilioSerializer(SETTINGS)
    serializer.deserialize(twilio_start())
    tone = (np.sin(np.arange(160) / 3) * 8000).astype(np.int16)
    (first,) = serializer.deserialize(twilio_media("inbound", 0, tone))
    (gap_and_second,) = serializer.deserialize(twilio_media("inbound", 100, tone))  # 80 ms lost
    (agent,) = serializer.deserialize(twilio_media("outbound", 0, tone))
    assert isinstance(first, AudioFrame) and first.leg == "inbound" and first.pts == 0
    assert np.array_equal(first.pcm, codecs.ulaw_decode(codecs.ulaw_encode(tone)))
    assert len(gap_and_second.pcm) == 640 + 160 and gap_and_second.pts == pytest.approx(0.02)
    assert agent.leg == "outbound"
    ends = serializer.deserialize(json.dumps({"event": "stop", "streamSid": "MZ1", "stop": {}}))
    assert {f.leg for f in ends if isinstance(f, EndOfInputFrame)} == {"inbound", "outbound"}
    assert serializer.ended


def test_twilio_dtmf_mark_and_outgoing_messages() -> None:
    serializer = TwilioSerializer(SETTINGS)
    serializer.deserialize(twilio_start())
    (dtmf,) = serializer.deserialize(
        json.dumps({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "7"}})
    )
    assert isinstance(dtmf, DtmfFrame) and (dtmf.digit, dtmf.leg) == ("7", "inbound")
    (mark,) = serializer.deserialize(json.dumps({"event": "mark", "mark": {"name": "m1"}}))
    assert isinstance(mark, MarkFrame) and mark.name == "m1"
    assert json.loads(serializer.serialize(MarkFrame(name="m2"))) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "m2"},
    }
    assert json.loads(serializer.serialize(ClearPlaybackFrame()))["event"] == "clear"
    out = json.loads(
        serializer.serialize(
            AudioFrame(pcm=np.zeros(320, np.int16), sample_rate=16000, leg="agent", pts=0)
        )
    )
    assert out["event"] == "media" and 0 < len(base64.b64decode(out["media"]["payload"])) <= 160
    assert serializer.serialize(DtmfFrame(digit="1", leg="x", audio_time=0)) is None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("{not json", MalformedMessageError),
        ("[1, 2]", MalformedMessageError),
        (b"\x00\x01", MalformedMessageError),
        (json.dumps({"event": "media", "media": {"payload": ""}}), ProtocolError),  # before start
    ],
)
def test_twilio_bad_input_before_start(message, error) -> None:
    with pytest.raises(error):
        TwilioSerializer(SETTINGS).deserialize(message)


def test_twilio_bad_payload_and_format() -> None:
    serializer = TwilioSerializer(SETTINGS)
    serializer.deserialize(twilio_start())
    with pytest.raises(MalformedMessageError):
        serializer.deserialize(
            json.dumps({"event": "media", "media": {"track": "inbound", "payload": "!!"}})
        )
    with pytest.raises(ProtocolError):
        TwilioSerializer(SETTINGS).deserialize(twilio_start().replace("audio/x-mulaw", "audio/l16"))


# --- AudioHook ---------------------------------------------------------------------------------

SESSION = "e160e428-53e2-487c-977d-96989bf5c99d"


class Client:
    """Builds client messages with correct seq/serverseq/position."""

    def __init__(self) -> None:
        self.seq = 0
        self.serverseq = 0

    def msg(self, kind: str, **parameters: object) -> str:
        self.seq += 1
        return json.dumps(
            {
                "version": "2",
                "id": SESSION,
                "type": kind,
                "seq": self.seq,
                "serverseq": self.serverseq,
                "position": "PT0S",
                "parameters": parameters,
            }
        )

    def read(self, serializer: AudioHookSerializer) -> list[dict]:
        replies = [json.loads(r) for r in serializer.take_replies()]
        if replies:
            self.serverseq = replies[-1]["seq"]
        return replies


def open_session(serializer: AudioHookSerializer, client: Client, **open_params: object):
    media = [
        {"type": "audio", "format": "L16", "channels": ["external", "internal"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
    ]
    frames = serializer.deserialize(
        client.msg(
            "open",
            organizationId="o1",
            conversationId="c1",
            participant={"ani": "+1555"},
            media=media,
            **open_params,
        )
    )
    return frames, client.read(serializer)


def test_audiohook_open_prefers_pcmu_and_maps_channels() -> None:
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    frames, replies = open_session(
        serializer, client, inputVariables={"tenant": "acme", "agent_id": "a9", "context.tier": "3"}
    )
    (started,) = frames
    assert started.legs == {"external": "customer", "internal": "agent"}
    assert started.context == {"tier": 3.0}
    assert (started.tenant, started.agent_id, started.source) == ("acme", "a9", "audiohook")
    (opened,) = replies
    assert opened["type"] == "opened" and opened["clientseq"] == 1 and opened["seq"] == 1
    assert opened["parameters"]["media"][0]["format"] == "PCMU"


def test_audiohook_key_tenant_wins_over_open_parameters() -> None:
    serializer = AudioHookSerializer(SETTINGS, tenant="bound", session_id=SESSION)
    (started,), _ = open_session(serializer, Client(), customConfig={"tenant": "claimed"})
    assert started.tenant == "bound"


def test_audiohook_stereo_audio_ping_pause_resume_close() -> None:
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    open_session(serializer, client)
    external = np.full(800, 1000, np.int16)
    internal = np.full(800, -2000, np.int16)
    interleaved = codecs.ulaw_encode(np.stack([external, internal], axis=1).reshape(-1))
    frames = serializer.deserialize(interleaved)
    by_leg = {f.leg: f for f in frames}
    assert by_leg["external"].pcm.mean() > 900 and by_leg["internal"].pcm.mean() < -1800
    serializer.deserialize(client.msg("ping"))
    assert [r["type"] for r in client.read(serializer)] == ["pong"]
    serializer.deserialize(client.msg("paused"))
    with pytest.raises(ProtocolError):  # audio while paused breaks the protocol
        serializer.deserialize(interleaved)


def test_audiohook_resumed_moves_the_timeline_past_discarded_audio() -> None:
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    open_session(serializer, client)
    chunk = codecs.ulaw_encode(np.zeros(1600, np.int16))  # 100 ms stereo
    serializer.deserialize(chunk)
    serializer.deserialize(client.msg("paused"))
    serializer.deserialize(client.msg("resumed", start="PT0.1S", discarded="PT2.0S"))
    frames = serializer.deserialize(chunk)
    external = [f for f in frames if f.leg == "external"]
    assert sum(len(f.pcm) for f in external) == 800 + 16000  # silence for the 2 s discarded
    (update,) = serializer.deserialize(client.msg("update", language="de-DE"))
    assert isinstance(update, SettingsUpdateFrame) and update.settings == {"language": "de-DE"}
    frames = serializer.deserialize(client.msg("close", reason="end"))
    assert {f.leg for f in frames if isinstance(f, EndOfInputFrame)} == {"external", "internal"}
    assert [r["type"] for r in client.read(serializer)] == ["closed"] and serializer.ended


def test_audiohook_events_and_disconnect_are_serialized() -> None:
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    open_session(serializer, client)
    event = json.loads(
        serializer.serialize(TransportMessageFrame(message={"entities": [{"type": "x"}]}))
    )
    assert event["type"] == "event" and event["parameters"]["entities"] == [{"type": "x"}]
    bye = json.loads(serializer.serialize(CallEndedFrame(call_id="c", reason="done")))
    assert bye["type"] == "disconnect" and bye["seq"] == event["seq"] + 1


def test_audiohook_probe_opens_no_call() -> None:
    serializer = AudioHookSerializer(SETTINGS, session_id=SESSION)
    client = Client()
    frames = serializer.deserialize(
        client.msg(
            "open",
            conversationId="00000000-0000-0000-0000-000000000000",
            media=[{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}],
        )
    )
    assert frames == [] and serializer.probe
    assert serializer.deserialize(codecs.ulaw_encode(np.zeros(800, np.int16))) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: {**m, "seq": 5},  # gap
        lambda m: {**m, "version": "1"},
        lambda m: {**m, "serverseq": 9},  # ahead of what we sent
        lambda m: {**m, "id": "other-session"},
        lambda m: {**m, "parameters": {**m["parameters"], "media": [{"format": "opus"}]}},
    ],
)
def test_audiohook_protocol_violations_raise_and_queue_disconnect(mutate) -> None:
    serializer = AudioHookSerializer(SETTINGS, session_id=SESSION)
    message = json.loads(
        Client().msg(
            "open",
            conversationId="c",
            media=[{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}],
        )
    )
    with pytest.raises(ProtocolError):
        serializer.deserialize(json.dumps(mutate(message)))
    (reply,) = [json.loads(r) for r in serializer.take_replies()]
    assert reply["type"] == "disconnect" and reply["parameters"]["reason"] == "error"


def test_audio_before_open_and_odd_byte_counts() -> None:
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    with pytest.raises(ProtocolError):
        serializer.deserialize(b"\xff\xff")
    serializer, client = AudioHookSerializer(SETTINGS, session_id=SESSION), Client()
    open_session(serializer, client)
    with pytest.raises(MalformedMessageError):
        serializer.deserialize(b"\xff\xff\xff")


def test_durations() -> None:
    assert parse_duration("PT1.25S") == 1.25 and parse_duration("PT1M2S") == 62
    assert parse_duration(format_duration(3.5)) == 3.5
    for bad in ("1.5", "PT", "PTxS", 5):
        with pytest.raises(ProtocolError):
            parse_duration(bad)
