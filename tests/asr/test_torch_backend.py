"""TorchWhisperDecoder on CPU with the real tiny.en weights: batching across streams changes
nothing, and it plugs into StreamingTranscriber as its TurnDecoder (short clips only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asr.models import ModelNotFoundError
from asr.streaming import DecodeRequest, StreamingTranscriber, TurnDecoder
from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder, WindowResult, _cut_loop
from asr.types import AsrOptions, Word
from voice.audio import load_audio

pytestmark = pytest.mark.model

RATE = 16000
JFK_CUT = 3.2  # a pause in JFK's speech: "And so my fellow Americans." ends before it


@pytest.fixture(scope="module")
def decoder() -> Iterator[TorchWhisperDecoder]:
    previous = torch.get_num_threads()  # process-wide: restored when the module is done
    torch.set_num_threads(2)
    try:
        try:
            loaded = TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu"))
        except ModelNotFoundError as exc:
            pytest.skip(str(exc))
        yield loaded
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def clips(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    jfk = load_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()
    folder = shared_data / "asr" / "librivox_sense_and_sensibility"
    book = load_audio(folder / "sense_and_sensibility_01_austen_64kb-0880.wav").mono()  # 3 s
    longer = load_audio(folder / "sense_and_sensibility_01_austen_64kb-0870.wav").mono()  # 7 s
    return jfk[: round(JFK_CUT * RATE)], book, longer


@pytest.fixture(scope="module")
def requests(clips: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[DecodeRequest]:
    """Three streams' requests; the longest text outlives the other two, so the decode loop
    drops the finished rows from its cache (compaction) before it ends."""
    jfk, book, longer = clips
    return [
        DecodeRequest(jfk, offset=12.0, prompt=None, final=False, turn=0),
        DecodeRequest(
            book, offset=3.0, prompt="Mr. John Dashwood had then leisure.", final=True, turn=4
        ),
        DecodeRequest(longer, offset=0.0, prompt=None, final=True, turn=1),
    ]


@pytest.fixture(scope="module")
def batched(decoder: TorchWhisperDecoder, requests: list[DecodeRequest]) -> list[list[Word]]:
    return decoder.decode_batch(requests)


def _same(a: list[Word], b: list[Word]) -> bool:
    return [(w.text, w.start, w.end) for w in a] == [(w.text, w.start, w.end) for w in b] and all(
        x.probability == pytest.approx(y.probability, abs=1e-4) for x, y in zip(a, b, strict=True)
    )


def test_it_is_a_turn_decoder(decoder: TorchWhisperDecoder) -> None:
    assert isinstance(decoder, TorchWhisperDecoder)
    protocol_method = TurnDecoder.decode_batch
    assert callable(protocol_method) and callable(decoder.decode_batch)


def test_batched_decode_equals_decoding_each_alone(
    decoder: TorchWhisperDecoder, requests: list[DecodeRequest], batched: list[list[Word]]
) -> None:
    alone = [decoder.decode_batch([r])[0] for r in requests]
    assert all(_same(b, a) for b, a in zip(batched, alone, strict=True))
    texts = [" ".join(w.text for w in words).lower() for words in batched]
    assert texts[0].startswith("and so my fellow americans")
    assert texts[1].startswith("he was not an") and "young man" in texts[1]
    assert texts[2].endswith("in his power to do for them.")


def test_word_times_are_relative_ordered_and_inside_the_clip(
    requests: list[DecodeRequest], batched: list[list[Word]]
) -> None:
    for request, words in zip(requests, batched, strict=True):
        duration = len(request.audio) / RATE
        assert words and words[0].start >= 0.0 and words[-1].end <= duration + 0.05
        assert all(
            a.start <= a.end <= b.start + 1e-6 for a, b in zip(words, words[1:], strict=False)
        )


def test_empty_and_silent_requests_give_no_words(decoder: TorchWhisperDecoder) -> None:
    silence = np.zeros(RATE, dtype=np.float32)
    empty = np.zeros(0, dtype=np.float32)
    out = decoder.decode_batch(
        [DecodeRequest(empty, 0.0, None, True, 0), DecodeRequest(silence, 0.0, None, False, 1)]
    )
    assert out == [[], []]


def test_it_drives_the_streaming_transcriber(
    decoder: TorchWhisperDecoder, clips: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    jfk, _, _ = clips
    transcriber = StreamingTranscriber(decoder)
    transcriber.insert_audio(np.zeros(RATE // 2, dtype=np.float32))
    transcriber.begin_turn(0.5)
    transcriber.insert_audio(jfk)
    update = transcriber.process()
    assert update.tentative or update.committed
    final = transcriber.finish()
    assert final is not None and "fellow americans" in final.text.lower()
    # Absolute stream times: the turn's audio starts at 0.1 s (0.4 s of pre-roll before 0.5 s).
    assert 0.1 <= final.words[0].start and final.words[-1].end <= 0.5 + JFK_CUT + 1e-6


def test_a_looping_window_is_decoded_again_without_its_prompt(
    decoder: TorchWhisperDecoder, clips: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, book, _ = clips
    strict = AsrOptions(beam_size=1, loop_compression_ratio=0.01)  # every text "loops"
    result = decoder.transcribe_windows([book], ["He was not."], [strict])[0]
    assert result.redecoded and result.text == ""  # still "looping" after the retry: cut


def test_a_loop_that_survives_the_retry_is_cut_at_its_second_occurrence(
    decoder: TorchWhisperDecoder,
) -> None:
    options = AsrOptions(loop_ngram_size=2, loop_ngram_repeats=3)
    text = " Thank you for calling. Thank you for calling. Thank you for calling. Thank you"
    tokens = decoder.tokens.encode(text)
    looped = WindowResult(tokens, [0.5] * len(tokens), text.strip(), -0.2, 0.0, redecoded=True)
    cut = _cut_loop(looped, options, decoder.tokens)
    assert cut is not None and cut.text == "Thank you for calling."
    assert cut.tokens == decoder.tokens.encode(" Thank you for calling.")
    assert len(cut.token_probs) == len(cut.tokens)
    clean = WindowResult([1], [0.9], "hello there", -0.1, 0.0)
    assert _cut_loop(clean, options, decoder.tokens) == clean


LONG_PROMPT = (
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do"
    " for your country. Mr. John Dashwood had then leisure to consider how much there might be"
    " prudently in his power to do for them."
)  # over 32 tokens: the second prompt width bucket


@pytest.fixture(scope="module")
def five(shared_data: Path, requests: list[DecodeRequest]) -> list[DecodeRequest]:
    """Five streams' requests: padded to 8 rows (3 dummy rows), texts of different lengths."""
    folder = shared_data / "asr" / "librivox_sense_and_sensibility"
    other = load_audio(folder / "sense_and_sensibility_01_austen_64kb-0920.wav").mono()  # 6 s
    rest = load_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()[round(JFK_CUT * RATE) :]
    return [
        *requests,
        DecodeRequest(other, offset=5.0, prompt=LONG_PROMPT, final=False, turn=2),
        DecodeRequest(
            rest, offset=JFK_CUT, prompt="And so my fellow Americans.", final=True, turn=1
        ),
    ]


