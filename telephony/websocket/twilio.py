"""Twilio Media Streams wire format (also spoken by Telnyx, SignalWire, Fonoster).

Inbound (Twilio -> us), JSON text messages: ``connected``, ``start`` (streamSid, callSid,
tracks, customParameters, mediaFormat), ``media`` (track, chunk, timestamp in ms, base64
mu-law 8 kHz mono), ``dtmf`` (track, digit), ``mark`` (name; playback reached a mark we sent),
``stop``. Outbound (bidirectional ``<Connect><Stream>``): ``media``, ``mark``, ``clear``.

Mapping: leg ``inbound`` (what the caller says) is the customer, ``outbound`` (what Twilio plays
to the caller: the agent with ``both_tracks``) is the agent. ``start.customParameters``
(``<Parameter>`` in TwiML) give ``tenant`` and ``agent_id``; ``mixed=true`` says a single
inbound track carries both parties (a conference or recorder feed), so its role is ``unknown``
and the pipeline attributes speakers itself. ``pts`` comes from each media
message's ``timestamp``, so gaps Twilio leaves become silence and both tracks share one clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from telephony import codecs
from telephony.errors import MalformedMessageError, ProtocolError
from telephony.far_end import call_context, clean_id
from telephony.legs import LegAudio
from telephony.resample import StreamResampler
from telephony.settings import TelephonySettings
from telephony.websocket.common import load_json_object, new_call_id, require_dict
from voice.frames import (
    AudioFrame,
    CallStartedFrame,
    ClearPlaybackFrame,
    DtmfFrame,
    EndOfInputFrame,
    Frame,
    MarkFrame,
    Role,
)
from voice.transport import FrameSerializer, WireMessage

log = logging.getLogger(__name__)
WIRE_RATE = 8000
TRACK_ROLES: dict[str, Role] = {"inbound": "customer", "outbound": "agent"}


def _track(name: object) -> str:
    """``inbound_track`` / ``inbound`` -> ``inbound``."""
    return str(name).removesuffix("_track")


class TwilioSerializer(FrameSerializer):
    """One Twilio media stream <-> frames."""

    def __init__(self, settings: TelephonySettings | None = None) -> None:
        self.settings = settings or TelephonySettings()
        self.stream_sid: str | None = None
        self.started: CallStartedFrame | None = None
        self.dropped_media = 0
        """Media messages for a track the start message did not announce."""
        self._legs: dict[str, LegAudio] = {}
        self._stopped = False
        self.ignored_after_stop = 0
        """Messages that arrived after ``stop`` (Twilio sends none; they are dropped)."""
        self._outbound: StreamResampler | None = None

    @property
    def ended(self) -> bool:
        """True after ``stop``."""
        return self._stopped

    def deserialize(self, message: WireMessage) -> list[Frame]:
        """Frames of one Twilio message (see the module docstring)."""
        data = load_json_object(message)
        event = data.get("event")
        if self._stopped:
            return self._ignore_after_stop(event)
        if event == "connected":
            return []
        if event == "start":
            return self._on_start(data)
        if self.started is None:
            raise ProtocolError(f"'{event}' before 'start'")
        if event == "media":
            return self._on_media(require_dict(data, "media"))
        if event == "dtmf":
            return self._on_dtmf(require_dict(data, "dtmf"))
        if event == "mark":
            name = str(require_dict(data, "mark").get("name", ""))
            return [MarkFrame(name=name, audio_time=self._audio_time())]
        if event == "stop":
            return self.finish()
        if not isinstance(event, str):
            raise ProtocolError("message without an 'event' field")
        return []  # an event this version does not know: ignore, as Twilio asks of clients

    def serialize(self, frame: Frame) -> WireMessage | None:
        """``mark``, ``clear`` or outbound ``media`` (any leg's audio, resampled to 8 kHz)."""
        if self.stream_sid is None:
            return None
        if isinstance(frame, MarkFrame):
            return json.dumps(
                {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": frame.name}}
            )
        if isinstance(frame, ClearPlaybackFrame):
            return json.dumps({"event": "clear", "streamSid": self.stream_sid})
        if isinstance(frame, AudioFrame):
            return json.dumps(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {"payload": self._encode_outbound(frame)},
                }
            )
        return None

    def finish(self) -> list[Frame]:
        """Flush every leg (end of stream, or the socket dropped)."""
        if self._stopped or self.started is None:
            self._stopped = True
            return []
        self._stopped = True
        frames: list[Frame] = []
        for name, leg in self._legs.items():
            frames += leg.flush()
            frames.append(EndOfInputFrame(leg=name, audio_time=leg.next_position))
        return frames

    def _ignore_after_stop(self, event: object) -> list[Frame]:
        # Why drop: every leg already got its EndOfInputFrame and its resampler was flushed, so
        # anything decoded now would reach the pipeline after the end of input.
        if self.ignored_after_stop == 0:
            log.info("stream %s: ignoring %r and later messages after 'stop'", self.stream_sid, event)
        self.ignored_after_stop += 1
        return []

    def _on_start(self, data: dict[str, Any]) -> list[Frame]:
        if self.started is not None:
            raise ProtocolError("second 'start' on one stream")
        start = require_dict(data, "start")
        media_format = start.get("mediaFormat") or {}
        if not isinstance(media_format, dict):
            raise ProtocolError("'mediaFormat' is not an object")
        encoding = media_format.get("encoding", "audio/x-mulaw")
        if encoding != "audio/x-mulaw" or media_format.get("sampleRate", WIRE_RATE) not in (
            WIRE_RATE,
            str(WIRE_RATE),
        ):
            raise ProtocolError(
                f"unsupported media format {media_format}",
                hint="Twilio streams are audio/x-mulaw at 8000 Hz",
            )
        tracks = start.get("tracks") or ["inbound"]
        if not isinstance(tracks, list) or not tracks:
            raise ProtocolError("'tracks' is not a list")
        names = [_track(t) for t in tracks]
        if "both" in names:
            names = ["inbound", "outbound"]
        unknown = [name for name in names if name not in TRACK_ROLES]
        if unknown:
            raise ProtocolError(f"unknown track(s) {unknown}")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError("'customParameters' is not an object")
        self.stream_sid = str(start.get("streamSid") or data.get("streamSid") or "")
        self._legs = {name: LegAudio(name, WIRE_RATE, self.settings.sample_rate) for name in names}
        self.started = CallStartedFrame(
            call_id=new_call_id("twilio"),
            tenant=clean_id(params.get("tenant")) or self.settings.default_tenant,
            agent_id=clean_id(params.get("agent_id")),
            legs=_leg_roles(names, params),
            source="twilio",
            context=call_context(params),
            metadata={
                "stream_sid": self.stream_sid,
                "call_sid": start.get("callSid"),
                "account_sid": start.get("accountSid"),
                "custom_parameters": params,
            },
        )
        return [self.started]

    def _on_media(self, media: dict[str, Any]) -> list[Frame]:
        leg = self._legs.get(_track(media.get("track", "inbound")))
        if leg is None:
            self.dropped_media += 1
            return []
        try:
            payload = base64.b64decode(media.get("payload", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise MalformedMessageError("media payload is not valid base64") from None
        position = None
        timestamp = media.get("timestamp")
        if timestamp is not None:
            try:
                position = int(timestamp) / 1000.0
            except (TypeError, ValueError, OverflowError):  # JSON allows Infinity and 1e999
                raise ProtocolError(f"media timestamp {timestamp!r} is not an integer") from None
        return list(leg.push(codecs.ulaw_decode(payload), position))

    def _on_dtmf(self, dtmf: dict[str, Any]) -> list[Frame]:
        digit = str(dtmf.get("digit", ""))
        if len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
            raise ProtocolError(f"dtmf digit {digit!r} is not a keypad digit")
        leg = _track(dtmf.get("track", "inbound"))
        # No duration, and timed by the audio received so far: Twilio sends it about when the tone ends.
        return [
            DtmfFrame(
                digit=digit.upper(),
                leg=leg if leg in self._legs else "inbound",
                audio_time=self._audio_time(),
            )
        ]

    def _audio_time(self) -> float:
        return max((leg.next_position for leg in self._legs.values()), default=0.0)

    def _encode_outbound(self, frame: AudioFrame) -> str:
        pcm = frame.pcm
        if frame.sample_rate != WIRE_RATE:
            if self._outbound is None:
                self._outbound = StreamResampler(frame.sample_rate, WIRE_RATE)
            pcm = self._outbound.process(pcm)
        return base64.b64encode(codecs.ulaw_encode(pcm)).decode("ascii")


def _leg_roles(names: list[str], params: dict[str, Any]) -> dict[str, Role]:
    """Track roles; a lone track flagged ``mixed`` carries both parties (role unknown)."""
    mixed = str(params.get("mixed", "")).strip().lower() in ("1", "true", "yes")
    if mixed and len(names) == 1:
        return {names[0]: "unknown"}
    return {name: TRACK_ROLES[name] for name in names}
