"""With ``--redact`` a key pressed on the phone's keypad loses its tone in the call recording, not
only its digit in the events: each transport's DtmfFrame, recorded by the real recorder over real
speech (the pyannote sample) with a synthesized DTMF tone pair in the same leg's audio, for RTP
(RFC 4733: the tone's start and duration) and Twilio (a message about when the tone ends, no
duration); plus what the RTP detector and SIP INFO pass on."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from suggest.nlu.entities import REDACTED_LABELS
from telephony import codecs
from telephony.rtp import DtmfDetector, RtpPacket, TelephoneEvent
from telephony.settings import TelephonySettings
from telephony.sip.media import RtpStreamDecoder
from telephony.sip.message import parse_message
from telephony.sip.sdp import MediaChoice, MediaDescription
from telephony.sip.server import SipServer
from telephony.websocket.twilio import TwilioSerializer
from tests.fakes.frames import Collector
from tests.server.harness import bundled_sample
from tests.telephony.fakes import CollectingHandler
from tests.telephony.test_rtp import event
from tests.voice.test_live_redaction import recorder_for
from voice.frames import CallEndedFrame, CallStartedFrame, DtmfFrame, Frame
from voice.processor import Pipeline
from voice.processors.audio_spool import AudioSpool
from voice.processors.nlu import MASKED_DTMF, UNTIMED_DTMF_PAD, NluProcessor
from voice.processors.redact import AUDIO_PAD
from voice.server.hub import EventHub

pytestmark = pytest.mark.unit
RATE = 16000  # the pipeline's rate: the recording is written as it was spooled
TONE_START, TONE_LENGTH = 2.0, 0.1
LENGTH = 4.0


def keyed_call_audio() -> np.ndarray:
    """4 s of the sample call's speech at 8 kHz with the '1' key (697 + 1209 Hz) at 2.0-2.1 s."""
    pcm, rate = sf.read(bundled_sample()[0], dtype="float32")
    speech = soxr.resample(pcm[int(3.0 * rate):int((3.0 + LENGTH) * rate)], rate, 8000) * 32767 * 0.5
    t = np.arange(int(TONE_LENGTH * 8000)) / 8000
    at = int(TONE_START * 8000)
    speech[at:at + len(t)] += 8000 * (np.sin(2 * math.pi * 697 * t) + np.sin(2 * math.pi * 1209 * t))
    return np.clip(speech, -32768, 32767).astype(np.int16)


