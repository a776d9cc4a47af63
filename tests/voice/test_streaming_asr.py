"""StreamingAsrProcessor on a real SpokenWOZ leg (tiny.en), replayed faster than real time.

Computation-unaware replay: frames go in as fast as possible, but feeding waits while decodes
are in flight, so every partial decodes exactly the audio at its step (no clock, no sleeps).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from asr import AsrOptions, WhisperEngine
from asr.live import load_streaming_engine
from asr.streaming import WhisperTurnDecoder
from asr.wer import word_errors
from tests.voice.spokenwoz import spokenwoz_leg
from voice.audio import resample
from voice.frames import (
    Role,
    SpeechStartedFrame,
    SpeechStoppedFrame,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.live.asr_runtime import live_streaming_config
from voice.live.replay import FrameRecorder, ReplayClock, ReplayMode, replay_call
from voice.live.scheduler import DecodeScheduler, SchedulerConfig
from voice.processor import Pipeline
from voice.processors.asr import AsrScheduler, StreamingAsrProcessor
from voice.vad import detect_speech

pytestmark = pytest.mark.model

CALL = "SNG0480"
SECONDS = 45.0  # B (right channel) says 64 reference words in this stretch
# Finals decode turn by turn: a little worse than one offline pass over the whole leg
# (docs/results/streaming.md); on this short stretch the gap is a few words at most.
WER_MARGIN = 0.10


@pytest.fixture(scope="module")
def scheduler() -> Iterator[AsrScheduler]:
    # the live server's CPU set-up (voice.live.asr_runtime): one 2-thread decode at a time,
    # 20 s encoder window, beam-5 finals
    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=2, encoder_window="trimmed")
    decoder = WhisperTurnDecoder(engine, final=AsrOptions(beam_size=5))
    scheduler: AsrScheduler = DecodeScheduler(decoder.decode_batch, SchedulerConfig(workers=1))
    yield scheduler
    scheduler.close()


@pytest.fixture(scope="module")
def agent_leg(shared_data: Path) -> tuple[np.ndarray, str]:
    return spokenwoz_leg(shared_data, CALL, SECONDS)


@pytest.fixture(scope="module")
def replay_run(
    scheduler: AsrScheduler, agent_leg: tuple[np.ndarray, str]
) -> tuple[FrameRecorder, StreamingAsrProcessor]:
    """The leg replayed with the live server's streaming policy on CPU (early finals on)."""
    pcm, _ = agent_leg
    return _replay(scheduler, {"agent": pcm, "silent": np.zeros_like(pcm)}, {"agent": "agent", "silent": "customer"})


def _replay(
    scheduler: AsrScheduler, legs: dict[str, np.ndarray], roles: dict[str, Role], *, rate: int = 8000,
    frame_seconds: float = 0.02,
) -> tuple[FrameRecorder, StreamingAsrProcessor]:
    """``legs`` through the live server's CPU streaming processor, as fast as it decodes them."""
    clock = ReplayClock(ReplayMode.UNAWARE)
    processor = StreamingAsrProcessor(scheduler, config=live_streaming_config(on_cpu=True))
    recorder = FrameRecorder(clock)
    pipeline = Pipeline([processor, recorder])

    async def run() -> None:
        await replay_call(
            pipeline, legs, rate, call_id="replay-" + "-".join(roles.values()), roles=roles,
            mode=ReplayMode.UNAWARE, clock=clock, busy=lambda: processor.busy, drained=processor.drained,
            frame_seconds=frame_seconds,
        )  # fmt: skip
        await pipeline.close()

    asyncio.run(run())
    return recorder, processor


@pytest.fixture(scope="module")
def replayed(replay_run: tuple[FrameRecorder, StreamingAsrProcessor]) -> FrameRecorder:
    return replay_run[0]


def _frames(recorder: FrameRecorder, leg: str) -> list[object]:
    kinds = (SpeechStartedFrame, SpeechStoppedFrame, TranscriptPartialFrame, TranscriptFinalFrame)
    return [e.frame for e in recorder.emitted if isinstance(e.frame, kinds) and e.frame.leg == leg]


def test_partials_then_finals_in_order(replayed: FrameRecorder) -> None:
    frames = _frames(replayed, "agent")
    finals = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    assert len(finals) >= 3
    assert [f.turn_id for f in finals] == [f"agent-{i + 1}" for i in range(len(finals))]
    assert all(f.role == "agent" and f.start < f.end == f.audio_time for f in finals)
    assert sum(isinstance(f, TranscriptPartialFrame) for f in frames) >= len(finals)
    closing = False  # between a turn's SpeechStopped and its final: no partial may appear
    committed: list[str] = []
    for frame in frames:
        if isinstance(frame, SpeechStoppedFrame):
            closing = True
        elif isinstance(frame, TranscriptFinalFrame):
            closing, committed = False, []
        elif isinstance(frame, TranscriptPartialFrame):
            assert not closing, "a partial came after its turn had closed"
            texts = [w.text for w in frame.committed]
            assert texts[: len(committed)] == committed, "committed words were retracted"
            committed = texts


