"""LocalAgreement(n) on scripted hypotheses, and the streaming transcriber on a fake decoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from asr.policy import LocalAgreement, shifted, word_key
from asr.streaming import DecodeRequest, StreamingConfig, StreamingTranscriber
from asr.types import Word

pytestmark = pytest.mark.unit

RATE = 16000


def words(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    """``text``'s words, each ``step`` long, back to back from ``start``."""
    return [
        Word(t, round(start + i * step, 3), round(start + (i + 1) * step, 3), 0.9)
        for i, t in enumerate(text.split())
    ]


def texts(ws: Sequence[Word]) -> list[str]:
    return [w.text for w in ws]


def test_commits_the_prefix_two_hypotheses_agree_on() -> None:
    policy = LocalAgreement(2)
    policy.insert(words("hello how are"))
    assert policy.flush() == []  # one hypothesis is never enough for n=2
    assert texts(policy.tentative) == ["hello", "how", "are"]
    policy.insert(words("Hello, how are you"))
    assert texts(policy.flush()) == ["Hello,", "how", "are"]  # case/punctuation-blind; newest form
    assert texts(policy.tentative) == ["you"]


def test_never_retracts_committed_words() -> None:
    policy = LocalAgreement(2)
    policy.insert(words("i want to"))
    policy.insert(words("i want to book"))
    assert texts(policy.flush()) == ["i", "want", "to"]
    policy.insert(words("hi wanted two books please"))  # the decoder changed its mind
    assert policy.flush() == []
    assert texts(policy.committed) == ["i", "want", "to"]


def test_words_of_committed_audio_are_not_committed_twice() -> None:
    policy = LocalAgreement(2)
    policy.insert(words("a table for"))
    policy.insert(words("a table for two"))
    policy.flush()
    # The buffer still holds the committed audio: it is recognised again, with shifted times.
    policy.insert(words("a table for two people", start=0.05))
    assert texts(policy.flush()) == ["two"]
    assert texts(policy.committed) == ["a", "table", "for", "two"]
    assert texts(policy.tentative) == ["people"]


def test_n_three_needs_three_agreeing_hypotheses() -> None:
    policy = LocalAgreement(3)
    policy.insert(words("one two"))
    policy.insert(words("one two three"))
    assert policy.flush() == []
    policy.insert(words("one two three four"))
    assert texts(policy.flush()) == ["one", "two"]


def test_commit_until_commits_unagreed_words_before_a_pause() -> None:
    policy = LocalAgreement(2)
    policy.insert(words("see you tomorrow bye"))
    assert texts(policy.commit_until(1.5)) == ["see", "you", "tomorrow"]
    assert texts(policy.tentative) == ["bye"]
    policy.insert(words("see you tomorrow bye bye"))
    assert texts(policy.flush()) == ["bye"]


def test_trim_keeps_committed_words_but_stops_matching_them() -> None:
    policy = LocalAgreement(2)
    policy.insert(words("a b c"))
    policy.insert(words("a b c d"))
    policy.flush()
    policy.trim(1.5)
    # After trimming, the buffer starts at 1.5 s: "c" (1.0-1.5) is gone from the audio too.
    policy.insert(words("d e", start=1.5))
    assert texts(policy.committed) == ["a", "b", "c"]
    assert texts(policy.flush()) == ["d"]


def test_word_key_and_shift() -> None:
    assert word_key("  Hello,") == "hello" and word_key("don't!") == "don't"
    moved = shifted(words("x y"), 10.0)
    assert (moved[0].start, moved[1].end) == (10.0, 11.0)
    with pytest.raises(ValueError):
        LocalAgreement(0)


class ScriptedDecoder:
    """Returns a fixed transcript, cut to the audio each request covers (times relative)."""

    def __init__(self, script: list[Word]) -> None:
        self.script = script
        self.requests: list[DecodeRequest] = []

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        self.requests.extend(requests)
        out = []
        for r in requests:
            seen = [w for w in self.script if w.start >= r.offset - 0.05 and w.end <= r.end]
            out.append(shifted(seen, -r.offset))
        return out


