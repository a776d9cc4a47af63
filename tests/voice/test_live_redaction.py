"""Redaction of live calls (``voice serve --redact``): what the agent's screen, the database, the
stored transcript and the recording keep of numbers read out on a call.

The first test scripts the transcript over real call audio (the pyannote sample); the second runs
a real SpokenWOZ call, where the customer reads a phone number in three pieces while the agent
repeats each, through tiny.en, the real entity extractor and the recorder. (The agent's repeats,
each piece between "okay, please go ahead", are not one run of digits, for the batch path's rule
either: voice/redaction.py.)
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

from suggest.nlu.entities import REDACTED_LABELS
from tests.server.harness import bundled_sample
from voice.batch.engines import entity_extractor
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    Frame,
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

LONG_DIGIT_RUN = re.compile(r"\d(?:[\s,.-]*\d){6}")


def _words(text: str, start: float, step: float = 0.4) -> list[TimedWord]:
    return [TimedWord(w, round(start + i * step, 3), round(start + (i + 1) * step - 0.05, 3), 0.9)
            for i, w in enumerate(text.split())]


def _final(turn: int, text: str, start: float) -> TranscriptFinalFrame:
    words = _words(text, start)
    return TranscriptFinalFrame(turn_id=f"inbound-{turn}", leg="inbound", text=text, words=words, start=start,
                                end=words[-1].end, audio_time=words[-1].end, role="customer")


def _recorder(tmp_path: Path, executor: ThreadPoolExecutor, hub: EventHub) -> CallRecorder:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    return CallRecorder(hub=hub, registry=CallRegistry(), live_store=LiveCallStore(store), store=store,
                        executor=executor, audio_dir=tmp_path / "audio", model_name="tiny.en", redacted=True)


def _audio_frames(seconds: float) -> list[AudioFrame]:
    pcm, rate = sf.read(bundled_sample()[0], dtype="int16")
    pcm = np.resize(np.asarray(pcm), int(seconds * rate))
    return [AudioFrame(pcm=pcm[i:i + 320], sample_rate=rate, leg="inbound", pts=i / rate)
            for i in range(0, len(pcm), 320)]


@pytest.mark.unit
def test_numbers_are_masked_on_screen_in_the_database_and_silenced_in_the_recording(tmp_path: Path) -> None:
    hub = EventHub()
    card = "my card number is 4111 1111 1111 1111 thanks"
    partial = TranscriptPartialFrame(leg="inbound", committed=_words("it is 4111 1111", 1.0),
                                     tentative=_words("1111", 2.6), audio_time=3.0, role="customer")
    piece_one, piece_two = "the number is 370 318", "and 04 82"  # read out in pieces (SpokenWOZ SNG0696)

    async def call() -> CallRecorder:
        with ThreadPoolExecutor(2) as executor:
            recorder = _recorder(tmp_path, executor, hub)
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


@pytest.mark.model
def test_a_phone_number_read_out_in_pieces_on_a_real_call_is_masked(shared_data: Path, tmp_path: Path) -> None:
    from asr import AsrOptions
    from asr.live import load_streaming_engine
    from asr.streaming import WhisperTurnDecoder
    from voice.live.asr_runtime import live_streaming_config
    from voice.live.replay import ReplayClock, ReplayMode, replay_call
    from voice.live.scheduler import DecodeScheduler, SchedulerConfig
    from voice.processors.asr import StreamingAsrProcessor

    folder = shared_data / "diarization" / "spokenwoz_calls_8k"
    stereo, rate = sf.read(folder / "SNG0696.wav", dtype="int16")
    begin, end = 76.0, 100.0  # the customer (left) reads 370 / 318 / 0482, the agent repeats each
    legs = {"customer": np.ascontiguousarray(stereo[int(begin * rate):int(end * rate), 0]),
            "agent": np.ascontiguousarray(stereo[int(begin * rate):int(end * rate), 1])}
    reference = [w for w in json.loads((folder / "SNG0696.json").read_text())
                 if begin <= w["start"] and w["end"] <= end and re.fullmatch(r"\d+", w["word"])]
    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=2, encoder_window="trimmed")
    scheduler = DecodeScheduler(WhisperTurnDecoder(engine, final=AsrOptions(beam_size=5)).decode_batch,
                                SchedulerConfig(workers=1))
    hub = EventHub()

    async def run() -> CallRecorder:
        with ThreadPoolExecutor(2) as executor:
            asr = StreamingAsrProcessor(scheduler, config=live_streaming_config(on_cpu=True))
            recorder = _recorder(tmp_path, executor, hub)
            pipeline = Pipeline([asr, NluProcessor(extractor=entity_extractor(), executor=executor,
                                                   redact=REDACTED_LABELS), recorder])
            clock = ReplayClock(ReplayMode.UNAWARE)
            await replay_call(pipeline, legs, rate, call_id="SNG0696", roles={"customer": "customer", "agent": "agent"},
                              mode=ReplayMode.UNAWARE, clock=clock, busy=lambda: asr.busy, drained=asr.drained)
            recorder.history = hub.history("SNG0696")  # type: ignore[attr-defined]
            await pipeline.close()
            return recorder

    try:
        recorder = asyncio.run(asyncio.wait_for(run(), 600))
    finally:
        scheduler.close()
    transcript = recorder.store.get_transcript("SNG0696")
    text = " ".join(s.text for s in transcript.segments if s.role == "customer")
    assert "[PHONE]" in text, text
    assert len(re.findall(r"\d", text)) < 7, text  # at most the first pieces, before they made a run
    events = [e for e in recorder.history if e.get("type") == "transcript.final"]  # type: ignore[attr-defined]
    assert all(not LONG_DIGIT_RUN.search(str(e.get("text"))) for e in events)
    wav, wav_rate = sf.read(tmp_path / "audio" / "SNG0696.wav", dtype="int16")
    silenced = []
    for word in (w for w in reference if w["speaker"] == "A"):  # the customer's digits, as the reference times them
        span = wav[int((word["start"] - begin) * wav_rate):int((word["end"] - begin) * wav_rate), 0]
        silenced.append(float(np.mean(span == 0)))
    assert len(silenced) >= 8 and np.mean(silenced) >= 0.8, silenced
    assert np.mean(wav[: int(6 * wav_rate), 0] == 0) < 0.5  # and the call before the number is kept
