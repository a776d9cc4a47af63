"""The streaming transcriber's final words on real SpokenWOZ legs (tiny.en, the live CPU final pass).

Each leg goes through the VAD and :class:`StreamingTranscriber` turn by turn as the live path
decodes its finals (``scripts/bench_final_pass.py``'s loop: 20 s encoder window, beam 5, 3 s of
earlier speech as context), without partials.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asr import AsrOptions, WhisperEngine
from asr.live import load_streaming_engine
from asr.streaming import (
    SAMPLE_RATE,
    StreamingConfig,
    StreamingTranscriber,
    TurnTranscript,
    WhisperTurnDecoder,
)
from voice.audio import resample
from voice.live.replay import vad_turn_finals

pytestmark = pytest.mark.model

FINAL = AsrOptions(beam_size=5)
LIVE_CPU = StreamingConfig(final_context=3.0, prompt_chars=0)  # the live server's final pass on CPU


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return load_streaming_engine("tiny.en", workers=1, cpu_threads=2, encoder_window="trimmed")


@pytest.fixture(scope="module")
def decoder(engine: WhisperEngine) -> WhisperTurnDecoder:
    return WhisperTurnDecoder(engine, final=FINAL)


def _leg(shared_data: Path, call: str, channel: int, start: float, end: float) -> np.ndarray:
    """``start``-``end`` s of one channel of a SpokenWOZ call (8 kHz), as 16 kHz float32."""
    with wave.open(str(shared_data / "diarization" / "spokenwoz_calls_8k" / f"{call}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)[:, channel]
    return resample(pcm[int(start * 8000) : int(end * 8000)].astype(np.float32) / 32768, 8000, SAMPLE_RATE)


def _finals(decoder: WhisperTurnDecoder, audio: np.ndarray) -> list[TurnTranscript]:
    """Every VAD turn's final, closed as the live path closes it (0.7 s after the speech)."""
    return vad_turn_finals(StreamingTranscriber(decoder, LIVE_CPU), audio)


def test_a_turns_first_word_is_kept_and_timed_inside_the_turn(
    decoder: WhisperTurnDecoder, shared_data: Path
) -> None:
    # Leg B says "Sure, what kind of..." then "Of course." With its context the second turn
    # decodes as "kind of... Of course." where "Of" lies wholly in the silence before the
    # turn's first sample: cut by each word's middle it was lost ("course."), and "course."
    # started 0.2 s before the turn, inside the previous final's time.
    finals = [f for f in _finals(decoder, _leg(shared_data, "SNG0072", 1, 0.0, 26.0)) if f.words]
    assert any(f.text == "Of course." for f in finals), [f.text for f in finals]
    previous_end = 0.0
    for final in finals:
        first_sample = final.start - LIVE_CPU.pre_roll
        assert final.words[0].start >= first_sample - 1e-6, (final.text, final.words[0], first_sample)
        assert final.words[0].start >= previous_end, (final.text, final.words[0], previous_end)
        assert all(w.start <= w.end for w in final.words)
        previous_end = final.words[-1].end


@pytest.mark.parametrize(
    ("call", "start", "end", "attached"),
    [("SNG0480", 52.2, 57.8, "7 p.m."), ("SNG0072", 43.9, 51.8, "Wi-Fi.")],
)
def test_final_text_keeps_whispers_attached_tokens(
    engine: WhisperEngine, decoder: WhisperTurnDecoder, shared_data: Path, call: str, start: float,
    end: float, attached: str,
) -> None:
    # Whisper writes "7 p.m." as the pieces " 7", " p", ".m." and "Wi-Fi." as " Wi", "-Fi.":
    # joined by spaces the final read "7 p .m." and "Wi -Fi.".
    audio = _leg(shared_data, call, 1, start, end)
    transcriber = StreamingTranscriber(decoder, StreamingConfig(final_context=0.0))
    transcriber.begin_turn(0.0)
    transcriber.insert_audio(audio)
    final = transcriber.finish()
    assert final is not None
    assert attached in final.text
    assert final.text == engine.transcribe_turn(audio, FINAL).text  # faster-whisper's text
    assert any(not w.leading_space for w in final.words)


def test_punctuation_runs_are_not_words(decoder: WhisperTurnDecoder, shared_data: Path) -> None:
    # Leg A's turn at 39.9 s decodes as "There are two people in total. . . . . ." (five " ."
    # pieces the loop guard does not count); each "." was a word of the final.
    finals = _finals(decoder, _leg(shared_data, "SNG0480", 0, 0.0, 43.0))
    total = [f for f in finals if "two people in total" in f.text]
    assert total, [f.text for f in finals]
    assert total[0].text.endswith("in total."), total[0].text
    for final in finals:
        assert all(any(c.isalnum() for c in w.text) for w in final.words), final.words
