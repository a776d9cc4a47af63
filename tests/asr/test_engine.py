"""WhisperEngine on real audio with the real tiny.en weights (short clips only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr import AsrInputError, AsrOptions, Transcription, WhisperEngine
from asr.wer import normalize, word_errors
from voice.audio import load_audio

pytestmark = pytest.mark.model

RATE = 16000
JFK_TEXT = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)
# JFK's pause between "...fellow Americans" and "ask not": the VAD puts speech at 0.12-2.44 s
# and 3.83 s on, so a cut at 3.2 s splits no word.
JFK_CUT = 3.2


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine.load("tiny.en")


@pytest.fixture(scope="module")
def jfk(shared_data: Path) -> np.ndarray:
    return load_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()


@pytest.fixture(scope="module")
def jfk_result(engine: WhisperEngine, jfk: np.ndarray) -> Transcription:
    return engine.transcribe(jfk)


def test_jfk_words_are_recognised(jfk_result: Transcription) -> None:
    assert word_errors(JFK_TEXT, jfk_result.text).wer <= 0.05
    spoken = {normalize(w.text) for w in jfk_result.words}
    assert {"americans", "country", "fellow", "ask"} <= spoken
    assert jfk_result.language == "en"
    assert jfk_result.duration == pytest.approx(11.0, abs=0.01)
    assert jfk_result.options == AsrOptions()
    assert jfk_result.loops_redecoded == 0


def test_same_audio_gives_the_same_transcription(
    engine: WhisperEngine, jfk: np.ndarray, jfk_result: Transcription
) -> None:
    assert engine.transcribe(jfk) == jfk_result


def test_word_timestamps_are_ordered_and_inside_their_segment(jfk_result: Transcription) -> None:
    assert len(jfk_result.words) >= 20
    previous_end = 0.0
    for segment in jfk_result.segments:
        assert segment.words
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert word.start >= previous_end - 1e-6
            assert 0.0 <= word.probability <= 1.0
            previous_end = word.end
    assert previous_end <= jfk_result.duration


def test_speech_regions_decode_only_speech_in_the_original_timeline(
    engine: WhisperEngine, jfk: np.ndarray
) -> None:
    lead, gap = 4.0, 6.0
    cut = int(JFK_CUT * RATE)
    silence = np.zeros(int(lead * RATE), dtype=np.float32)
    audio = np.concatenate([silence, jfk[:cut], np.zeros(int(gap * RATE), np.float32), jfk[cut:]])
    second_start = lead + JFK_CUT + gap
    speech = [(lead, lead + JFK_CUT), (second_start, len(audio) / RATE)]

    result = engine.transcribe(audio, speech=speech)

    assert word_errors(JFK_TEXT, result.text).wer <= 0.05
    assert result.duration == pytest.approx(len(audio) / RATE)
    first = [w for w in result.words if w.end <= lead + JFK_CUT + 1e-6]
    second = [w for w in result.words if w.start >= second_start - 1e-6]
    assert len(first) + len(second) == len(result.words)  # nothing placed in the silence
    assert normalize(" ".join(w.text for w in first)) == "and so my fellow americans"
    assert normalize(second[0].text) == "ask"
    # "ask" ends about 4.1 s into the clip (0.9 s after the cut); Whisper's word starts are
    # coarse after a pause, so only the end is checked tightly.
    assert second[0].end == pytest.approx(second_start + 0.9, abs=0.35)
    assert first[0].start == pytest.approx(lead + 0.3, abs=0.35)
    assert first[-1].end == pytest.approx(lead + 2.3, abs=0.35)  # "Americans" ends near 2.3 s


def test_no_speech_regions_means_no_decoding(engine: WhisperEngine, jfk: np.ndarray) -> None:
    result = engine.transcribe(jfk, speech=[])
    assert result.segments == ()
    assert result.text == ""


def test_transcribe_turn_uses_the_prompt(engine: WhisperEngine, jfk: np.ndarray) -> None:
    turn = jfk[int(JFK_CUT * RATE) :]
    result = engine.transcribe_turn(
        turn, AsrOptions(beam_size=1), prompt="And so my fellow Americans,"
    )
    assert result.options.initial_prompt == "And so my fellow Americans,"
    expected = JFK_TEXT.removeprefix("and so my fellow americans ")
    assert word_errors(expected, result.text).wer <= 0.1
    assert result.words and result.words[-1].end <= len(turn) / RATE + 0.01


def test_bad_input_is_rejected_with_a_hint(engine: WhisperEngine, jfk: np.ndarray) -> None:
    with pytest.raises(AsrInputError, match="1-D mono"):
        engine.transcribe(np.stack([jfk, jfk]))
    with pytest.raises(AsrInputError, match="int16_to_float"):
        engine.transcribe((jfk * 32767).astype(np.int16))
    corrupt = jfk.copy()
    corrupt[16000] = np.nan  # used to decode to no text at all, silently
    with pytest.raises(AsrInputError, match="NaN"):
        engine.transcribe(corrupt)
    with pytest.raises(AsrInputError, match="NaN"):
        engine.transcribe_turn(corrupt)


def test_an_unsure_greedy_window_is_decoded_again_with_beam_search(
    engine: WhisperEngine, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy tiny.en put the first 30 s window of this leg's speech down as "Hi, Kazul" on an
    AVX-512 VNNI CPU (19 words for the leg; the AVX2 machine decoded it whole). Such a window
    (log-probability below the threshold, not silence) is decoded again with beam 5 and the
    better of the two is kept."""
    from asr import engine as engine_module
    from voice.vad import detect_speech

    leg = load_audio(shared_data / "diarization" / "spokenwoz_calls_8k" / "SNG0072.wav").channel(1)
    speech = [(r.start, r.end) for r in detect_speech(leg)]
    greedy = AsrOptions(language="en", beam_size=1)
    result = engine.transcribe(leg, greedy, speech=speech)
    assert len(result.words) >= 50 and result.words[0].start < 10.0  # the whole leg, from its start
    # On any CPU: with every window counted unsure, each is decoded again, and a window keeps the
    # beam's words only where they score better.
    calls = []
    run = engine._run
    monkeypatch.setattr(engine, "_run", lambda samples, kwargs, **k: calls.append(kwargs["beam_size"])
                        or run(samples, kwargs, **k))
    strict = engine.transcribe(leg, AsrOptions(language="en", beam_size=1, log_prob_threshold=0.0), speech=speech)
    assert calls[0] == 1 and len(calls) >= 3  # one greedy pass, then each window again
    assert set(calls[1:]) == {engine_module.UNSURE_WINDOW_BEAM}
    starts = [w.start for w in strict.words]
    assert len(starts) >= 50 and starts == sorted(starts)  # each window's words where they were said
