"""Streaming transcription of one audio stream in two passes: LocalAgreement partials, then a
whole-turn final decode.

:class:`StreamingTranscriber` is the model-agnostic policy object (whisper_streaming's
``OnlineASRProcessor`` shape, gated by VAD turns like its ``VACOnlineASRProcessor``):

- ``insert_audio(chunk, at)`` appends 16 kHz audio; outside a turn only a short pre-roll is
  kept, so silence is never decoded;
- ``begin_turn(start)`` when the VAD hears speech, ``note_pause(since)`` while it hears a pause;
- ``process()`` decodes the turn's buffer and returns a :class:`TranscriptUpdate` (committed
  words never change, tentative ones may); committed text is the prompt once the buffer is
  trimmed at a committed word;
- ``finish(end)`` decodes the whole turn once more and returns a :class:`TurnTranscript` whose
  words *replace* the streamed ones (so the stored transcript is as good as an offline decode);
- ``reset(offset)`` starts over at a new stream time.

``process`` and ``finish`` call the decoder synchronously. A live server splits each into a
request (taken on any thread: :meth:`StreamingTranscriber.partial_request`,
:meth:`StreamingTranscriber.close_turn`), a decode on a worker (:class:`TurnDecoder`), and an
apply step (:meth:`StreamingTranscriber.apply_partial`, :meth:`StreamingTranscriber.apply_final`)
that drops stale results. The object is guarded by a lock so a request can be taken on a worker
thread while audio is inserted on another; it has no clock (time comes from the audio).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from asr.final_context import MAX_OVERLAP_WORDS, own_words
from asr.policy import LocalAgreement, shifted
from asr.samples import SampleBuffer
from asr.turn_decoding import SAMPLE_RATE, DecodeRequest, TurnDecoder, WhisperTurnDecoder
from asr.types import AsrInputError, Word
from asr.words import join_words

__all__ = [
    "SAMPLE_RATE",
    "DecodeRequest",
    "StreamingConfig",
    "StreamingTranscriber",
    "TranscriptUpdate",
    "TurnDecoder",
    "TurnTranscript",
    "WhisperTurnDecoder",
]

_HISTORY_TURNS = 8  # earlier turns' texts kept for prompts (more than prompt_chars needs)
MAX_GAP_FILL = 5.0
"""Seconds of a gap in the input that :meth:`StreamingTranscriber.insert_audio` fills with
silence; past that the clock jumps (a hold may last minutes)."""


@dataclass(frozen=True)
class StreamingConfig:
    """Latency contract and decoding choices of a :class:`StreamingTranscriber`.

    Defaults are the measured choice for tiny.en on 2 CPU cores (docs/results/streaming.md).
    """

    step: float = 1.0
    """Seconds of new turn audio between two partial decodes (whisper_streaming's min chunk).
    measured (4 calls x 40 s, audio-time latency): 0.5 s cut commit p50 from 1.04 to 0.67 s
    but took 54 % more partial decodes; 1 s is the default where decodes are scarce (CPU)."""

    first_decode: float = 1.0
    """Seconds of turn audio (pre-roll included) before the first partial decode."""

    agreement: int = 2
    """LocalAgreement's n: consecutive hypotheses that must agree before a word is committed."""

    pause_commit: float | None = 0.25
    """When the VAD has heard this many seconds of pause inside a turn, decode at once and commit
    the words that end before the pause, without waiting for a second hypothesis. ``None``
    gives plain LocalAgreement. measured (4 calls x 40 s): commit p50/p95 1.24/2.16 s ->
    1.04/1.90 s, partial WER 26.9 -> 26.0 %, for 17 % more partial decodes. With
    ``early_final`` the early final does this commit instead (one decode per pause)."""

    early_final: bool = False
    """Start the turn's final decode ``end_pad`` seconds into a pause, before the VAD closes
    the turn (``min_silence_duration`` in), on exactly the audio the final would get. If the
    turn closes at that pause, the final is already under way; if speech resumes, its words
    serve as the pause commit of the open turn (:meth:`StreamingTranscriber.apply_early`).
    No partial starts in a pause until its early final is requested: with one decode at a
    time the final would wait for it, and the final supersedes it. For the live server, where
    the end of a turn -> final delay is the goal. measured (1 call, 2 cores): holding partials
    took VAD close -> final p50 from 644 to 407-506 ms and commit p95 from 2.81 to 2.1-3.4 s."""

    pre_roll: float = 0.4
    """Seconds of audio before the VAD onset included in the turn (soft word onsets; the batch
    path pads regions by the same 0.4 s, measured in voice.vad.VadParams.speech_pad)."""

    end_pad: float = 0.4
    """Seconds of audio after the last speech included in the final decode."""

    trim_after: float = 12.0
    """Once the partial buffer is longer than this, it is cut at the last committed word and the
    committed text becomes the prompt (bounds decode cost in long turns)."""

    prompt_chars: int = 200
    """At most this many characters of earlier text (previous turns, trimmed committed words)
    are handed to the decoder as its prompt; 0 disables prompting."""

    final_prompt: bool = False
    """Whether the final decode is prompted with the previous turns' text. measured: off; with
    it, per-turn final WER rose from 30.2 % to 37.1 % (tiny.en, SpokenWOZ)."""

    final_context: float = 10.0
    """Seconds of the stream's earlier speech (previous turns' audio, joined) put before the
    turn in its final decode, as the offline decode of joined VAD regions sees it; words of
    that context are dropped from the result. measured (greedy): the turn alone 29.1 % WER,
    with 10 s of context 27.9 %, offline 25.8 % (tiny.en, 126 SpokenWOZ turns)."""

    def __post_init__(self) -> None:
        if self.step <= 0 or self.first_decode < 0 or self.trim_after <= self.step:
            raise AsrInputError(
                f"need step > 0, first_decode >= 0, trim_after > step (got {self.step}, "
                f"{self.first_decode}, {self.trim_after})",
                hint="the defaults are 1.0, 1.0 and 12.0 seconds",
            )
        if self.agreement < 1 or min(self.pre_roll, self.end_pad) < 0:
            raise AsrInputError("agreement must be >= 1 and paddings >= 0", hint="see defaults")

    @property
    def latency(self) -> float:
        """Expected algorithmic commit latency in seconds without pauses (decode time excluded):
        a word waits on average half a step to be heard, then ``agreement - 1`` more steps."""
        return self.step * (self.agreement - 0.5)


@dataclass(frozen=True)
class TranscriptUpdate:
    """The open turn's transcript after a partial decode."""

    turn: int
    committed: list[Word]
    """Every committed word of the turn so far (stable, never retracted)."""
    tentative: list[Word]
    """Words after the committed ones that the next decode may still change."""
    newly_committed: list[Word]
    """The words this update committed (a suffix of ``committed``)."""
    audio_end: float
    """Stream time of the newest audio this update decoded."""


@dataclass(frozen=True)
class TurnTranscript:
    """A closed turn's final words (whole-turn decode) and what was streamed before."""

    turn: int
    start: float
    """Stream time at which the VAD heard the turn start."""
    end: float
    """Stream time at which the turn's speech ended."""
    words: list[Word]
    """Final words (absolute times) from the whole-turn decode."""
    streamed: list[Word] = field(default_factory=list)
    """Words committed by partial decodes before the final (for comparison only)."""

    @property
    def text(self) -> str:
        """The final words as Whisper wrote them ("7 p.m.", not "7 p .m.")."""
        return join_words(self.words)


class _Turn:
    """Audio and agreement state of the open turn."""

    def __init__(self, index: int, start: float, audio_start: float, agreement: int) -> None:
        self.index = index
        self.start = start  # VAD onset
        self.audio_start = audio_start  # stream time of the first kept sample (pre-roll)
        self.audio = SampleBuffer()
        self.buffer_start = audio_start  # partial window start (moves at trims)
        self.requested_end = audio_start  # end of the newest partial request's audio
        self.requested_pause: float | None = None
        self.policy = LocalAgreement(agreement)
        self.seq = 0
        self.applied_seq = 0
        self.applied_end = audio_start  # end of the newest hypothesis fed to the policy
        self.pause_start: float | None = None
        self.early_pause: float | None = None  # pause whose early final was requested

    @property
    def end(self) -> float:
        return self.audio_start + len(self.audio) / SAMPLE_RATE

    def window(self, start: float) -> np.ndarray:
        return self.audio.view(round((start - self.audio_start) * SAMPLE_RATE))


class StreamingTranscriber:
    """Two-pass streaming ASR for one stream (one call leg); see the module docstring."""

    sample_rate = SAMPLE_RATE
    """Rate of the audio handed to :meth:`insert_audio`."""

    def __init__(
        self,
        decoder: TurnDecoder | None = None,
        config: StreamingConfig = StreamingConfig(),  # noqa: B008 - frozen
        *,
        offset: float = 0.0,
    ) -> None:
        self.decoder = decoder
        """Used by the synchronous :meth:`process` and :meth:`finish` only."""
        self.config = config
        self._lock = threading.RLock()
        self.reset(offset)

    # --- latency contract -----------------------------------------------------------------

    @property
    def step(self) -> float:
        """Seconds of new audio between partial decodes."""
        return self.config.step

    @property
    def min_chunk(self) -> float:
        """Seconds of turn audio before the first partial decode."""
        return self.config.first_decode

    @property
    def latency(self) -> float:
        """Expected algorithmic commit latency (seconds, decode time excluded)."""
        return self.config.latency

    # --- state ------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Stream time just after the newest inserted sample."""
        return self._time

    @property
    def in_turn(self) -> bool:
        """Whether a turn is open."""
        return self._turn is not None

    @property
    def turn_start(self) -> float | None:
        """Stream time at which the open turn's speech started (``None`` outside a turn)."""
        return self._turn.start if self._turn is not None else None

    @property
    def turn_index(self) -> int:
        """Number of the open turn, or of the next one when none is open."""
        return self._turn.index if self._turn is not None else self._turns_done

    def reset(self, offset: float = 0.0) -> None:
        """Forget all audio, turns and prompt history; stream time restarts at ``offset``."""
        with self._lock:
            self._time = offset
            self._pre_roll = SampleBuffer()
            self._turn: _Turn | None = None
            self._turns_done = 0
            self._history: list[str] = []
            self._context = SampleBuffer()  # earlier turns' audio for final_context
            # turn -> its words' texts (streamed, then final): tells the context's words apart
            self._spoken: dict[int, list[str]] = {}
            # turn -> (start, end, streamed words) of closed turns awaiting their final
            self._closing: dict[int, tuple[float, float, list[Word]]] = {}

    def insert_audio(self, chunk: np.ndarray, at: float | None = None) -> None:
        """Append float32 16 kHz mono samples whose first one is at stream time ``at``.

        ``at`` defaults to the end of the previous chunk. A gap is filled with silence; a gap
        longer than ``MAX_GAP_FILL`` is a jump: the clock moves to ``at`` and only the last
        ``MAX_GAP_FILL`` seconds before it are silence (a turn still open at a jump is closed
        without a final, as by :meth:`begin_turn`: call :meth:`close_turn` first). Audio
        overlapping what was already inserted is dropped.

        Raises:
            AsrInputError: ``chunk`` is not 1-D float audio.
        """
        samples = _check_chunk(chunk)
        with self._lock:
            if at is not None:
                samples = self._align(samples, at)
            if self._turn is not None:
                self._turn.audio.append(samples)
            else:
                self._pre_roll.append(samples)
                self._pre_roll.keep_last(round((self.config.pre_roll + 1.0) * SAMPLE_RATE))
            self._time += len(samples) / SAMPLE_RATE

    def begin_turn(self, start: float, *, pre_roll: bool = True, not_before: float | None = None) -> None:
        """The VAD heard speech start at stream time ``start``: open a turn (pre-roll kept).

        ``pre_roll=False`` when a long turn is split inside speech: the audio before ``start``
        is then the previous turn's, and decoding it again would repeat its last words; for
        the same reason ``not_before`` bounds the pre-roll (a turn split in a pause opens when
        speech resumes, with a pre-roll from that pause only).
        A turn that is still open is closed without a final (call :meth:`close_turn` first).
        """
        with self._lock:
            if self._turn is not None:
                self._end_turn()
            keep = self.config.pre_roll if pre_roll else 0.0
            audio_start = max(start - keep, self._time - self._pre_roll.seconds)
            if not_before is not None:
                audio_start = max(audio_start, min(not_before, start))
            turn = _Turn(self._turns_done, start, audio_start, self.config.agreement)
            skip = round((audio_start - (self._time - self._pre_roll.seconds)) * SAMPLE_RATE)
            turn.audio.append(self._pre_roll.view(max(0, skip)))
            turn.audio_start = self._time - len(turn.audio) / SAMPLE_RATE
            turn.buffer_start = turn.requested_end = turn.audio_start
            self._pre_roll = SampleBuffer()
            self._turn = turn

    def note_pause(self, since: float | None) -> None:
        """The VAD hears a pause inside the open turn since ``since`` (``None``: speech again)."""
        with self._lock:
            if self._turn is not None:
                self._turn.pause_start = since

    def partial_due(self) -> bool:
        """Whether a partial decode should run now (a step of new audio, or a fresh pause)."""
        with self._lock:
            turn = self._turn
            if turn is None or turn.end - turn.audio_start < self.config.first_decode:
                return False
            if self._early_final_pending(turn):
                return False
            if turn.end - turn.requested_end >= self.config.step - 1e-6:
                return True
            return self._pause_due(turn)

    def partial_request(self) -> DecodeRequest | None:
        """Snapshot the open turn's partial buffer (newest audio) for a decode; thread-safe."""
        with self._lock:
            turn = self._turn
            if turn is None or turn.end <= turn.buffer_start:
                return None
            turn.seq += 1
            turn.requested_end = turn.end
            turn.requested_pause = turn.pause_start
            return DecodeRequest(
                audio=turn.window(turn.buffer_start),
                offset=turn.buffer_start,
                prompt=self._prompt(turn.policy.committed, turn.buffer_start),
                final=False,
                turn=turn.index,
                seq=turn.seq,
                pause_start=turn.pause_start,
            )

    def apply_partial(
        self, request: DecodeRequest, words: Sequence[Word]
    ) -> TranscriptUpdate | None:
        """Feed a partial decode's words to LocalAgreement; ``None`` when the result is stale
        (its turn closed, or a newer request's result was applied already)."""
        with self._lock:
            turn = self._turn
            if turn is None or request.turn != turn.index or request.seq <= turn.applied_seq:
                return None
            turn.applied_seq = request.seq
            return self._agree(turn, request, words)

    def early_final_request(self) -> DecodeRequest | None:
        """The open turn's final request, ahead of the VAD's close (``config.early_final``).

        Due once per pause, when ``end_pad`` seconds of it have been heard: the request then
        equals the one :meth:`close_turn` returns if the VAD closes the turn at that pause
        (same audio, same context), so the caller may use the early decode as the final.
        ``None`` when not due.
        """
        with self._lock:
            turn = self._turn
            if not self.config.early_final or turn is None or turn.pause_start is None:
                return None
            pause = turn.pause_start
            if turn.early_pause == pause or turn.end - pause < self.config.end_pad - 1e-6:
                return None
            turn.early_pause = pause
            return replace(self._final_request(turn, pause), pause_start=pause)

    def close_turn(self, end: float | None = None) -> DecodeRequest | None:
        """The VAD closed the turn (speech ended at stream time ``end``; default: now).

        Returns the final-pass request over the whole turn (``None`` when no turn is open).
        Partial results of this turn are stale from now on.
        """
        with self._lock:
            turn = self._turn
            if turn is None:
                return None
            end = self._time if end is None else min(end, self._time)
            request = self._final_request(turn, end)
            own = request.audio[round(request.context * SAMPLE_RATE) :]
            if self.config.final_context > 0:
                self._context.append(own)
                self._context.keep_last(round(self.config.final_context * SAMPLE_RATE))
                self._remember(turn.index, [*turn.policy.committed, *turn.policy.tentative])
            self._closing[turn.index] = (turn.start, end, list(turn.policy.committed))
            tail = turn.window(request.end - self.config.pre_roll - 1.0)
            self._end_turn()
            self._pre_roll.append(tail)  # the next turn's onset may fall in this audio
            return request

    def drop_turn(self) -> int | None:
        """Forget the open turn without a final (it has nothing to decode); its number, or
        ``None`` when no turn is open. Its partial results are stale from now on."""
        with self._lock:
            turn = self._turn
            if turn is None:
                return None
            self._end_turn()
            self._pre_roll.append(turn.window(turn.end - self.config.pre_roll - 1.0))
            return turn.index

    def apply_early(self, request: DecodeRequest, words: Sequence[Word]) -> TranscriptUpdate | None:
        """Use an early final whose turn went on (speech resumed) as the open turn's pause commit.

        Its words that end before the pause are committed, as a pause partial would commit them.
        ``None`` when the turn closed or a newer hypothesis was applied already.
        """
        with self._lock:
            turn = self._turn
            if turn is None or request.turn != turn.index or request.end < turn.applied_end:
                return None
            return self._agree(turn, request, words)

    def apply_final(self, request: DecodeRequest, words: Sequence[Word]) -> TurnTranscript:
        """The closed turn's transcript from its final decode (absolute times)."""
        with self._lock:
            default: tuple[float, float, list[Word]] = (request.offset, request.end, [])
            start, end, streamed = self._closing.pop(request.turn, default)
            final = [w for w in shifted(self._own_words(request, words), request.offset) if w.text]
            if request.turn in self._spoken:  # an empty final: its streamed words were noise
                self._remember(request.turn, final)
            text = join_words(final)
            if text:
                self._history.append(text)
                del self._history[:-_HISTORY_TURNS]
            return TurnTranscript(request.turn, start, end, final, streamed)

    # --- synchronous conveniences -----------------------------------------------------------

    def process(self) -> TranscriptUpdate:
        """Decode the open turn's buffer now and return the update (empty outside a turn).

        Raises:
            AsrInputError: the transcriber was built without a decoder.
        """
        request = self.partial_request()
        if request is None:
            turn = self.turn_index
            return TranscriptUpdate(turn, [], [], [], self._time)
        update = self.apply_partial(request, self._decode(request))
        assert update is not None  # nothing else can apply in between on this thread
        return update

    def finish(self, end: float | None = None) -> TurnTranscript | None:
        """Close the open turn and decode it whole (``None`` when no turn is open)."""
        request = self.close_turn(end)
        if request is None:
            return None
        return self.apply_final(request, self._decode(request))

    # --- internals --------------------------------------------------------------------------

    def _decode(self, request: DecodeRequest) -> list[Word]:
        if self.decoder is None:
            raise AsrInputError("no decoder given", hint="pass one, or use the request API")
        return self.decoder.decode_batch([request])[0]

    def _align(self, samples: np.ndarray, at: float) -> np.ndarray:
        gap = round((at - self._time) * SAMPLE_RATE)
        if gap < 0:
            return samples[-gap:]
        fill = min(gap, round(MAX_GAP_FILL * SAMPLE_RATE))
        if gap > fill:
            # Why jump: filled only in part, the clock stayed behind ``at`` by the rest, so every
            # later contiguous chunk was padded again and all times after it came out early.
            self._jump(at - fill / SAMPLE_RATE)
        return np.concatenate([np.zeros(fill, dtype=np.float32), samples]) if fill else samples

    def _jump(self, to: float) -> None:
        """Move the clock forward to ``to`` with no audio in between (the pre-roll is older)."""
        if self._turn is not None:
            self._end_turn()
        self._pre_roll = SampleBuffer()
        self._time = to

    def _end_turn(self) -> None:
        self._turn = None
        self._turns_done += 1

    def _final_request(self, turn: _Turn, end: float) -> DecodeRequest:
        """The whole turn up to ``end + end_pad``, after up to ``final_context`` s of context."""
        stop = min(self._time, end + self.config.end_pad)
        # max(0, ...): a negative bound would slice from the end and decode most of the turn.
        audio = turn.window(turn.audio_start)[: max(0, round((stop - turn.audio_start) * SAMPLE_RATE))]
        prompt = self._prompt([], turn.audio_start) if self.config.final_prompt else None
        context = self._context.view()
        return DecodeRequest(
            audio=np.concatenate([context, audio]) if len(context) else audio,
            offset=turn.audio_start - len(context) / SAMPLE_RATE, prompt=prompt, final=True,
            turn=turn.index, seq=turn.seq + 1, context=len(context) / SAMPLE_RATE,
        )  # fmt: skip

    def _agree(self, turn: _Turn, request: DecodeRequest, words: Sequence[Word]) -> TranscriptUpdate:
        """Feed one hypothesis of the open turn to LocalAgreement (and commit up to its pause)."""
        turn.applied_end = max(turn.applied_end, request.end)
        policy = turn.policy
        policy.insert(shifted(self._own_words(request, words), request.offset))
        new = policy.flush()
        if self._pause_covers(request):
            assert request.pause_start is not None and self.config.pause_commit is not None
            # Whisper's word ends may lie a little after the VAD's last speech step.
            new += policy.commit_until(request.pause_start + self.config.pause_commit)
        self._maybe_trim(turn, request.end)
        return TranscriptUpdate(turn.index, list(policy.committed), policy.tentative, new, request.end)

    def _early_final_pending(self, turn: _Turn) -> bool:
        """A pause whose early final is due within ``end_pad``: a partial now would only delay it
        (it may hold the decoder the final needs) and be superseded by it."""
        pause = turn.pause_start
        return self.config.early_final and pause is not None and turn.early_pause != pause

    def _pause_due(self, turn: _Turn) -> bool:
        pause = turn.pause_start
        if self.config.pause_commit is None or pause is None or self.config.early_final:
            return False
        heard = turn.end - pause >= self.config.pause_commit
        return heard and (turn.requested_pause != pause) and pause > turn.policy.last_committed_end

    def _pause_covers(self, request: DecodeRequest) -> bool:
        pause = request.pause_start
        return (
            self.config.pause_commit is not None
            and pause is not None
            and request.end - pause >= self.config.pause_commit - 1e-6
        )

    def _maybe_trim(self, turn: _Turn, decoded_end: float) -> None:
        if decoded_end - turn.buffer_start <= self.config.trim_after:
            return
        policy = turn.policy
        if not policy.committed or policy.last_committed_end <= turn.buffer_start:
            # Nothing agreed for a whole buffer: force the older half so cost stays bounded.
            policy.commit_until(decoded_end - self.config.trim_after / 2)
        if policy.committed and policy.last_committed_end > turn.buffer_start:
            turn.buffer_start = policy.last_committed_end
            policy.trim(turn.buffer_start)

    def _own_words(self, request: DecodeRequest, words: Sequence[Word]) -> list[Word]:
        """The words of the request's own audio (request times): its context's are dropped
        by their text (``asr.final_context``)."""
        earlier = [text for turn in sorted(self._spoken) if turn < request.turn for text in self._spoken[turn]]
        return own_words(words, request.context, earlier[-MAX_OVERLAP_WORDS:])

    def _remember(self, turn: int, words: Sequence[Word]) -> None:
        """Keep ``words`` as the known text of ``turn`` (the few newest turns only)."""
        self._spoken[turn] = [w.text for w in words]
        for old in sorted(self._spoken)[:-_HISTORY_TURNS]:
            del self._spoken[old]

    def _prompt(self, committed: Sequence[Word], before: float) -> str | None:
        if self.config.prompt_chars <= 0:
            return None
        own = join_words([w for w in committed if w.end <= before + 1e-6])
        text = " ".join([*self._history, own]).strip()
        if not text:
            return None
        text = text[-self.config.prompt_chars :]
        return text.split(" ", 1)[-1] if len(text) == self.config.prompt_chars else text


def _check_chunk(chunk: np.ndarray) -> np.ndarray:
    if not isinstance(chunk, np.ndarray) or chunk.ndim != 1:
        raise AsrInputError(
            f"expected 1-D audio, got {getattr(chunk, 'shape', type(chunk).__name__)}",
            hint="insert one channel of float32 samples at 16 kHz",
        )
    if not np.issubdtype(chunk.dtype, np.floating):
        raise AsrInputError(f"expected float samples, got {chunk.dtype}", hint="int16 / 32768")
    return chunk.astype(np.float32, copy=False)