def test_turns_closed_at_a_pause_reuse_their_early_final(
    replay_run: tuple[FrameRecorder, StreamingAsrProcessor],
) -> None:
    recorder, processor = replay_run
    finals = [f for f in _frames(recorder, "agent") if isinstance(f, TranscriptFinalFrame)]
    started, adopted = processor.early_finals["started"], processor.early_finals["adopted"]
    # Every turn the VAD closed (not the call's end) closed at a pause whose early final ran.
    assert len(finals) - 1 <= adopted <= len(finals) <= started


def test_final_words_are_timed_inside_their_turn(replayed: FrameRecorder) -> None:
    for frame in _frames(replayed, "agent"):
        if isinstance(frame, TranscriptFinalFrame):
            # the words as Whisper wrote them: attached pieces ("p" ".m.") get no space between
            assert frame.text.replace(" ", "") == "".join(w.text for w in frame.words)
            assert len(frame.text.split()) <= len(frame.words)
            assert not re.search(r"\s[.,?!:;%]", frame.text), frame.text
            pre_roll = live_streaming_config(on_cpu=True).pre_roll  # no word before the turn's audio
            for word in frame.words:
                assert frame.start - pre_roll - 1e-6 <= word.start <= word.end <= frame.end + 0.5


def test_final_wer_is_close_to_offline(
    replayed: FrameRecorder, agent_leg: tuple[np.ndarray, str]
) -> None:
    pcm, reference = agent_leg
    audio = resample(pcm.astype(np.float32) / 32768.0, 8000, 16000)
    regions = [(r.start, r.end) for r in detect_speech(audio)]
    offline = WhisperEngine.load("tiny.en").transcribe(audio, speech=regions).text
    streamed = " ".join(
        f.text for f in _frames(replayed, "agent") if isinstance(f, TranscriptFinalFrame)
    )
    assert word_errors(reference, streamed).wer <= word_errors(reference, offline).wer + WER_MARGIN


def test_a_silent_leg_gives_no_text(replayed: FrameRecorder) -> None:
    assert _frames(replayed, "silent") == []


def _replay_mono_sample(scheduler: AsrScheduler, role: str) -> list[TranscriptFinalFrame]:
    """The pyannote wheel's 30 s two-party call as one leg with ``role``; its finals."""
    import importlib.util

    import soundfile as sf

    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "sample" / "sample.wav"
    audio, rate = sf.read(path, dtype="int16")
    recorder, _ = _replay(scheduler, {"mixed": audio}, {"mixed": role}, rate=rate)  # type: ignore[dict-item]
    return [f for f in _frames(recorder, "mixed") if isinstance(f, TranscriptFinalFrame)]


def test_long_turns_of_a_mixed_leg_are_split_at_a_pause(scheduler: AsrScheduler) -> None:
    # Two people talking back and forth leave no 0.6 s silence: as one party's leg, the sample
    # has a turn of well over 8 s; as a mixed leg it is cut at pauses, so finals (and prompts)
    # come while the call goes on.
    whole = _replay_mono_sample(scheduler, "agent")
    split = _replay_mono_sample(scheduler, "unknown")
    assert max(f.end - f.start for f in whole) > 12.0
    assert len(split) > len(whole)
    assert all(f.end - f.start < 12.0 for f in split), [(f.start, f.end) for f in split]
    assert all(f.text.strip() for f in split)


def test_audio_sent_in_long_messages_keeps_every_turn(
    scheduler: AsrScheduler, agent_leg: tuple[np.ndarray, str], replayed: FrameRecorder
) -> None:
    # A sender that batches (or catches up after a stall) may send 9 s in one message. Outside
    # a turn the transcriber keeps only about 1.4 s, so the message must reach the VAD in small
    # pieces: fed whole, every turn but the last of each message lost its audio (and its final).
    pcm, _ = agent_leg
    recorder, _ = _replay(scheduler, {"agent": pcm}, {"agent": "agent"}, frame_seconds=9.0)  # 5 messages
    small = [f for f in _frames(replayed, "agent") if isinstance(f, TranscriptFinalFrame)]
    long = [f for f in _frames(recorder, "agent") if isinstance(f, TranscriptFinalFrame)]
    assert len(small) >= 4
    assert [round(f.start, 1) for f in long] == [round(f.start, 1) for f in small]
    assert all(f.text.strip() for f in long)