def _shapes_seen(decoder: TorchWhisperDecoder) -> tuple[list[tuple[int, ...]], list[Any]]:
    """Records (0, rows) per encoder pass and (rows, tokens) per decoder forward."""
    seen: list[tuple[int, ...]] = []
    hooks = [
        decoder.model.encoder.register_forward_hook(
            lambda _m, args, _o: seen.append((0, args[0].shape[0]))
        ),
        decoder.model.decoder.register_forward_hook(
            lambda _m, args, _o: seen.append(tuple(args[0].shape))
        ),
    ]
    return seen, hooks


def test_a_batch_padded_to_its_bucket_gives_each_row_its_single_decode_words(
    decoder: TorchWhisperDecoder, five: list[DecodeRequest]
) -> None:
    seen, hooks = _shapes_seen(decoder)
    try:
        padded = decoder.decode_batch(five)
    finally:
        for hook in hooks:
            hook.remove()
    assert [s for s in seen if s[0] == 0] == [(0, 8)]  # one encoder pass over 8 rows
    forwards = [s for s in seen if s[0] != 0]
    assert all(rows & (rows - 1) == 0 for rows, _ in forwards)  # powers of two only
    assert (8, 64) in forwards  # the prompt pass: the long prompt's width bucket
    steps = [rows for rows, tokens in forwards if tokens == 1]
    assert steps[0] == 8 and min(steps) < 8  # finished rows were compacted to a smaller bucket
    assert all(tokens == 1 or tokens % 32 == 0 for _, tokens in forwards)
    # Unpadded reference: each request alone (one row) with exact prompt widths.
    exact = TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu", width_step=1))
    alone = [exact.decode_batch([r])[0] for r in five]
    assert all(_same(p, a) for p, a in zip(padded, alone, strict=True))
    assert all(padded)


