"""One SIP call on our UAS: its dialog state, its RTP receivers and its sink.

The call pushes frames into the pipeline's sink as RTP arrives; the server polls it every
``POLL_INTERVAL`` (one timer for all calls) to release packets whose gap waited long enough and
to notice RTP that stopped for ``rtp_timeout`` (a BYE that never came).
It is also the pipeline's :class:`~voice.transport.CallOutput`: RTP carries nothing back, so
``send`` drops frames, and ``hang_up`` makes the server send BYE.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telephony.settings import TelephonySettings
from telephony.sip.mapping import CallPlan
from telephony.sip.media import ReceiverStats, RtpReceiver, RtpStreamDecoder, open_receiver
from telephony.sip.message import SipMessage, via_branch
from telephony.sip.sdp import MediaChoice
from voice.frames import CallEndedFrame, CallStartedFrame, Frame
from voice.transport import CallSink

if TYPE_CHECKING:
    from telephony.sip.server import SipChannel

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.02


@dataclass
class CallReport:
    """What a finished call saw, kept by the server for operators and tests."""

    call_id: str
    sip_call_id: str
    reason: str
    legs: dict[str, ReceiverStats] = field(default_factory=dict)


class SipCall:
    """Dialog and media of one accepted INVITE."""

    def __init__(
        self,
        invite: SipMessage,
        channel: SipChannel,
        plan: CallPlan,
        choices: list[MediaChoice],
        settings: TelephonySettings,
        on_hang_up: Callable[[SipCall, str], None],
    ) -> None:
        self.call_id = f"sip-{uuid.uuid4().hex[:16]}"
        self.invite = invite
        self.channel = channel
        self.plan = plan
        self.choices = choices
        self.settings = settings
        self.local_tag = uuid.uuid4().hex[:10]
        self.invite_branch = via_branch(invite.get("Via") or "")
        self.state = "early"  # early -> answered -> confirmed -> ended
        self.receivers: dict[str, RtpReceiver] = {}
        self.ports: dict[int, int] = {}
        self.sink: CallSink | None = None
        self.local_cseq = 0
        self.answer_sdp = ""
        self._on_hang_up = on_hang_up
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()

    @property
    def sip_call_id(self) -> str:
        """The dialog's Call-ID."""
        return self.invite.call_id

    def clock(self) -> float:
        """Seconds of call audio so far (0 when the call was answered)."""
        return self._loop.time() - self._started_at

    def started_frame(self) -> CallStartedFrame:
        """The frame that opens this call in the pipeline."""
        return CallStartedFrame(
            call_id=self.call_id,
            tenant=self.plan.tenant,
            agent_id=self.plan.agent_id,
            legs={leg.leg: leg.role for leg in self.plan.legs},
            context=dict(self.plan.context),
            source=self.plan.source,
            metadata=dict(self.plan.metadata, rtp_ports={str(k): v for k, v in self.ports.items()}),
        )

    async def open_media(self) -> None:
        """Bind one RTP receiver per accepted m-line.

        Raises:
            OSError: no free port (the server answers 503).
        """
        port_range = (self.settings.rtp_port_min, self.settings.rtp_port_max)
        try:
            for leg in self.plan.legs:
                choice = self.choices[leg.choice_index]
                decoder = RtpStreamDecoder(leg.leg, choice, self.settings.sample_rate)
                receiver = await open_receiver(
                    self.settings.sip_host,
                    port_range,
                    lambda d=decoder: RtpReceiver(
                        d,
                        self._emit,
                        self.clock,  # type: ignore[misc]
                        jitter_delay=self.settings.jitter_delay,
                    ),
                )
                self.receivers[leg.leg] = receiver
                self.ports[leg.choice_index] = receiver.port
        except OSError:
            self.close_media()
            raise

    def answered(self, sink: CallSink) -> None:
        """The 200 OK is going out: start the call clock."""
        self.sink = sink
        self.state = "answered"
        self._started_at = self._loop.time()

    def finish(self, reason: str) -> CallReport:
        """Flush media, push ``CallEndedFrame``, close the sink; idempotent."""
        report = CallReport(self.call_id, self.sip_call_id, reason)
        if self.state == "ended":
            return report
        self.state = "ended"
        frames: list[Frame] = []
        for leg, receiver in self.receivers.items():
            frames += receiver.finish()
            report.legs[leg] = receiver.stats
        if self.sink is not None:
            frames.append(
                CallEndedFrame(
                    call_id=self.call_id, reason=reason, audio_time=max(self.clock(), 0.0)
                )
            )
            self._emit(frames)
            self.sink.close(reason)
        return report

    def close_media(self) -> None:
        """Close the RTP sockets without flushing (call refused before it started)."""
        for receiver in self.receivers.values():
            if receiver.transport is not None:
                receiver.transport.close()

    # --- CallOutput ---

    def send(self, frame: Frame) -> None:
        """RTP carries nothing back to the SRC: dropped."""

    def hang_up(self, reason: str) -> None:
        """End the call from the pipeline: BYE to the peer, then finish."""
        if self.state != "ended":
            self._on_hang_up(self, reason)

    # --- internals ---

    def _emit(self, frames: list[Frame]) -> None:
        if self.sink is None:
            return  # RTP before the pipeline accepted the call
        for frame in frames:
            self.sink.push(frame)

    def poll(self) -> str | None:
        """Release held packets whose wait is over; the reason to end the call, if any."""
        for receiver in self.receivers.values():
            receiver.poll()
        latest = max((r.last_packet_at for r in self.receivers.values()), default=0.0)
        if self.clock() - max(latest, 0.0) > self.settings.rtp_timeout:
            return "rtp timeout"
        return None
