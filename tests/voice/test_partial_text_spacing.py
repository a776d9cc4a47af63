"""Partials read as their final does: Whisper's attached pieces ("7 p.m.", "Wi-Fi.") stay
attached in a partial's words, its event ``text``, the console, a speaker's piece of a turn and
redaction masks, instead of "7 p .m." and "Wi -Fi." (``TimedWord.leading_space``,
:func:`voice.frames.join_words`).

Tests are marked one by one (``unit``, ``model``, ``e2e``) rather than by module: the join and
redaction rules are unit tests, one check runs tiny.en on a real SpokenWOZ leg and one the agent
console in chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.asr.test_final_words import _leg
from voice.frames import TimedWord, TranscriptFinalFrame, TranscriptPartialFrame, join_words
from voice.processors.redact import LiveRedactor
from voice.redaction import Hidden, NumberMask, Span, mask_number_runs, merge_masks, redact_segment
from voice.server.events import frame_to_event


def _w(text: str, at: float, attached: bool = False) -> TimedWord:
    return TimedWord(text, at, at + 0.2, 0.9, leading_space=not attached)


def _seven_pm(at: float = 0.0) -> list[TimedWord]:
    """"at 7 p.m." as Whisper writes it: " at" " 7" " p" ".m."."""
    return [_w("at", at), _w("7", at + 0.3), _w("p", at + 0.6), _w(".m.", at + 0.8, attached=True)]


@pytest.mark.unit
def test_join_words_writes_a_space_only_before_words_that_start_one() -> None:
    assert join_words(_seven_pm()) == "at 7 p.m."
    assert join_words([_w("free", 0.0), _w("Wi", 0.3), _w("-Fi.", 0.5, attached=True)]) == "free Wi-Fi."
    # An attached first word gets no space before it; empty words and words that still carry
    # Whisper's space (an older recording) read as before.
    words = [_w(".m.", 0.0, attached=True), _w(" on", 0.2), _w("", 0.4), _w(" Sunday", 0.5)]
    assert join_words(words) == ".m. on Sunday"
    assert join_words([]) == ""


@pytest.mark.unit
def test_positional_construction_keeps_its_meaning() -> None:
    assert TimedWord("hi", 0.0, 0.5, 0.8) == TimedWord("hi", 0.0, 0.5, 0.8, leading_space=True)
    mask = NumberMask("[PHONE]", 0.0, 1.0, 0.9, Hidden.of("41111111"))  # a subclass's own field stays 5th
    assert mask.hidden == Hidden.of("41111111") and mask.leading_space is True


@pytest.mark.unit
def test_partial_event_text_and_words_keep_attached_pieces() -> None:
    words = [_w("Okay,", 0.0), *_seven_pm(0.5)]
    frame = TranscriptPartialFrame(leg="inbound", committed=words[:4], tentative=words[4:], audio_time=2.0)
    event = frame_to_event(frame)
    assert event is not None
    assert event["text"] == "Okay, at 7 p.m."
    assert event["tentative"] == [{"text": ".m.", "start": 1.3, "end": 1.5, "probability": 0.9, "leading_space": False}]
    assert all("leading_space" not in w for w in event["committed"])  # only on attached pieces


@pytest.mark.unit
def test_a_speakers_piece_of_a_turn_keeps_attached_pieces() -> None:
    from diarize.streaming import SpeakerRun
    from voice.processors.speakers import _piece

    words = [_w("Yes.", 0.0), *_seven_pm(0.5)]
    frame = TranscriptFinalFrame(turn_id="t1", leg="mono", text="Yes. at 7 p.m.", words=words, start=0.0,
                                 end=1.5, audio_time=1.5)
    assert _piece(frame, SpeakerRun(1, 5, "S1"), 1).text == "at 7 p.m."


@pytest.mark.unit
def test_a_mask_takes_its_first_words_spacing_and_the_text_stays_attached() -> None:
    # " call" " 555" "-123" "-4567" " at" " 7" " p" ".m.": the phone number's pieces are masked
    # into one mask spaced as " 555" was; "p.m." after it stays attached.
    words = [_w("call", 0.0), _w("555", 0.3), _w("-123", 0.5, True), _w("-4567", 0.7, True), *_seven_pm(1.0)]
    text = join_words(words)
    assert text == "call 555-123-4567 at 7 p.m."
    phone = Span("PHONE", "555-123-4567", 5, 17, "555-123-4567")
    redacted, masked, spans = redact_segment(text, words, [phone], {"PHONE"})
    assert redacted == "call [PHONE] at 7 p.m." == join_words(masked)
    assert [(w.text, w.leading_space) for w in masked][1:] == [
        ("[PHONE]", True), ("at", True), ("7", True), ("p", True), (".m.", False)]
    assert spans == [Span("PHONE", "[PHONE]", 5, 12, None)]
    # merged masks take the first word's spacing
    merged = merge_masks([_w("[PHONE]", 0.0, attached=True), _w("[PHONE]", 0.2)])
    assert [(w.text, w.leading_space) for w in merged] == [("[PHONE]", False)]


@pytest.mark.unit
def test_a_partials_digit_run_masks_read_apart_and_the_rest_stays_attached() -> None:
    # Masked one for one (a partial's masks are not merged), the attached pieces of a number
    # read "[PHONE] [PHONE] [PHONE]", not "[PHONE][PHONE][PHONE]"; "p.m." keeps its spacing.
    words = [_w("call", 0.0), _w("555", 0.3), _w("-123", 0.5, True), _w("-4567", 0.7, True), *_seven_pm(1.0)]
    masked, runs = mask_number_runs(words)
    assert runs == 1 and join_words(masked) == "call [PHONE] [PHONE] [PHONE] at 7 p.m."
    frame = TranscriptPartialFrame(leg="inbound", committed=words[:5], tentative=words[5:], audio_time=2.0)
    event = frame_to_event(LiveRedactor(frozenset({"PHONE"})).partial(frame))
    assert event is not None and event["text"] == "call [PHONE] [PHONE] [PHONE] at 7 p.m."


@pytest.mark.model
def test_a_real_partial_shows_wi_fi_as_its_final_does(shared_data: Path) -> None:
    # SpokenWOZ SNG0072, leg B, 43.9-51.8 s: "... free parking, free Wi-Fi." Whisper writes
    # " Wi" "-Fi."; tiny.en's greedy partials have it from 7.5 s on. The partial event read
    # "free Wi -Fi." while the final read "free Wi-Fi.".
    from asr import AsrOptions
    from asr.live import load_streaming_engine
    from asr.streaming import SAMPLE_RATE, StreamingConfig, StreamingTranscriber, WhisperTurnDecoder
    from voice.processors.asr_legs import timed

    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=2, encoder_window="trimmed")
    decoder = WhisperTurnDecoder(engine, partial=AsrOptions(beam_size=1), final=AsrOptions(beam_size=5))
    audio = _leg(shared_data, "SNG0072", 1, 43.9, 51.8)
    transcriber = StreamingTranscriber(decoder, StreamingConfig(final_context=0.0))
    transcriber.begin_turn(0.0)
    texts = []
    step = SAMPLE_RATE // 2
    for at in range(0, len(audio), step):
        transcriber.insert_audio(audio[at : at + step])
        update = transcriber.process()
        frame = TranscriptPartialFrame(leg="inbound", committed=timed(update.committed),
                                       tentative=timed(update.tentative), audio_time=(at + step) / SAMPLE_RATE)
        event = frame_to_event(frame)
        assert event is not None
        texts.append(event["text"])
    final = transcriber.finish()
    assert final is not None and "free Wi-Fi." in final.text, final.text
    with_wifi = [t for t in texts if "Wi" in t]
    assert with_wifi, texts
    assert all("Wi-Fi" in t and "Wi -Fi" not in t for t in with_wifi), with_wifi


@pytest.mark.model
def test_the_batched_decoders_words_keep_attached_pieces(shared_data: Path) -> None:
    # The GPU servers' decoder (asr.batched) stripped every piece's space: its partials and
    # finals read "free Wi -Fi." (it runs on CPU too, only slower).
    from asr import AsrOptions
    from asr.batched import BatchedWhisperDecoder
    from asr.live import load_streaming_engine
    from asr.turn_decoding import DecodeRequest
    from voice.processors.asr_legs import timed

    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=2)
    decoder = BatchedWhisperDecoder(engine, final=AsrOptions(beam_size=5))
    request = DecodeRequest(audio=_leg(shared_data, "SNG0072", 1, 43.9, 51.8), offset=0.0, prompt=None,
                            final=True, turn=0)
    (words,) = decoder.decode_batch([request])
    assert "free Wi-Fi." in join_words(timed(words)), words


@pytest.mark.e2e
def test_the_console_shows_a_partial_as_its_event_text(tmp_path: Path) -> None:
    from tests.e2e.browser import chromium, open_console, wait_until
    from tests.server.harness import ScriptedCall, ServerThread, make_services, new_app
    from voice.store.agents import AgentStore

    services = make_services(tmp_path)
    token = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        call = ScriptedCall(services, "CA-spacing", agent_id="alice")
        server.run(call.start())
        page = open_console(browser, server.url, token)
        # committed "at 7 p", tentative ".m. on" (attached to the committed "p"), then "free Wi-Fi."
        for committed, tentative in ((_seven_pm()[:3], [*_seven_pm()[3:], _w("on", 1.0)]),
                                     ([_w("free", 2.0), _w("Wi", 2.3)], [_w("-Fi.", 2.5, attached=True)])):
            frame = TranscriptPartialFrame(leg="inbound", committed=committed, tentative=tentative,
                                           audio_time=3.0, role="customer", speaker="inbound")
            server.run(call.recorder.process_frame(frame))
            shown = join_words([*committed, *tentative])
            wait_until(page, f"""(() => {{ const row = document.querySelector('.partial[data-leg="inbound"]');
                return row !== null && row.querySelector('.committed').textContent
                    + row.querySelector('.tentative').textContent === {shown!r}; }})()""")
        assert page.script_errors == []


@pytest.mark.model
def test_a_batch_transcript_keeps_attached_pieces_and_round_trips_them(shared_data: Path, tmp_path: Path) -> None:
    # `voice transcribe` joined its words with a space each: "free Wi -Fi." in the segment text.
    # Transcript schema 1.1 keeps the flag on attached words only, so other words look as in 1.0.
    import soundfile as sf

    from voice.batch.options import TranscribeOptions
    from voice.batch.pipeline import transcribe_file
    from voice.transcript import CallTranscript

    clip = tmp_path / "wifi.wav"
    sf.write(clip, _leg(shared_data, "SNG0072", 1, 43.9, 51.8), 16000)
    transcript = transcribe_file(clip, TranscribeOptions(model="tiny.en", beam_size=5, speakers="none"))
    text = " ".join(s.text for s in transcript.segments)
    assert "Wi-Fi" in text and "Wi -Fi" not in text, text
    data = transcript.to_dict()
    assert data["schema_version"] == "1.1"
    words = [w for s in data["segments"] for w in s["words"]]
    attached = [w for w in words if "leading_space" in w]
    assert attached and all(w["leading_space"] is False for w in attached), attached
    assert len(attached) < len(words)
    again = CallTranscript.from_dict(data)
    assert [join_words(s.words) for s in again.segments] == [s.text for s in transcript.segments]
