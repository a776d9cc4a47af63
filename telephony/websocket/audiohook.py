"""Genesys Cloud AudioHook protocol v2 wire format.

Every JSON message carries ``version: "2"``, ``id`` (the session id), ``type``, ``seq`` and
``parameters``; client messages add ``serverseq`` and ``position`` (ISO-8601 ``PT…S``), ours add
``clientseq``. Client -> server: ``open`` (answered ``opened`` with the chosen media), ``ping``
(``pong``), ``paused``/``resumed``, ``discarded``, ``update`` (language), ``error``, ``close``
(``closed``). Audio arrives in binary messages, samples interleaved in the order of the chosen
media's ``channels``; we prefer stereo over mono (mono drops the agent), then PCMU over L16
(16-bit little-endian), both at 8 kHz.

Mapping: channel ``external`` (the customer) and ``internal`` (the agent) become legs of those
names. Tenant: the tenant bound to the API key, else ``customConfig.tenant`` or
``inputVariables.tenant`` of the open parameters, else the default. Agent: ``agent_id`` (or
``agentId``) in ``inputVariables`` or ``customConfig``; AudioHook itself does not name the agent.
A connection probe (all-zero conversation id) is answered but opens no call. Sequence numbers
are checked as the reference implementation does: a gap or a future ``serverseq`` is an error.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import numpy as np

from telephony import codecs
from telephony.errors import MalformedMessageError, ProtocolError
from telephony.far_end import call_context, clean_id
from telephony.legs import LegAudio
from telephony.settings import TelephonySettings
from telephony.websocket.common import load_json_object, new_call_id
from voice.frames import (
    CallEndedFrame,
    CallStartedFrame,
    EndOfInputFrame,
    Frame,
    Role,
    SettingsUpdateFrame,
    TransportMessageFrame,
)
from voice.transport import FrameSerializer, WireMessage

log = logging.getLogger(__name__)
WIRE_RATE = 8000
CHANNEL_ROLES: dict[str, Role] = {"external": "customer", "internal": "agent"}
FORMAT_PREFERENCE = ("PCMU", "L16")
NULL_UUID = "00000000-0000-0000-0000-000000000000"
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(\.\d+)?S)?$")
MAX_DURATION_DIGITS = 12
"""Integer digits of each duration part: 10**12 s is over 30,000 years. Checked before ``int``,
which raises ValueError beyond 4,300 digits (and a huge hour count OverflowError once added to
the float seconds): both escaped as an internal error (1011) instead of a protocol error."""


def parse_duration(text: object) -> float:
    """``PT1.25S`` (or ``PT1M2S``) -> seconds.

    Raises:
        ProtocolError: not an ISO-8601 duration of that form, or absurdly long.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or text == "PT":
        raise ProtocolError(f"{_excerpt(text)} is not an ISO-8601 duration (PT…S)")
    hours, minutes, seconds, fraction = match.groups()
    if any(len(part) > MAX_DURATION_DIGITS for part in (hours, minutes, seconds) if part):
        raise ProtocolError(f"duration {_excerpt(text)} is out of range")
    # The fraction goes through float only: float() has no digit limit (int() has).
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + float(fraction or 0)