def test_warm_up_runs_every_bucket_and_changes_no_result(
    requests: list[DecodeRequest], batched: list[list[Word]]
) -> None:
    config = TorchBackendConfig(  # a small grid: 2 row buckets, 1 prompt and 2 align widths
        device="cpu", max_rows=2, prompt_tokens=20, max_new_tokens=48, warm_up=False
    )
    small = TorchWhisperDecoder.load("tiny.en", config)
    assert small.shapes.prompt_widths() == [32] and small.shapes.align_widths() == [32, 64]
    seen, hooks = _shapes_seen(small)
    try:
        seconds = small.warm_up()
    finally:
        for hook in hooks:
            hook.remove()
    assert seconds > 0 and small.warm_up_seconds == seconds
    assert sorted(rows for kind, rows in seen if kind == 0) == [1, 2]  # encoder passes
    for rows in (1, 2):  # prompt passes, steps, alignment passes
        assert {(rows, 32), (rows, 1), (rows, 64)} <= set(seen)
    assert all(_same(s, b) for s, b in zip(small.decode_batch(requests), batched, strict=True))


def test_decode_step_graph_buffers_change_no_result(
    decoder: TorchWhisperDecoder, five: list[DecodeRequest]
) -> None:
    """The CUDA-graph path's buffers on CPU (no capture): same words as the plain loop, the
    one-token steps go through the pool's graphs, compaction moves to the smaller bucket's."""
    config = TorchBackendConfig(device="cpu", max_rows=8, cuda_graphs=True, graph_copies=1)
    graphed = TorchWhisperDecoder.load("tiny.en", config)
    assert graphed.graphs is not None
    written_at: list[tuple[int, bool]] = []  # (rows, write position given as a tensor)
    hook = graphed.model.decoder.register_forward_hook(
        lambda _m, args, _o: written_at.append((args[0].shape[0], torch.is_tensor(args[3])))
    )
    try:
        words = graphed.decode_batch(five)
    finally:
        hook.remove()
    plain = decoder.decode_batch(five)
    assert all(_same(g, p) for g, p in zip(words, plain, strict=True))
    steps = [rows for rows, by_tensor in written_at if by_tensor]
    assert steps and steps[0] == 8 and min(steps) < 8  # graph steps, then a smaller bucket's
    assert graphed.graphs.misses == 0
    taken = graphed.graphs.acquire(8)
    assert taken is not None and graphed.graphs.acquire(8) is None  # one copy: lent out
    graphed.graphs.release(taken)


def test_beam_steps_through_graph_buffers_change_no_result(five: list[DecodeRequest]) -> None:
    """Beam-5 finals through the step graphs' buffers (CPU, no capture) give the eager beam's
    words: three finals' 15 beam rows step in the 16-row bucket's graph, the cache rows follow
    their parents inside it, and the dummy row changes nothing. Beam rows beyond the largest
    bucket (8 here) step eagerly, with the same words."""
    finals = [replace(r, final=True) for r in five[:3]]
    beam = AsrOptions(beam_size=5)
    eager = TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu"), final=beam)
    expected = eager.decode_batch(finals)
    for max_rows, graph_rows in ((16, 16), (8, None)):
        config = TorchBackendConfig(
            device="cpu", max_rows=max_rows, cuda_graphs=True, graph_copies=1
        )
        graphed = TorchWhisperDecoder.load("tiny.en", config, final=beam)
        assert graphed.graphs is not None
        written_at: list[tuple[int, bool]] = []  # (rows, write position given as a tensor)
        hook = graphed.model.decoder.register_forward_hook(
            lambda _m, args, _o, seen=written_at: seen.append(
                (args[0].shape[0], torch.is_tensor(args[3]))
            )
        )
        try:
            words = graphed.decode_batch(finals)
        finally:
            hook.remove()
        assert all(_same(g, e) for g, e in zip(words, expected, strict=True))
        steps = {rows for rows, by_tensor in written_at if by_tensor}
        assert steps == ({graph_rows} if graph_rows else set())
        assert graphed.graphs.misses == 0
        assert graphed.graphs.acquire(max_rows) is not None  # given back after the loop


def _letters(text: str) -> str:
    return re.sub(r"[^a-z']", "", text.lower())