def feed(t: StreamingTranscriber, seconds: float) -> None:
    t.insert_audio(np.zeros(round(seconds * RATE), dtype=np.float32))


def test_transcriber_is_silent_outside_turns_and_finishes_with_a_whole_turn_decode() -> None:
    script = words("please book a table for two", start=1.0)
    decoder = ScriptedDecoder(script)
    t = StreamingTranscriber(decoder, StreamingConfig(pause_commit=None))
    feed(t, 1.0)
    assert t.process().committed == [] and decoder.requests == []  # no turn: no decode
    t.begin_turn(1.0)
    committed: list[str] = []
    for _ in range(3):
        feed(t, 1.0)
        assert t.partial_due()
        update = t.process()
        committed = texts(update.committed)
    assert committed == ["please", "book", "a", "table"]  # "for two" heard once only
    final = t.finish(end=4.0)
    assert final is not None and final.text == "please book a table for two"
    assert decoder.requests[-1].final and decoder.requests[-1].offset == pytest.approx(0.6)
    assert texts(final.streamed) == committed
    assert t.finish() is None


def test_stale_partials_are_dropped_and_pause_commits_early() -> None:
    script = words("hello there", start=0.5)
    t = StreamingTranscriber(ScriptedDecoder(script), StreamingConfig(pause_commit=0.25))
    t.begin_turn(0.5)
    feed(t, 1.8)
    t.note_pause(1.5)
    assert t.partial_due()
    update = t.process()
    assert texts(update.committed) == ["hello", "there"]  # one hypothesis, but a pause followed
    old = t.partial_request()
    assert old is not None
    t.close_turn(1.5)
    assert t.apply_partial(old, []) is None  # its turn is closed


def test_long_turns_trim_the_buffer_and_prompt_with_committed_text() -> None:
    script = words(" ".join(f"w{i}" for i in range(60)), start=0.0, step=0.5)
    decoder = ScriptedDecoder(script)
    t = StreamingTranscriber(decoder, StreamingConfig(trim_after=6.0, pause_commit=None))
    t.begin_turn(0.0)
    for _ in range(20):
        feed(t, 1.0)
        t.process()
    last = decoder.requests[-1]
    assert len(last.audio) / RATE <= 6.0 + 1.0
    assert last.prompt is not None and "w0" not in last.prompt.split()[-1]
    assert last.offset > 10.0


def test_a_turn_split_inside_speech_does_not_decode_the_previous_turns_words_again() -> None:
    script = words("one two three four five six seven eight", start=0.0, step=0.5)
    decoder = ScriptedDecoder(script)
    t = StreamingTranscriber(decoder, StreamingConfig(pause_commit=None, final_context=0.0))
    t.begin_turn(0.0)
    feed(t, 2.0)
    first = t.finish(end=2.0)  # a split at 2.0 s: the speech goes on
    t.begin_turn(2.0, pre_roll=False)
    feed(t, 2.0)
    second = t.finish(end=4.0)
    assert first is not None and second is not None
    assert first.text == "one two three four" and second.text == "five six seven eight"
    assert decoder.requests[-1].offset == pytest.approx(2.0)


def test_early_final_is_the_close_request_started_end_pad_into_a_pause() -> None:
    script = words("one two three four five six", start=0.5)
    decoder = ScriptedDecoder(script)
    config = StreamingConfig(early_final=True, end_pad=0.4, pause_commit=0.25)
    t = StreamingTranscriber(decoder, config)
    t.begin_turn(0.5)
    for _ in range(2):
        feed(t, 1.0)
        t.process()
    t.note_pause(2.0)
    feed(t, 0.3)
    assert t.early_final_request() is None  # 0.3 s of pause: not yet end_pad
    assert not t.partial_due()  # the early final does the pause commit, not a partial
    feed(t, 0.1)
    early = t.early_final_request()
    assert early is not None and early.final and early.end == pytest.approx(2.4)
    assert t.early_final_request() is None  # once per pause
    feed(t, 0.2)
    closing = t.close_turn(2.0)  # the VAD closes the turn at that pause
    assert closing is not None
    assert (closing.offset, closing.context, closing.turn) == (early.offset, early.context, early.turn)
    assert np.array_equal(closing.audio, early.audio)


