"""Redaction of a real SpokenWOZ call (``voice serve --redact``): the customer reads a phone number
in three pieces while the agent repeats each; through tiny.en, the real entity extractor and the
recorder, the stored transcript keeps no run of the number and the recording is silent where the
customer said it. (The agent's repeats, each piece between "okay, please go ahead", are not one
run of digits, for the batch path's rule either: voice/redaction.py.)
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
from tests.voice.test_live_redaction import LONG_DIGIT_RUN, recorder_for
from voice.batch.engines import entity_extractor
from voice.processor import Pipeline
from voice.processors.nlu import NluProcessor
from voice.processors.recorder import CallRecorder
from voice.server.hub import EventHub

pytestmark = pytest.mark.model


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
            recorder = recorder_for(tmp_path, executor, hub)
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