def test_beam_finals_match_faster_whisper_beam_search(
    shared_data: Path, clips: tuple[np.ndarray, np.ndarray, np.ndarray], five: list[DecodeRequest]
) -> None:
    """Finals with ``beam_size=5`` (the GPU path's finals) give CTranslate2's beam-5 text, partials
    in the same batch stay greedy, and batching changes no result. (Near-ties may still go either
    way: on JFK cut at 3.2 s CTranslate2 hears "so am I fellow", this backend "so my fellow".)"""
    from faster_whisper import WhisperModel

    from asr.models import resolve_whisper_model

    jfk = load_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()
    clips = (jfk, clips[1], clips[2])

    beamed = TorchWhisperDecoder.load(
        "tiny.en", TorchBackendConfig(device="cpu"), final=AsrOptions(beam_size=5)
    )
    reference = WhisperModel(
        str(resolve_whisper_model("tiny.en")), device="cpu", compute_type="int8"
    )
    finals = [DecodeRequest(c, 0.0, None, True, k) for k, c in enumerate(clips)]
    for request, words in zip(finals, beamed.decode_batch(finals), strict=True):
        segments, _ = reference.transcribe(
            request.audio, beam_size=5, without_timestamps=True, temperature=0.0,
            condition_on_previous_text=False,
        )  # fmt: skip
        assert _letters(" ".join(w.text for w in words)) == _letters(
            " ".join(s.text for s in segments)
        )
    mixed = beamed.decode_batch(five)  # partials and finals, prompts, one batch
    alone = [beamed.decode_batch([r])[0] for r in five]
    assert all(_same(m, a) for m, a in zip(mixed, alone, strict=True))
    greedy = TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu"))
    partials = [k for k, r in enumerate(five) if not r.final]
    plain = greedy.decode_batch([five[k] for k in partials])
    assert all(_same(mixed[k], p) for k, p in zip(partials, plain, strict=True))


def _rttm_turns(shared_data: Path, call: str, picks: tuple[int, ...]) -> list[np.ndarray]:
    """Turns of 1-12 s of a SpokenWOZ call, each from its speaker's channel, by their order."""
    folder = shared_data / "diarization" / "spokenwoz_calls_8k"
    audio = load_audio(folder / f"{call}.wav")
    turns = []
    for line in (folder / f"{call}.derived.rttm").read_text().splitlines():
        fields = line.split()
        start, duration, speaker = float(fields[3]), float(fields[4]), fields[7]
        if 1.0 <= duration <= 12.0:
            channel = audio.samples[0 if speaker == "A" else 1]
            turns.append(channel[round(start * RATE) : round((start + duration) * RATE)].copy())
    return [turns[k] for k in picks]


def test_beam_finals_end_as_ctranslate2s_beam_search_ends(shared_data: Path) -> None:
    """Only the beam's best candidates may end a hypothesis, as in CTranslate2: recording every
    ending one among the 2 x beam candidates filled the finished places before the best
    hypothesis ended, and these turns came out "Hi hello.", "giving yourself." and "...to
    Leicester." where CTranslate2 says "Hi, hello.", "Digging yourself.", "...to LASTA."."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    from asr.models import resolve_whisper_model

    turns = _rttm_turns(shared_data, "MUL1423", (0, 2, 8))
    reference = WhisperModel(str(resolve_whisper_model("tiny.en")), device="cpu", compute_type="float32")
    tokenizer = Tokenizer(reference.hf_tokenizer, False, task="transcribe", language="en")
    expected = []
    for turn in turns:
        encoded = reference.encode(pad_or_trim(reference.feature_extractor(turn))[None])
        result = reference.model.generate(
            encoded, [reference.get_prompt(tokenizer, [], without_timestamps=True)], beam_size=5, patience=1,
            length_penalty=1, max_length=448, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )  # fmt: skip
        expected.append(tokenizer.decode(result[0].sequences_ids[0]).strip())
    beamed = TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu"), final=AsrOptions(beam_size=5))
    finals = [DecodeRequest(turn, 0.0, None, True, k) for k, turn in enumerate(turns)]
    unspaced = ["".join(w.text.strip() for w in words) for words in beamed.decode_batch(finals)]
    assert unspaced == ["".join(text.split()) for text in expected]  # words keep their punctuation


def test_a_beam_loop_that_fails_to_load_its_graph_gives_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of GPU memory while copying a batch into the borrowed step graph: the graph returns to
    the pool, or every later decode of that bucket would run eagerly."""
    from asr.torch_graphs import StepGraph

    config = TorchBackendConfig(device="cpu", max_rows=16, cuda_graphs=True, graph_copies=1)
    graphed = TorchWhisperDecoder.load("tiny.en", config, final=AsrOptions(beam_size=5))
    assert graphed.graphs is not None

    def out_of_memory(*_: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(StepGraph, "load", out_of_memory)
    final = DecodeRequest(np.zeros(16000, np.float32), 0.0, None, True, 0)
    with pytest.raises(torch.OutOfMemoryError):
        graphed.decode_batch([final])
    assert graphed.graphs.acquire(8) is not None  # the beam rows' bucket (5 rows) is free again
