"""Redaction of live calls (``voice serve --redact``): what the agent's screen, the database, the
stored transcript and the recording keep of numbers read out on a call, with the transcript
scripted over real call audio (the pyannote sample); and the flag reaching every call's pipeline.
A real call through tiny.en: test_live_redaction_real_call.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import text

from suggest.nlu.entities import REDACTED_LABELS
from tests.fakes.frames import Collector
from tests.server.harness import bundled_sample
from voice.batch.engines import entity_extractor
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    Frame,
    NluFrame,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.processor import Pipeline
from voice.processors.nlu import NluProcessor
from voice.processors.recorder import CallRecorder
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store
from voice.store.live import LiveCallStore

pytestmark = pytest.mark.unit
LONG_DIGIT_RUN = re.compile(r"\d(?:[\s,.-]*\d){6}")


def _words(text: str, start: float, step: float = 0.4) -> list[TimedWord]:
    return [TimedWord(w, round(start + i * step, 3), round(start + (i + 1) * step - 0.05, 3), 0.9)
            for i, w in enumerate(text.split())]


def _final(turn: int, text: str, start: float) -> TranscriptFinalFrame:
    words = _words(text, start)
    return TranscriptFinalFrame(turn_id=f"inbound-{turn}", leg="inbound", text=text, words=words, start=start,
                                end=words[-1].end, audio_time=words[-1].end, role="customer")


def recorder_for(tmp_path: Path, executor: ThreadPoolExecutor, hub: EventHub) -> CallRecorder:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    return CallRecorder(hub=hub, registry=CallRegistry(), live_store=LiveCallStore(store), store=store,
                        executor=executor, audio_dir=tmp_path / "audio", model_name="tiny.en", redacted=True)


def _audio_frames(seconds: float) -> list[AudioFrame]:
    pcm, rate = sf.read(bundled_sample()[0], dtype="int16")
    pcm = np.resize(np.asarray(pcm), int(seconds * rate))
    return [AudioFrame(pcm=pcm[i:i + 320], sample_rate=rate, leg="inbound", pts=i / rate)
            for i in range(0, len(pcm), 320)]


def test_numbers_are_masked_on_screen_in_the_database_and_silenced_in_the_recording(tmp_path: Path) -> None:
    hub = EventHub()
    card = "my card number is 4111 1111 1111 1111 thanks"
    partial = TranscriptPartialFrame(leg="inbound", committed=_words("it is 4111 1111", 1.0),
                                     tentative=_words("1111", 2.6), audio_time=3.0, role="customer")
    piece_one, piece_two = "the number is 370 318", "and 04 82"  # read out in pieces (SpokenWOZ SNG0696)

    async def call() -> CallRecorder:
        with ThreadPoolExecutor(2) as executor:
            recorder = recorder_for(tmp_path, executor, hub)
            pipeline = Pipeline([NluProcessor(extractor=entity_extractor(), executor=executor,
                                              redact=REDACTED_LABELS), recorder])
            frames: list[Frame] = [CallStartedFrame(call_id="CA-pci", legs={"inbound": "customer"}, source="sip")]
            audio = _audio_frames(20.0)
            frames += audio[:250] + [partial, _final(1, card, 1.0)] + audio[250:700]
            frames += [_final(2, piece_one, 8.0), _final(3, piece_two, 11.0)] + audio[700:]
            for frame in frames:
                await pipeline.process_frame(frame)
            history = hub.history("CA-pci")
            await pipeline.process_frame(CallEndedFrame(call_id="CA-pci", audio_time=20.0))
            await pipeline.close()
            recorder.history = history  # type: ignore[attr-defined]
            return recorder

    recorder = asyncio.run(asyncio.wait_for(call(), 120))
    shown = json.dumps(recorder.history)  # type: ignore[attr-defined]
    assert "4111" not in shown and "[CARD]" in shown  # partial and final, as the console got them
    stored = [t.text for t in LiveCallStore(recorder.store).turns("CA-pci")]
    transcript = recorder.store.get_transcript("CA-pci")
    assert transcript.redacted
    assert stored[0] == "my card number is [CARD] thanks"
    assert "[PHONE]" in stored[2] and not LONG_DIGIT_RUN.search(stored[2])
    assert all(not LONG_DIGIT_RUN.search(s.text) for s in transcript.segments)
    assert {e.label for e in transcript.entities} >= {"CARD", "PHONE"}
    assert all(e.value is None for e in transcript.entities if e.label in REDACTED_LABELS)

    wav, rate = sf.read(tmp_path / "audio" / "CA-pci.wav", dtype="int16")
    original, _ = sf.read(bundled_sample()[0], dtype="int16")

    def heard(start: float, end: float) -> np.ndarray:
        return wav[int(start * rate):int(end * rate)]

    card_words = _words(card, 1.0)[4:8]
    pieces = _words(piece_one, 8.0)[3:] + _words(piece_two, 11.0)  # "370 318" was shown, but is silenced
    for word in [*card_words, *pieces]:
        assert not heard(word.start, word.end).any(), word
    assert heard(0.0, 0.7).any() and np.array_equal(heard(0.0, 0.7), original[: int(0.7 * rate)])
    assert heard(13.0, 20.0).any()


def test_voice_serve_redact_reaches_every_call_pipeline(tmp_path: Path) -> None:
    from tests.server.harness import make_services
    from voice.config import load_config
    from voice.processor import FrameProcessor

    class PassThrough(FrameProcessor):
        async def process_frame(self, frame: Frame) -> None:
            await self.push_frame(frame)

    assert load_config(None, {}, environ={"NEXTLINE_REDACT": "1"}).redact
    started = CallStartedFrame(call_id="CA-flag", legs={"inbound": "customer", "outbound": "agent"})
    for redact in (True, False):
        services = make_services(tmp_path / str(redact), redact=redact)
        services.asr.processor_for = lambda _started: PassThrough()  # type: ignore[method-assign]
        processors = services.build_pipeline(started, None).processors  # type: ignore[arg-type]
        nlu = next(p for p in processors if isinstance(p, NluProcessor))
        recorder = next(p for p in processors if isinstance(p, CallRecorder))
        assert (nlu.redactor is not None, recorder.redacted) == (redact, redact)
        services.store.close()


def test_a_final_without_word_times_is_redacted_too(tmp_path: Path) -> None:
    frames = _redact_call(TranscriptFinalFrame(
        turn_id="inbound-1", leg="inbound", text="my card is 4111 1111 1111 1111", words=[], start=1.0,
        end=4.0, audio_time=4.0, role="customer"))
    (final,) = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    assert "4111" not in final.text and "[CARD]" in final.text


def test_a_failing_intent_model_costs_the_intent_not_the_redacted_turn() -> None:
    def broken_intent(text: str) -> tuple[str, float] | None:
        raise RuntimeError("intent model exploded")

    async def call() -> list[Frame]:
        with ThreadPoolExecutor(1) as executor:
            collector = Collector()
            pipeline = Pipeline([NluProcessor(extractor=entity_extractor(), executor=executor, intent=broken_intent,
                                              redact=REDACTED_LABELS), collector])
            await pipeline.process_frame(CallStartedFrame(call_id="CA-int", legs={"inbound": "customer"}))
            await pipeline.process_frame(_final(1, "my card number is 4111 1111 1111 1111 thanks", 1.0))
            await pipeline.close()
            return collector.frames

    frames = asyncio.run(asyncio.wait_for(call(), 60))
    (final,) = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    (nlu,) = [f for f in frames if isinstance(f, NluFrame)]
    assert final.text == "my card number is [CARD] thanks"  # not [WITHHELD]
    assert nlu.intent is None and [e["label"] for e in nlu.entities] == ["CARD"]


def _redact_call(*frames: Frame) -> list[Frame]:
    """What leaves the NLU processor of a redacted call for ``frames`` (after CallStarted)."""

    async def call() -> list[Frame]:
        with ThreadPoolExecutor(1) as executor:
            collector = Collector()
            pipeline = Pipeline([NluProcessor(extractor=entity_extractor(), executor=executor,
                                              redact=REDACTED_LABELS), collector])
            await pipeline.process_frame(CallStartedFrame(call_id="CA-r", legs={"inbound": "customer"}))
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.close()
            return collector.frames

    return asyncio.run(asyncio.wait_for(call(), 60))


def test_key_presses_reach_no_screen_or_history_with_their_digit(tmp_path: Path) -> None:
    """A card number keyed in went out to the console and the event history key by key."""
    from voice.frames import DtmfFrame

    hub = EventHub()

    async def call() -> list[dict[str, object]]:
        with ThreadPoolExecutor(1) as executor:
            pipeline = Pipeline([NluProcessor(extractor=entity_extractor(), executor=executor,
                                              redact=REDACTED_LABELS), recorder_for(tmp_path, executor, hub)])
            await pipeline.process_frame(CallStartedFrame(call_id="CA-dtmf", legs={"inbound": "customer"}))
            for i, digit in enumerate("4111111111111111#"):
                await pipeline.process_frame(DtmfFrame(digit=digit, leg="inbound", audio_time=float(i)))
            history = hub.history("CA-dtmf")
            await pipeline.process_frame(CallEndedFrame(call_id="CA-dtmf", audio_time=20.0))
            await pipeline.close()
            return history

    events = [e for e in asyncio.run(asyncio.wait_for(call(), 60)) if e["type"] == "dtmf"]
    assert len(events) == 17 and not any(str(e["digit"]) in "0123456789*#" for e in events)  # each press, no key
    from voice.processors.nlu import MASKED_DTMF

    assert {e["digit"] for e in events} == {MASKED_DTMF}
    assert MASKED_DTMF not in "0123456789*#ABCD"


def test_an_ssn_masked_as_a_digit_run_keeps_its_label() -> None:
    """The run rule masked "123-45-6789" before the extractor saw it, as a [PHONE]."""
    frames = _redact_call(_final(1, "My social is 123-45-6789.", 1.0), _final(2, "my card is 4111 1111 1111 1111", 9.0))
    finals = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    entities = [f.entities for f in frames if isinstance(f, NluFrame)]
    assert [f.text for f in finals] == ["My social is [SSN]", "my card is [CARD]"]
    assert [[(e["label"], e["text"]) for e in found] for found in entities] == [[("SSN", "[SSN]")],
                                                                                [("CARD", "[CARD]")]]


def test_a_number_read_in_pieces_does_not_mask_the_quantity_said_after_it() -> None:
    """The leg's history kept the clear copies of the first pieces once a later piece masked
    them, so "2 rooms" two turns on joined them: "[PHONE] rooms please", its audio silenced."""
    turns = ["my number is 3 7 0", "and 3 1 8", "and 0 4 8 2", "and 2 rooms please", "oh and 1 more thing"]
    frames = _redact_call(*(_final(i, text, 4.0 * i) for i, text in enumerate(turns)))
    finals = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    assert [f.text for f in finals][2:] == ["[PHONE]", "and 2 rooms please", "oh and 1 more thing"]
    assert finals[3].masked_audio == [] and finals[4].masked_audio == []
    shown_before = [w for i in (0, 1) for w in _words(turns[i], 4.0 * i) if w.text.isdigit()]
    assert all(any(a <= w.start and w.end <= b for a, b in finals[2].masked_audio) for w in shown_before)


def test_times_prices_dates_and_codes_are_not_masked_as_numbers() -> None:
    kept = ["can I book a table between 10:30 and 11:45 please", "the two items were $45.50 and $12.99 each",
            "the total comes to $12,345.67 on 2024-03-15", "flights BA2490 and BA2491", "we ordered 1,500,000 units",
            "I was there in 2019 and 2020", "2 tickets at 7:30 on 12/03/2024"]
    frames = _redact_call(*(_final(i, text, 20.0 * i) for i, text in enumerate(kept)))  # no run across turns
    finals = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    assert [f.text for f in finals] == kept and all(f.masked_audio == [] for f in finals)


@pytest.mark.parametrize("redacted", [True, False])
def test_the_callers_number_in_sip_metadata_is_masked_when_redacting(tmp_path: Path, redacted: bool) -> None:
    """The caller's and the dialled number a SIP INVITE carries (From, To, the request URI) are
    numbers read out as surely as spoken ones: a redacting server stores and lists them masked,
    and keeps the Call-ID (logs of the PBX match it)."""
    from telephony.settings import TelephonySettings
    from telephony.sip.mapping import plan_call
    from telephony.sip.message import SipMessage
    from telephony.sip.sdp import negotiate, parse_sdp

    invite = SipMessage(method="INVITE", uri="sip:+18005550199@pbx.example", headers=[
        ("Call-ID", "4915112345678@10.1.2.3"), ("From", '"Jo" <sip:+1 (555) 123-4567@carrier.example>;tag=9f2'),
        ("To", "<sip:+18005550199@pbx.example>")])
    offer = parse_sdp("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                      "m=audio 7000 RTP/AVP 0\r\na=sendrecv\r\n")
    plan = plan_call(invite, negotiate(offer), None, TelephonySettings())

    async def call() -> CallRecorder:
        with ThreadPoolExecutor(1) as executor:
            recorder = recorder_for(tmp_path, executor, EventHub())
            recorder.redacted = redacted
            await recorder.process_frame(CallStartedFrame(call_id="CA-sip", legs={"inbound": "customer"},
                                                          source="sip", metadata=plan.metadata))
            await recorder.process_frame(CallEndedFrame(call_id="CA-sip", audio_time=1.0))
            return recorder

    recorder = asyncio.run(asyncio.wait_for(call(), 60))
    with recorder.store.engine.connect() as connection:
        options = connection.execute(text("SELECT options FROM calls WHERE call_id = 'CA-sip'")).scalar_one()
    stored = json.loads(options) if isinstance(options, str) else options
    listed = recorder.registry.get("CA-sip")
    assert listed is not None
    for metadata in (stored["metadata"], listed.metadata):
        assert metadata["sip_call_id"] == "4915112345678@10.1.2.3"
        numbers = [metadata[key] for key in ("from", "to", "request_uri")]
        if redacted:
            assert not any(re.search(r"\d{3}", n) for n in numbers), numbers
            assert metadata["from"].startswith('"Jo" <sip:[PHONE]@carrier.example>')
        else:
            assert "555) 123-4567" in metadata["from"] and "18005550199" in metadata["to"]
