"""WebRTC ingress through aiortc: one peer connection per call, its audio as ``AudioFrame``s.

aiortc does ICE, DTLS-SRTP and decoding (Opus 48 kHz or PCMU/PCMA 8 kHz); we only move its
decoded frames into the pipeline: down-mix to mono, place them on the call clock (first frame at
its arrival time, later ones by their RTP-derived ``pts``, so gaps stay gaps) and resample to the
pipeline rate. ICE servers default to none: a browser softphone on the same network, or a TURN
server the deployment configures, never a public STUN server by surprise. Host candidates are
offered only on ``webrtc_ice_interfaces`` (by default the bind address; see
:mod:`telephony.webrtc.ice`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError

from telephony.legs import LegAudio
from telephony.settings import TelephonySettings
from telephony.webrtc.ice import host_candidates_on, ice_addresses, stray_host_candidates
from telephony.websocket.common import new_call_id
from voice.errors import VoiceError
from voice.frames import CallEndedFrame, CallStartedFrame, EndOfInputFrame, Frame, Role
from voice.transport import CallHandler, CallSink

log = logging.getLogger(__name__)
Codec = Literal["opus", "pcmu", "pcma"]
DRAIN_TIMEOUT = 2.0
"""Seconds ``close`` lets the audio consumer drain before cancelling it."""


@dataclass(frozen=True, kw_only=True)
class WebRtcOffer:
    """What a softphone posts: its SDP offer plus who the call belongs to."""

    sdp: str
    tenant: str | None = None
    agent_id: str | None = None
    role: Role = "unknown"
    """Who speaks on the track: ``agent`` (an agent's softphone mic), ``customer``, or
    ``unknown`` for a mixed conference feed (leg ``mixed``)."""
    codec: Codec | None = None
    """Force a codec; by default the offer's order decides (browsers put Opus first)."""
    ice_servers: list[str] = field(default_factory=list)
    context: dict[str, float] = field(default_factory=dict)
    """Numeric call-start facts (``CallStartedFrame.context``)."""


class WebRtcCall:
    """One peer connection and its call. Also the call's ``CallOutput``."""

    def __init__(
        self,
        offer: WebRtcOffer,
        settings: TelephonySettings,
        *,
        connect_timeout: float | None = None,
        ice_addresses: tuple[str, ...] | None,
    ) -> None:
        self.settings = settings
        self.offer = offer
        self.ice_addresses = ice_addresses
        """Local addresses our host candidates may use (None: every interface)."""
        self.connect_timeout = settings.webrtc_connect_timeout if connect_timeout is None else connect_timeout
        self.leg = offer.role if offer.role in ("agent", "customer") else "mixed"
        self.started = CallStartedFrame(
            call_id=new_call_id("webrtc"),
            tenant=offer.tenant or settings.default_tenant,
            agent_id=offer.agent_id,
            legs={self.leg: offer.role},
            source="webrtc",
            context=dict(offer.context),
            metadata={"codec_preference": offer.codec},
        )
        servers = [RTCIceServer(urls=url) for url in offer.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.sink: CallSink | None = None
        self.ended = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._audio: LegAudio | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._reason = "hangup"

    async def answer(self, handler: CallHandler) -> RTCSessionDescription:
        """Open the call with ``handler`` and answer the offer.

        Raises:
            VoiceError: the handler refused the call.
            ValueError: aiortc could not use the offer (no audio, bad SDP).
        """
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        sdp = (
            self.offer.sdp
            if self.offer.codec is None
            else restrict_audio_codec(self.offer.sdp, self.offer.codec)
        )
        check_offer(sdp)  # before open_call: an unusable offer must not become a call
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        answer = await self.pc.createAnswer()
        self.sink = await handler.open_call(self.started, self)
        with host_candidates_on(self.ice_addresses):  # aiortc gathers in setLocalDescription
            await self.pc.setLocalDescription(answer)
        if self.ice_addresses is not None and (
            stray := stray_host_candidates(self.pc.localDescription.sdp, self.ice_addresses)
        ):  # fail closed: aioice no longer asks get_host_addresses (telephony/webrtc/ice.py)
            await self.close(reason="error: ICE candidates outside webrtc_ice_interfaces")
            raise VoiceError(f"ICE gathered host candidates on {', '.join(stray)}",
                             hint="this aioice version ignores webrtc_ice_interfaces")
        # If ICE or DTLS never completes, aiortc never starts the receiver and its track never
        # ends: without a deadline the call, the peer connection and its sockets would live forever.
        self._watchdog = self._loop.call_later(self.connect_timeout, self._on_connect_timeout)
        return self.pc.localDescription

    # --- CallOutput ---

    def send(self, frame: Frame) -> None:
        """No data channel: nothing goes back to the browser."""

    def hang_up(self, reason: str) -> None:
        """Close the peer connection; the call then ends with ``reason``."""
        task = asyncio.create_task(self.close(reason=f"hang up: {reason}"))
        self._closing = task  # keep a reference until it is done

    async def close(self, reason: str | None = None) -> None:
        """Close the peer connection and end the call (idempotent).

        The sink is always closed: a consumer still waiting after ``DRAIN_TIMEOUT`` (its track
        never started because DTLS never completed, so it never ends) is cancelled.
        """
        if reason is not None and not self.ended.is_set():
            self._reason = reason
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self.pc.close()
        consumer = self._consumer
        if consumer is not None and not consumer.done():
            done, _ = await asyncio.wait({consumer}, timeout=DRAIN_TIMEOUT)
            if not done:
                consumer.cancel()  # its finally runs _finish
                await asyncio.wait({consumer})
        self._finish()

    # --- internals ---

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._consumer is not None:
            return  # one audio leg per call; video is ignored
        self._consumer = asyncio.create_task(
            self._consume(track), name=f"webrtc-{self.started.call_id}"
        )

    def _on_connect_timeout(self) -> None:
        if self.pc.connectionState == "connected" or self.ended.is_set():
            return
        log.info(
            "WebRTC call %s not connected after %.0f s (ICE %s): closing",
            self.started.call_id,
            self.connect_timeout,
            self.pc.iceConnectionState,
        )
        self._closing = asyncio.create_task(self.close(reason="connect timeout"))

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            if self.pc.connectionState == "failed":
                self._reason = "ice failed"
            await self.close()

    async def _consume(self, track: MediaStreamTrack) -> None:
        origin: tuple[float, int] | None = None
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pcm = _to_mono_int16(frame.to_ndarray(), len(frame.layout.channels))
                if self._audio is None:
                    self._audio = LegAudio(  # positions count from the call's start (ICE took a while)
                        self.leg, frame.sample_rate, self.settings.sample_rate,
                        clock=self._loop.time, started=self._started_at,
                    )
                pts = frame.pts or 0
                if origin is None:
                    origin = (self._loop.time() - self._started_at, pts)
                time_base = frame.time_base or Fraction(1, frame.sample_rate)
                position = origin[0] + float((pts - origin[1]) * time_base)
                self._push(self._audio.push(pcm, position))
        except MediaStreamError:
            pass  # the remote track ended
        except Exception:
            log.exception("WebRTC audio of %s failed", self.started.call_id)
            self._reason = "error: audio decoding failed"
        finally:
            self._finish()

    def _push(self, frames: Sequence[Frame]) -> None:
        if self.sink is not None:
            for frame in frames:
                self.sink.push(frame)

    def _finish(self) -> None:
        if self.sink is None or self.ended.is_set():
            return
        end = 0.0
        if self._audio is not None:
            self._push(self._audio.flush())
            end = self._audio.next_position
            self._push([EndOfInputFrame(leg=self.leg, audio_time=end)])
        self._push(
            [CallEndedFrame(call_id=self.started.call_id, reason=self._reason, audio_time=end)]
        )
        self.sink.close(self._reason)
        self.ended.set()


def check_offer(sdp: str) -> None:
    """Refuse an offer that could never carry audio to us.

    aiortc accepts SDP without any m-line (``"hello"`` parses as an empty session), with video
    only, or without DTLS parameters (it then fails an assertion in a background task); each
    opened a call that the connect watchdog ended 20 s later as an empty "done" call.

    Raises:
        ValueError: no m-line, no audio m-line that sends (port 0, ``recvonly`` or ``inactive``
            only), or an audio m-line without ``a=fingerprint`` and ``a=setup``.
    """
    description = aiortc_sdp.SessionDescription.parse(sdp)
    if not description.media:
        raise ValueError("the offer has no m= line (is it SDP?)")
    audio = [
        media
        for media in description.media
        if media.kind == "audio" and media.port != 0 and media.direction in (None, "sendrecv", "sendonly")
    ]
    if not audio:
        raise ValueError("the offer sends no audio (no audio m-line with sendrecv or sendonly)")
    if any(media.dtls is None or not media.dtls.fingerprints for media in audio):
        raise ValueError("the offer has no DTLS parameters (a=fingerprint and a=setup)")


def restrict_audio_codec(sdp: str, codec: Codec) -> str:
    """The offer with its audio m-lines cut down to ``codec`` (plus telephone-event).

    aiortc fixes the answer's codecs in ``setRemoteDescription``; trimming the offer is the
    public way to make it answer with the codec we want.

    Raises:
        ValueError: an audio m-line does not offer ``codec``.
    """
    static = {"pcmu": "0", "pcma": "8"}
    out: list[str] = []
    keep: set[str] | None = None  # payload types kept in the current audio section
    lines = sdp.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        if line.startswith("m="):
            keep = None
            if line.startswith("m=audio"):
                head, formats = line.split()[:3], line.split()[3:]
                section = lines[
                    index + 1 : next(
                        (j for j in range(index + 1, len(lines)) if lines[j].startswith("m=")),
                        len(lines),
                    )
                ]
                names = {fmt: _rtpmap_name(section, fmt) for fmt in formats}
                keep = {
                    fmt
                    for fmt, name in names.items()
                    if name in (codec, "telephone-event") or fmt == static.get(codec)
                }
                if not keep - {fmt for fmt, name in names.items() if name == "telephone-event"}:
                    raise ValueError(f"the offer has no {codec} audio")
                line = " ".join(head + [fmt for fmt in formats if fmt in keep])
        elif keep is not None and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            if line.split(":", 1)[1].split()[0] not in keep:
                continue
        out.append(line)
    return "\r\n".join(out)


def _rtpmap_name(section: list[str], fmt: str) -> str:
    for line in section:
        if line.startswith(f"a=rtpmap:{fmt} "):
            return line.split()[1].split("/")[0].lower()
    return ""


def _to_mono_int16(array: np.ndarray, channels: int) -> np.ndarray:
    """aiortc's packed s16 frames are (1, samples * channels): average the channels."""
    samples = np.asarray(array).reshape(-1)
    if channels <= 1:
        return samples.astype(np.int16, copy=False)
    mixed = samples.reshape(-1, channels).astype(np.int32).sum(axis=1) // channels
    return mixed.astype(np.int16)


class WebRtcIngress:
    """Keeps the live WebRTC calls so they can be closed on shutdown."""

    def __init__(
        self,
        handler: CallHandler,
        settings: TelephonySettings | None = None,
        *,
        connect_timeout: float | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings or TelephonySettings()
        self.connect_timeout = self.settings.webrtc_connect_timeout if connect_timeout is None else connect_timeout
        """Seconds a call may take to connect (ICE + DTLS) before it is closed."""
        self.ice_addresses = ice_addresses(self.settings)
        """Where our ICE host candidates go (``webrtc_ice_interfaces``; None: every interface)."""
        if self.ice_addresses and all(ipaddress.ip_address(a).is_loopback for a in self.ice_addresses):
            log.info("WebRTC ICE host candidates on %s only: browsers on other hosts need "
                     "telephony.webrtc_ice_interfaces", ", ".join(self.ice_addresses))
        self.calls: dict[str, WebRtcCall] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def accept(self, offer: WebRtcOffer) -> tuple[WebRtcCall, RTCSessionDescription]:
        """Answer an offer; the call lives until the browser hangs up or ICE fails.

        Raises:
            VoiceError: refused by the handler.
            ValueError: an offer aiortc cannot use (no audio, malformed SDP).
        """
        call = WebRtcCall(offer, self.settings, connect_timeout=self.connect_timeout, ice_addresses=self.ice_addresses)
        try:
            answer = await call.answer(self.handler)
        except VoiceError:
            await call.pc.close()
            raise
        except Exception as exc:  # aiortc raises assorted types for bad SDP
            await call.pc.close()
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc
        self.calls[call.started.call_id] = call
        watcher = asyncio.create_task(self._forget_when_ended(call))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return call, answer

    async def aclose(self) -> None:
        """Close every peer connection (server shutdown), in parallel: each may drain 2 s."""
        calls = list(self.calls.values())
        closing = (call.close(reason="shutdown") for call in calls)
        await asyncio.gather(*closing, return_exceptions=True)
        self.calls.clear()

    async def _forget_when_ended(self, call: WebRtcCall) -> None:
        await call.ended.wait()
        self.calls.pop(call.started.call_id, None)