@pytest.mark.parametrize("early_final", [True, False])
def test_no_partial_starts_in_a_pause_until_its_early_final_is_requested(early_final: bool) -> None:
    script = words("one two three four five six", start=0.5)
    config = StreamingConfig(early_final=early_final, step=0.25, end_pad=0.4, pause_commit=0.25)
    t = StreamingTranscriber(ScriptedDecoder(script), config)
    t.begin_turn(0.5)
    feed(t, 1.5)
    t.process()
    t.note_pause(1.5)
    feed(t, 0.3)  # a whole step of new audio, all of it pause
    assert t.partial_due() is not early_final  # without early finals: the pause partial
    feed(t, 0.1)
    if early_final:
        assert t.early_final_request() is not None
        assert t.partial_due()  # requested: speech may resume, partials go on


def test_an_early_final_whose_turn_goes_on_commits_the_words_before_the_pause() -> None:
    script = words("one two three four five six", start=0.5)
    t = StreamingTranscriber(ScriptedDecoder(script), StreamingConfig(early_final=True))
    t.begin_turn(0.5)
    feed(t, 2.0)
    t.note_pause(2.0)
    feed(t, 0.4)
    early = t.early_final_request()
    assert early is not None
    t.note_pause(None)  # speech again before the VAD closed the turn
    words_heard = ScriptedDecoder(script).decode_batch([early])[0]
    update = t.apply_early(early, words_heard)
    assert update is not None and texts(update.committed) == ["one", "two", "three"]
    feed(t, 1.0)
    assert t.early_final_request() is None  # no pause now
    t.close_turn(3.5)
    assert t.apply_early(early, words_heard) is None  # its turn is closed


def test_a_gap_longer_than_the_fill_moves_the_clock_to_the_audio_after_it() -> None:
    # A hold: 20 s without audio, then chunks stamped with their stream times. Filled with 5 s
    # of silence only, the clock stayed 15 s behind, and each later chunk was padded again.
    script = words("after the hold", start=21.1, step=0.3)
    t = StreamingTranscriber(ScriptedDecoder(script), StreamingConfig(pause_commit=None, final_context=0.0))
    t.insert_audio(np.zeros(RATE, dtype=np.float32), at=0.0)
    t.insert_audio(np.zeros(RATE // 10, dtype=np.float32), at=21.0)
    assert t.time == pytest.approx(21.1)
    t.begin_turn(21.1)
    for i in range(1, 11):
        t.insert_audio(np.zeros(RATE // 10, dtype=np.float32), at=21.0 + i / 10)
    assert t.time == pytest.approx(22.1)
    final = t.finish(end=22.0)
    assert final is not None and final.text == "after the hold"
    assert (final.words[0].start, final.words[-1].end) == pytest.approx((21.1, 22.0))


def test_a_short_gap_is_still_filled_with_silence() -> None:
    t = StreamingTranscriber(config=StreamingConfig(final_context=0.0, end_pad=0.0))
    t.insert_audio(np.ones(RATE, dtype=np.float32), at=0.0)
    t.insert_audio(np.ones(RATE, dtype=np.float32), at=3.0)
    assert t.time == pytest.approx(4.0)
    t.begin_turn(3.0)  # 0.4 s of pre-roll: the end of the gap
    request = t.close_turn(4.0)
    assert request is not None and request.offset == pytest.approx(2.6)
    pre_roll = round(0.4 * RATE)
    assert not request.audio[:pre_roll].any() and request.audio[pre_roll:].all()


def test_a_close_dated_before_the_turn_began_decodes_none_of_its_audio() -> None:
    t = StreamingTranscriber(config=StreamingConfig(final_context=0.0))
    feed(t, 5.0)
    t.begin_turn(5.0, pre_roll=False)
    feed(t, 1.0)
    request = t.close_turn(4.0)  # a negative slice bound decoded all but its last 0.6 s
    assert request is not None and len(request.audio) == 0