def _excerpt(value: object) -> str:
    """``repr`` of a client value, cut short for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float) -> str:
    """Seconds -> ``PT…S``."""
    return f"PT{seconds:.3f}S"


class AudioHookSerializer(FrameSerializer):
    """One AudioHook session <-> frames; ``tenant`` is the tenant bound to the API key, if any."""

    def __init__(
        self,
        settings: TelephonySettings | None = None,
        *,
        tenant: str | None = None,
        session_id: str | None = None,
        organization_id: str | None = None,
    ) -> None:
        self.settings = settings or TelephonySettings()
        self.session_id = session_id
        self.organization_id = organization_id
        self.started: CallStartedFrame | None = None
        self.state = "preparing"  # preparing -> active <-> paused -> [disconnecting ->] closed
        self.probe = False
        self._key_tenant = tenant
        self._seq = 0  # last server seq sent
        self._clientseq = 0  # last client seq received
        self._channels: list[str] = []
        self._format = "PCMU"
        self._legs: dict[str, LegAudio] = {}
        self._samples = 0  # per-channel samples received
        self._position = 0.0  # stream position after the last audio, incl. discarded audio
        self._replies: list[WireMessage] = []
        self.ignored_after_closed = 0
        """Messages that arrived after ``closed`` (dropped unanswered)."""

    @property
    def ended(self) -> bool:
        """True once ``closed`` was sent."""
        return self.state == "closed"

    @property
    def awaiting_close(self) -> bool:
        """True after we sent ``disconnect`` and before the client's ``close`` was answered.

        The transport keeps the socket open meanwhile: in AudioHook the client closes it,
        after ``close`` -> ``closed`` (reference implementation, ``serversessionimpl.ts``).
        """
        return self.state == "disconnecting"

    def take_replies(self) -> list[WireMessage]:
        """Messages owed to the client (opened, pong, closed, disconnect)."""
        replies, self._replies = self._replies, []
        return replies

    def deserialize(self, message: WireMessage) -> list[Frame]:
        """Frames of one AudioHook message; protocol replies are queued for ``take_replies``.

        After ``closed`` every message is ignored: the session is over.
        """
        if self.state == "closed":
            return self._ignore_after_closed(message)
        try:
            if isinstance(message, bytes):
                return self._on_audio(message)
            return self._on_text(load_json_object(message))
        except ProtocolError as exc:
            if self.state == "disconnecting":
                return []  # the error was already signalled; only the client's close matters now
            self.fail(exc.message)
            raise

    def fail(self, info: str) -> None:
        """The call ends for an error: queue ``disconnect`` (reason ``error``) unless said already.

        The transport calls this for its own errors too (a message over ``max_message_bytes``,
        a call the handler failed to open), so Genesys records why the stream ended.
        """
        if self.state not in ("disconnecting", "closed"):
            self._reply("disconnect", {"reason": "error", "info": info[:200]})
            self.state = "disconnecting"

    def serialize(self, frame: Frame) -> WireMessage | None:
        """``event`` for a TransportMessageFrame; ``disconnect`` when we end the call."""
        if self.state not in ("active", "paused"):
            return None
        if isinstance(frame, TransportMessageFrame):
            return self._envelope("event", frame.message)
        if isinstance(frame, CallEndedFrame):
            self.state = "disconnecting"
            reason = "error" if frame.error else "completed"
            return self._envelope("disconnect", {"reason": reason, "info": frame.reason})
        return None

    def finish(self) -> list[Frame]:
        """Flush both legs (after close, or when the socket dropped)."""
        frames: list[Frame] = []
        for name, leg in self._legs.items():
            frames += leg.flush()
            frames.append(EndOfInputFrame(leg=name, audio_time=leg.next_position))
        self._legs = {}
        return frames

    # --- text messages ---

    def _on_text(self, msg: dict[str, Any]) -> list[Frame]:
        if self.state == "disconnecting" and msg.get("type") == "close":
            # Why no envelope check: after our disconnect (maybe for a bad seq) the client's
            # close must still get its closed, or Genesys records an abnormal end.
            if isinstance(msg.get("seq"), int):
                self._clientseq = msg["seq"]
            return self._on_close()
        self._check_envelope(msg)
        kind = msg["type"]
        params = msg.get("parameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError("'parameters' is not an object")
        if kind == "open":
            return self._on_open(params)
        if kind == "ping":
            self._reply("pong", {})
        elif kind == "close":
            return self._on_close()
        elif kind == "paused" and self.state == "active":
            self.state = "paused"
        elif kind == "resumed" and self.state == "paused":
            self.state = "active"
            self._skip_to(
                parse_duration(params.get("start", "PT0S"))
                + parse_duration(params.get("discarded", "PT0S"))
            )
        elif kind == "discarded":
            self._skip_to(
                parse_duration(params.get("start", "PT0S"))
                + parse_duration(params.get("discarded", "PT0S"))
            )
        elif kind == "update":
            return [SettingsUpdateFrame(settings={"language": params.get("language")})]
        elif kind not in ("error", "paused", "resumed"):
            raise ProtocolError(f"'{kind}' is not a client message")
        return []

    def _on_close(self) -> list[Frame]:
        frames = self.finish()
        self._reply("closed", {})
        self.state = "closed"
        return frames

    def _check_envelope(self, msg: dict[str, Any]) -> None:
        if msg.get("version") != "2":
            raise ProtocolError(f"unsupported protocol version {msg.get('version')!r}")
        seq, serverseq = msg.get("seq"), msg.get("serverseq")
        if (
            not isinstance(msg.get("type"), str)
            or not isinstance(seq, int)
            or isinstance(seq, bool)
        ):
            raise ProtocolError("message without 'type' or integer 'seq'")
        if seq != self._clientseq + 1:
            raise ProtocolError(f"seq {seq} does not follow {self._clientseq}")
        if not isinstance(serverseq, int) or serverseq > self._seq:
            raise ProtocolError(f"serverseq {serverseq!r} is not one we sent (last {self._seq})")
        self._clientseq = seq
        session_id = str(msg.get("id", ""))
        if self.session_id is None:
            self.session_id = session_id
        elif session_id != self.session_id:
            raise ProtocolError("session id does not match the Audiohook-Session-Id header")

    def _on_open(self, params: dict[str, Any]) -> list[Frame]:
        if self.state != "preparing":
            raise ProtocolError(f"'open' in state {self.state}")
        media = self._choose_media(params.get("media"))
        self._channels, self._format = list(media["channels"]), media["format"]
        self.state = "active"
        self._reply("opened", {"media": [media], "startPaused": False})
        if str(params.get("conversationId", "")) == NULL_UUID:
            self.probe = True  # Genesys's connection test: answer, but no call
            return []
        self._legs = {
            ch: LegAudio(ch, WIRE_RATE, self.settings.sample_rate) for ch in self._channels
        }
        self.started = CallStartedFrame(
            call_id=new_call_id("audiohook"),
            tenant=self._tenant(params),
            agent_id=self._agent(params),
            legs={ch: CHANNEL_ROLES[ch] for ch in self._channels},
            source="audiohook",
            context=call_context(params.get("customConfig"), params.get("inputVariables")),
            metadata={
                "session_id": self.session_id,
                "conversation_id": params.get("conversationId"),
                "organization_id": params.get("organizationId") or self.organization_id,
                "participant": params.get("participant"),
                "language": params.get("language"),
                "media": media,
            },
        )
        return [self.started]

    def _choose_media(self, offered: object) -> dict[str, Any]:
        if not isinstance(offered, list):
            raise ProtocolError("open parameters have no 'media' list")
        valid = [
            m
            for m in offered
            if isinstance(m, dict)
            and m.get("type") == "audio"
            and m.get("format") in FORMAT_PREFERENCE
            and m.get("rate") == WIRE_RATE
            and isinstance(m.get("channels"), list)
            and m["channels"]
            and all(isinstance(c, str) for c in m["channels"])  # set() of a dict raised TypeError
            and set(m["channels"]) <= set(CHANNEL_ROLES)
            and len(set(m["channels"])) == len(m["channels"])
        ]
        if not valid:
            raise ProtocolError(
                "no offered media is PCMU or L16 at 8000 Hz with external/internal channels"
            )
        # Channels first: a mono offer carries only the customer, and both formats are 8 kHz.
        valid.sort(key=lambda m: (-len(m["channels"]), FORMAT_PREFERENCE.index(m["format"])))
        chosen = valid[0]
        return {
            "type": "audio",
            "format": chosen["format"],
            "channels": chosen["channels"],
            "rate": WIRE_RATE,
        }

    def _tenant(self, params: dict[str, Any]) -> str:
        if self._key_tenant:
            return self._key_tenant
        for source in ("customConfig", "inputVariables"):
            block = params.get(source)
            if isinstance(block, dict) and (tenant := clean_id(block.get("tenant"))):
                return tenant
        return self.settings.default_tenant

    @staticmethod
    def _agent(params: dict[str, Any]) -> str | None:
        for source in ("inputVariables", "customConfig"):
            block = params.get(source)
            if isinstance(block, dict):
                agent = clean_id(block.get("agent_id") or block.get("agentId"))
                if agent:
                    return agent
        return None

    # --- audio ---

    def _ignore_after_closed(self, message: WireMessage) -> list[Frame]:
        # Why ignore, not a protocol error: the call ended cleanly (closed sent, legs flushed), so
        # audio or a ping still in flight is harmless, and a second close must not get a second
        # closed. The reference implementation (serversessionimpl.ts) signals no error once
        # CLOSED either; only the client's socket close is due now.
        self.ignored_after_closed += 1
        if self.ignored_after_closed == 1:
            kind = "audio" if isinstance(message, bytes) else "a text message"
            log.info("session %s: ignoring %s and later messages after closed", self.session_id, kind)
        return []

    def _on_audio(self, data: bytes) -> list[Frame]:
        if self.state != "active":
            raise ProtocolError(f"audio received in state {self.state}")
        width = len(self._channels) * (2 if self._format == "L16" else 1)
        if len(data) % width:
            raise MalformedMessageError(
                f"audio frame of {len(data)} bytes is not a whole "
                f"number of {len(self._channels)}-channel samples"
            )
        if self._format == "L16":
            samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        else:
            samples = codecs.ulaw_decode(data)
        interleaved = samples.reshape(-1, len(self._channels))
        frames: list[Frame] = []
        if not self.probe:
            for index, channel in enumerate(self._channels):
                frames += self._legs[channel].push(interleaved[:, index], self._position)
        self._position += len(interleaved) / WIRE_RATE
        self._samples += len(interleaved)
        return frames

    def _skip_to(self, position: float) -> None:
        """Audio up to ``position`` was discarded by the client (paused or dropped)."""
        self._position = max(self._position, position)

    # --- replies ---

    def _reply(self, kind: str, parameters: dict[str, Any]) -> None:
        self._replies.append(self._envelope(kind, parameters))

    def _envelope(self, kind: str, parameters: dict[str, Any]) -> str:
        self._seq += 1
        return json.dumps(
            {
                "version": "2",
                "type": kind,
                "seq": self._seq,
                "clientseq": self._clientseq,
                "id": self.session_id or NULL_UUID,
                "parameters": parameters,
            }
        )