def rtp_call() -> list[Frame]:
    """The call as the RTP decoder turns it into frames: 20 ms PCMU packets and, every 20 ms of the
    tone then three times at its end, RFC 4733 events (the far end sends the tone in-band too)."""
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
    decoder = RtpStreamDecoder("customer", MediaChoice(0, media, "PCMU", 0, 101), RATE)
    ulaw = codecs.ulaw_encode(keyed_call_audio())
    onset, units = int(TONE_START * 8000), int(TONE_LENGTH * 8000)
    frames: list[Frame] = [CallStartedFrame(call_id="CA-rtp", legs={"customer": "customer"}, source="sip")]
    seq = 0

    def send(pt: int, timestamp: int, payload: bytes, now: float) -> None:
        nonlocal seq, frames
        packet = RtpPacket(payload_type=pt, sequence=seq, timestamp=timestamp, ssrc=7, payload=payload)
        seq += 1
        decoder.note_arrival(packet, now)
        frames += decoder.decode(packet)

    for n in range(len(ulaw) // 160):
        send(0, n * 160, ulaw[n * 160:(n + 1) * 160], n * 0.02)
        elapsed = (n + 1) * 160 - onset
        if 0 < elapsed <= units + 3 * 160:
            tone = TelephoneEvent(event=1, end=elapsed >= units, volume=10, duration=min(elapsed, units))
            send(101, onset, tone.build(), n * 0.02)
    return frames + decoder.finish(LENGTH)


def twilio_call() -> list[Frame]:
    """The call through the Twilio serializer: ``dtmf`` sent after the tone's last media message."""
    serializer = TwilioSerializer(TelephonySettings(sample_rate=RATE))
    start = {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"]}
    frames = serializer.deserialize(json.dumps({"event": "start", "start": start}))
    ulaw = codecs.ulaw_encode(keyed_call_audio())
    for n in range(len(ulaw) // 160):
        payload = base64.b64encode(ulaw[n * 160:(n + 1) * 160]).decode()
        media = {"track": "inbound", "payload": payload, "timestamp": str(n * 20)}
        frames += serializer.deserialize(json.dumps({"event": "media", "media": media}))
        if (n + 1) * 160 == int((TONE_START + TONE_LENGTH) * 8000):
            dtmf = {"track": "inbound_track", "digit": "1"}
            frames += serializer.deserialize(json.dumps({"event": "dtmf", "dtmf": dtmf}))
    return frames + serializer.deserialize(json.dumps({"event": "stop", "stop": {}}))


def recorded(tmp_path: Path, frames: list[Frame], *, redact: bool) -> np.ndarray:
    """The stored recording of ``frames`` after NLU (redacting or not) and the real recorder."""
    started = next(f for f in frames if isinstance(f, CallStartedFrame))
    rest = [f for f in frames if f is not started]

    async def call() -> None:
        with ThreadPoolExecutor(2) as executor:
            recorder = recorder_for(tmp_path, executor, EventHub())
            nlu = NluProcessor(extractor=None, executor=executor, redact=REDACTED_LABELS if redact else None)
            pipeline = Pipeline([nlu, recorder])
            for frame in [started, *rest, CallEndedFrame(call_id=started.call_id, audio_time=LENGTH)]:
                await pipeline.process_frame(frame)
            await pipeline.close()

    asyncio.run(asyncio.wait_for(call(), 60))
    wav, rate = sf.read(tmp_path / "audio" / f"{started.call_id}.wav", dtype="int16")
    assert rate == RATE and wav.ndim == 1
    return np.asarray(wav)


def tone_level(pcm: np.ndarray) -> float:
    """Mean spectral magnitude at 697 and 1209 Hz over the (silenced or not) tone."""
    window = pcm[int(TONE_START * RATE):int((TONE_START + TONE_LENGTH) * RATE)].astype(float)
    spectrum = np.abs(np.fft.rfft(window)) / len(window)
    freqs = np.fft.rfftfreq(len(window), 1 / RATE)
    return float(np.mean([spectrum[np.argmin(np.abs(freqs - f))] for f in (697, 1209)]))


def assert_only_span_silenced(clear: np.ndarray, redacted: np.ndarray, start: float, end: float) -> None:
    first, last = max(0, int(start * RATE)), int(math.ceil(end * RATE))
    assert len(redacted) == len(clear) >= int(LENGTH * RATE) - RATE // 50  # silenced, never cut
    assert tone_level(clear) > 1000 and clear[first:last].any()  # the tone was there, over speech
    assert not redacted[first:last].any() and tone_level(redacted) == 0.0
    assert np.array_equal(redacted[:first], clear[:first]) and np.array_equal(redacted[last:], clear[last:])
    assert redacted[:first].any() and redacted[last:].any()  # the speech around it is kept


def test_an_rfc4733_key_press_has_its_tone_silenced_in_the_recording(tmp_path: Path) -> None:
    frames = rtp_call()
    [press] = [f for f in frames if isinstance(f, DtmfFrame)]
    assert (press.leg, press.digit, press.audio_time) == ("customer", "1", TONE_START)
    clear = recorded(tmp_path / "clear", frames, redact=False)
    redacted = recorded(tmp_path / "redacted", frames, redact=True)
    assert_only_span_silenced(clear, redacted, TONE_START - AUDIO_PAD, TONE_START + TONE_LENGTH + AUDIO_PAD)


def test_a_twilio_key_press_has_its_tone_silenced_around_the_message(tmp_path: Path) -> None:
    frames = twilio_call()
    [press] = [f for f in frames if isinstance(f, DtmfFrame)]
    reported = press.audio_time  # about the tone's end: no duration, no tone start
    assert press.leg == "inbound" and press.duration is None and not press.at_tone_start
    assert reported == pytest.approx(TONE_START + TONE_LENGTH, abs=0.03)
    clear = recorded(tmp_path / "clear", frames, redact=False)
    redacted = recorded(tmp_path / "redacted", frames, redact=True)
    assert_only_span_silenced(clear, redacted, reported - UNTIMED_DTMF_PAD, reported + UNTIMED_DTMF_PAD)


def test_without_redaction_the_frame_lists_nothing_to_silence() -> None:
    async def call(redact: frozenset[str] | None) -> DtmfFrame:
        with ThreadPoolExecutor(1) as executor:
            collector = Collector()
            pipeline = Pipeline([NluProcessor(extractor=None, executor=executor, redact=redact), collector])
            await pipeline.process_frame(DtmfFrame(digit="4", leg="customer", audio_time=5.0, duration=0.2,
                                                   at_tone_start=True))
            [frame] = [f for f in collector.frames if isinstance(f, DtmfFrame)]
            return frame

    plain, masked = asyncio.run(call(None)), asyncio.run(call(REDACTED_LABELS))
    assert plain.digit == "4" and plain.masked_audio == []
    assert masked.digit == MASKED_DTMF
    assert masked.masked_audio == [pytest.approx((5.0 - AUDIO_PAD, 5.2 + AUDIO_PAD))]


def test_the_rtp_detector_passes_the_events_duration_on() -> None:
    detector, digits = DtmfDetector(), []
    for n, duration in enumerate([160, 320, 480]):
        digits += detector.push(event(8000, 1, end=False, duration=duration, seq=n))
    for n in range(3):
        digits += detector.push(event(8000, 1, end=True, duration=640, seq=3 + n))
    digits += detector.push(event(16000, 5, end=False, duration=400, seq=6))  # end packets lost
    digits += detector.flush()
    assert digits == [("1", 8000), ("5", 16000)]
    assert detector.duration_of(8000) == 640  # the end packet's: the whole tone
    assert detector.duration_of(16000) == 400  # the longest seen
    assert detector.duration_of(24000) is None


def test_the_rtp_decoder_times_a_digit_by_its_tone() -> None:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
    decoder = RtpStreamDecoder("customer", MediaChoice(0, media, "PCMU", 0, 101), 8000)
    audio = RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=7, payload=b"\xff" * 160)
    decoder.note_arrival(audio, 1.0)
    decoder.decode(audio)
    payload = TelephoneEvent(event=11, end=True, volume=10, duration=1200).build()
    end = RtpPacket(payload_type=101, sequence=1, timestamp=4000, ssrc=7, payload=payload)
    decoder.note_arrival(end, 1.7)
    [press] = [f for f in decoder.decode(end) if isinstance(f, DtmfFrame)]
    assert (press.digit, press.audio_time, press.duration, press.at_tone_start) == ("#", 1.5, 0.15, True)


@pytest.mark.parametrize(("body", "duration"), [
    ("Signal=5\r\nDuration=160\r\n", 0.16),
    ("Signal= 5\r\nDuration= 250 \r\n", 0.25),
    ("Signal=5\r\n", None),  # no Duration: timed by its arrival alone
    ("Signal=5\r\nDuration=99999\r\n", None),  # not believed (it would silence 100 s)
])
def test_sip_info_passes_dtmf_relay_duration_on(body: str, duration: float | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[Frame] = []
    call = SimpleNamespace(sink=SimpleNamespace(push=pushed.append), clock=lambda: 12.5,
                           plan=SimpleNamespace(legs=[SimpleNamespace(leg="customer")]))
    server = SipServer(CollectingHandler())
    monkeypatch.setattr(server, "_dialog_call", lambda request, channel: call)  # an answered dialog
    monkeypatch.setattr(server, "_respond", lambda *args, **kwargs: None)
    raw = ("INFO sip:rec@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
           "From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:rec@127.0.0.1>;tag=b\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n"
           f"Content-Type: application/dtmf-relay\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    asyncio.run(server._on_info(parse_message(raw.encode()), None))  # type: ignore[arg-type]
    [press] = pushed
    assert isinstance(press, DtmfFrame) and (press.digit, press.leg, press.audio_time) == ("5", "customer", 12.5)
    assert press.duration == duration and not press.at_tone_start


def test_a_tone_masked_before_its_legs_first_audio_is_silenced_when_the_audio_comes(tmp_path: Path) -> None:
    """A key pressed before the leg's audio reached the recorder (its first audio, or frames held
    upstream) was dropped by the spool, and the tone recorded."""
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(3 * RATE) * 3000).astype(np.int16)
    with ThreadPoolExecutor(1) as executor:
        spool = AudioSpool(tmp_path, "CA-early", executor, leg_order=["customer"])
        spool.mask("customer", 1.0, 1.5)
        for at in range(0, len(pcm), 320):
            spool.push("customer", at / RATE, pcm[at:at + 320], RATE)
        spool.finish(tmp_path / "CA-early.wav", ["customer"])
    wav, _ = sf.read(tmp_path / "CA-early.wav", dtype="int16")
    assert len(wav) == len(pcm) and not wav[RATE:int(1.5 * RATE)].any()
    assert np.array_equal(wav[:RATE], pcm[:RATE]) and np.array_equal(wav[int(1.5 * RATE):], pcm[int(1.5 * RATE):])
