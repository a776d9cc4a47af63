"""One recording in, one ``CallTranscript`` out: VAD, speakers, ASR, roles, entities.

``transcribe_file(path, options)`` is a pure function of the file and the options (models are
a per-process cache, not state), so a distributed engine (Ray Data, Dask) can map it over an
archive unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voice.audio import Audio, RawFormat, load_audio
from voice.batch import engines
from voice.batch.options import TranscribeOptions
from voice.errors import AudioDecodeError
from voice.frames import Role, TimedWord, join_words
from voice.redaction import Span, mask_number_runs, merge_masks, redact_segment, with_mask_spans, word_labels
from voice.roles import SpokenTurn, decide_agent, score_text
from voice.transcript import CallTranscript, EntityMention, Segment, Speaker

if TYPE_CHECKING:
    from asr import Transcription

TELEPHONE_RATE = 8000
"""Files recorded at or below this rate are phone calls: two parties at most."""
SAME_CHANNEL_CORRELATION = 0.98
"""Stereo files whose channels correlate above this are mono saved twice (JFK: 0.9996; the two
legs of a SpokenWOZ call: about 0.0)."""
SAME_CHANNEL_MAX_LAG = 8
"""Samples (at 16 kHz) one channel may lag the other and still be the same recording: 0.5 ms."""
SILENT_CHANNEL_RMS = 1e-3
"""-60 dBFS, per 100 ms frame: a channel never louder carries no call leg (the quietest SpokenWOZ
leg: 0.022 RMS over the whole call; all-zero channels and 16-bit dither are far below)."""


@dataclass
class _Stage:
    timings: dict[str, float]

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def transcribe_file(path: str | Path, options: TranscribeOptions, *, call_id: str | None = None,
                    cpu_threads: int = 0) -> CallTranscript:
    """Transcribe one recording.

    Raises:
        AudioDecodeError: the file is empty, truncated or not audio.
        ConfigError: the options do not fit the file (e.g. a missing agent channel).
    """
    stage = _Stage({})
    raw = RawFormat(options.raw_rate, options.raw_channels) if options.raw_rate is not None else None
    with stage("decode"), _decodable(Path(path)) as readable:
        audio = load_audio(readable, raw=raw)
    mode = _speaker_mode(audio, options)
    if mode == "channels":
        segments = _transcribe_channels(audio, options, stage, cpu_threads)
    elif mode == "diarize":
        segments = _transcribe_diarized(audio, options, stage, cpu_threads)
    else:
        segments = _transcribe_single(audio, options, stage, cpu_threads)
    segments.sort(key=lambda s: (s.start, s.channel or 0))
    for index, segment in enumerate(segments):
        segment.id = index
    speakers = _speakers_with_roles(segments, audio, mode, options)
    roles = {s.id: s.role for s in speakers}
    for segment in segments:
        segment.role = roles.get(segment.speaker, "unknown")
    info = audio.info
    # measured: the samples (147 MiB for 20 min of stereo) were still held while the entity
    # model loaded, the peak of the whole file (731 MiB, RSS sampled by stage).
    del audio
    if readable != Path(path):
        info = replace(info, path=str(path))
    with stage("entities"):
        entities = _entities(segments, redact=options.redact)
    return CallTranscript(
        call_id=call_id or Path(path).stem,
        audio=info,
        speakers=speakers,
        segments=segments,
        entities=entities,
        options={**options.to_dict(), "speakers_used": mode},
        timings={k: round(v, 3) for k, v in stage.timings.items()},
        redacted=options.redact,
    )


@contextmanager
def _decodable(path: Path) -> Iterator[Path]:
    """``path``, or a link to it with a plain name when its name is not UTF-8 (a Latin-1
    ``café.wav``): the decoders encode names as strict UTF-8 and fail on such a name.
    Errors then name the real file, its odd bytes shown as ``\\xNN``."""
    try:
        str(path).encode("utf-8")
        plain = True
    except UnicodeEncodeError:
        plain = False
    if plain:
        yield path
        return
    import os
    import tempfile

    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    with tempfile.TemporaryDirectory(prefix="voice-decode-") as tmp:
        link = Path(tmp) / f"audio{path.suffix.encode('utf-8', 'surrogateescape').decode('ascii', 'replace')}"
        link.symlink_to(path.resolve())
        try:
            yield link
        except AudioDecodeError as exc:
            exc.message = exc.message.replace(str(link), shown)
            raise


def _speaker_mode(audio: Audio, options: TranscribeOptions) -> str:
    if options.speakers != "auto":
        return options.speakers
    return "channels" if _distinct_legs(audio) else "diarize"


def _distinct_legs(audio: Audio) -> bool:
    """At least two channels carry signal, and different signals: the legs of a call. A silent
    second channel or mono saved twice (even a few samples apart) is one mix to diarize."""
    live = _live_channels(audio)
    if len(live) < 2:
        return False
    first = audio.samples[live[0]]
    return any(_correlation(first, audio.samples[other], max_lag=SAME_CHANNEL_MAX_LAG) < SAME_CHANNEL_CORRELATION
               for other in live[1:])


def _live_channels(audio: Audio) -> list[int]:
    return [c for c in range(audio.num_channels) if _has_signal(audio.samples[c], audio.sample_rate // 10)]


def _has_signal(samples: np.ndarray, frame: int, frames_per_block: int = 4096) -> bool:
    """Some ``frame`` of the channel is louder than ``SILENT_CHANNEL_RMS``. Per frame, not over
    the whole file: a party who says two words in an hour is far below the floor on average."""
    floor = SILENT_CHANNEL_RMS ** 2
    block = frame * frames_per_block
    for start in range(0, len(samples), block):
        chunk = samples[start:start + block]
        whole = len(chunk) // frame * frame
        if whole and bool((np.mean(np.square(chunk[:whole].reshape(-1, frame)), axis=1) > floor).any()):
            return True
        if len(chunk) > whole and float(np.mean(np.square(chunk[whole:]))) > floor:
            return True
    return False


def _one_signal(audio: Audio) -> np.ndarray:
    """What to transcribe or diarize as one signal: the only channel with signal when the others
    are silent (a mix would halve it), else all channels mixed."""
    if audio.num_channels > 1:
        live = _live_channels(audio)
        if len(live) == 1:
            return audio.samples[live[0]]
    return audio.mono()


def _correlation(a: np.ndarray, b: np.ndarray, block: int = 1 << 20, max_lag: int = 0) -> float:
    """Pearson correlation of two channels, the best over shifts of ``b`` by up to ``max_lag``
    samples (mono saved twice one sample apart: 0.957 unshifted, 1.0 at its lag).

    In blocks: ``np.corrcoef`` on a whole hour of stereo stacks float64 copies of both (about
    1 GB more at the peak). The powers are over the whole channels, not each shifted overlap:
    ``max_lag`` samples less change them by nothing that matters at this threshold."""
    n = min(len(a), len(b))
    mean_a, mean_b = float(np.mean(a, dtype=np.float64)), float(np.mean(b, dtype=np.float64))
    lags = range(-max_lag, max_lag + 1)
    cross = np.zeros(len(lags))
    power_a = power_b = 0.0
    for start in range(0, n, block):
        stop = min(start + block, n)
        low = max(start - max_lag, 0)
        x = a[start:stop].astype(np.float64) - mean_a
        y = b[low:min(stop + max_lag, n)].astype(np.float64) - mean_b
        for i, lag in enumerate(lags):  # pairs a[t] with b[t + lag]
            first, last = max(start, -lag), min(stop, n - lag)
            if last > first:
                cross[i] += float(x[first - start:last - start] @ y[first + lag - low:last + lag - low])
        power_a += float(x @ x)
        own = y[start - low:stop - low]
        power_b += float(own @ own)
    return float(cross.max()) / np.sqrt(power_a * power_b) if power_a > 0 and power_b > 0 else 0.0


def _asr(signal: np.ndarray, options: TranscribeOptions, stage: _Stage, cpu_threads: int) -> Transcription:
    from asr import AsrOptions
    from voice.vad import detect_speech

    with stage("vad"):
        regions = detect_speech(signal)
    engine = engines.whisper_engine(options.model, options.device, cpu_threads)
    with stage("asr"):
        return engine.transcribe(
            signal,
            AsrOptions(language=options.language, beam_size=options.beam_size, word_timestamps=True),
            speech=[(r.start, r.end) for r in regions],
        )


def _to_words(words: Sequence[object]) -> list[TimedWord]:
    return [TimedWord(w.text, round(w.start, 3), round(w.end, 3), round(w.probability, 4),  # type: ignore[attr-defined]
                      leading_space=getattr(w, "leading_space", True)) for w in words]


def _text(words: Sequence[TimedWord], fallback: str) -> str:
    return join_words(words) if words else fallback.strip()


def _transcribe_channels(audio: Audio, options: TranscribeOptions, stage: _Stage, cpu_threads: int) -> list[Segment]:
    segments: list[Segment] = []
    for channel in range(audio.num_channels):
        result = _asr(audio.channel(channel), options, stage, cpu_threads)
        for seg in result.segments:
            words = _to_words(seg.words)
            text = _text(words, seg.text)
            if text:
                segments.append(Segment(0, round(seg.start, 3), round(seg.end, 3), f"S{channel}", text,
                                        channel=channel, words=words))
    return segments


def _transcribe_single(audio: Audio, options: TranscribeOptions, stage: _Stage, cpu_threads: int) -> list[Segment]:
    result = _asr(_one_signal(audio), options, stage, cpu_threads)
    segments = []
    for seg in result.segments:
        words = _to_words(seg.words)
        text = _text(words, seg.text)
        if text:
            segments.append(Segment(0, round(seg.start, 3), round(seg.end, 3), "S0", text, words=words))
    return segments


def _diarization_options(audio: Audio, options: TranscribeOptions) -> object:
    from diarize.types import DiarizationOptions

    if options.num_speakers or options.min_speakers or options.max_speakers:
        return DiarizationOptions(num_speakers=options.num_speakers, min_speakers=options.min_speakers,
                                  max_speakers=options.max_speakers)
    if audio.info.sample_rate <= TELEPHONE_RATE:
        # A phone call has at most two parties. Measured on the SpokenWOZ calls mixed to mono
        # (docs/benchmarks.md): 18.0 % DER with "at most 2" and with "exactly 2" alike; "at most"
        # also keeps one-party recordings (voicemail, IVR prompts) as one speaker.
        return DiarizationOptions(min_speakers=1, max_speakers=2)
    return DiarizationOptions()


def _transcribe_diarized(audio: Audio, options: TranscribeOptions, stage: _Stage, cpu_threads: int) -> list[Segment]:
    mono = _one_signal(audio)
    result = _asr(mono, options, stage, cpu_threads)
    with stage("diarize"):
        diarization = engines.diarizer(options.diarization, options.device).diarize(
            mono, audio.sample_rate, _diarization_options(audio, options)  # type: ignore[arg-type]
        )
    turns = [(t.start, t.end, t.speaker) for t in diarization.turns]
    labels = {spk: f"S{i}" for i, spk in enumerate(sorted({t[2] for t in turns}, key=lambda s: _first_start(turns, s)))}
    segments: list[Segment] = []
    for seg in result.segments:
        words = _to_words(seg.words)
        if not words:
            continue
        owners = assign_speakers(words, turns)
        for speaker, group in _runs(words, owners):
            segments.append(Segment(0, group[0].start, group[-1].end, labels.get(speaker, "S0") if speaker else "S0",
                                    _text(group, ""), words=group))
    return [s for s in segments if s.text]


def _first_start(turns: Sequence[tuple[float, float, str]], speaker: str) -> float:
    return min(t[0] for t in turns if t[2] == speaker)


def assign_speakers(words: Sequence[TimedWord], turns: Sequence[tuple[float, float, str]]) -> list[str | None]:
    """Speaker of each word: most overlap with a diarization turn, else the nearest turn (<= 1 s),
    else the previous word's; a segment's first words far from every turn take the nearest turn
    at any distance (not a fixed "S0", which is a real speaker's label). None: no turns at all."""
    owners: list[str | None] = []
    for word in words:
        best, best_overlap, nearest, nearest_gap = None, 0.0, None, 1.0
        for start, end, speaker in turns:
            overlap = min(end, word.end) - max(start, word.start)
            if overlap > best_overlap:
                best, best_overlap = speaker, overlap
            gap = max(start - word.end, word.start - end, 0.0)
            if gap < nearest_gap:
                nearest, nearest_gap = speaker, gap
        owners.append(best or nearest or (owners[-1] if owners else _nearest(word, turns)))
    return owners


def _nearest(word: TimedWord, turns: Sequence[tuple[float, float, str]]) -> str | None:
    gaps = [(max(start - word.end, word.start - end, 0.0), speaker) for start, end, speaker in turns]
    return min(gaps)[1] if gaps else None


def _runs(words: Sequence[TimedWord], owners: Sequence[str | None]) -> Iterator[tuple[str | None, list[TimedWord]]]:
    run: list[TimedWord] = []
    current: str | None = None
    for word, owner in zip(words, owners, strict=True):
        if run and owner != current:
            yield current, run
            run = []
        current = owner
        run.append(word)
    if run:
        yield current, run


def _speakers_with_roles(segments: list[Segment], audio: Audio, mode: str, options: TranscribeOptions) -> list[Speaker]:
    ids = sorted({s.speaker for s in segments}, key=lambda sid: min(s.start for s in segments if s.speaker == sid))
    talk = {sid: sum(s.end - s.start for s in segments if s.speaker == sid) for sid in ids}
    channel_of = {s.speaker: s.channel for s in segments}
    if mode == "channels" and options.agent_channel is not None:
        if options.agent_channel >= audio.num_channels:
            from voice.errors import ConfigError

            raise ConfigError(f"agent channel {options.agent_channel} does not exist (the file has "
                              f"{audio.num_channels} channels)", hint="use --agent-channel 0 or 1, or leave it out")
        agent: str | None = f"S{options.agent_channel}"
    else:
        decision = decide_agent([SpokenTurn(s.speaker, s.start, s.text) for s in segments], ids)
        agent = decision.agent
    speakers = []
    for sid in ids:
        role: Role
        if len(ids) == 1 and not (mode == "channels" and options.agent_channel is not None):
            evidence = sum(score_text(s.text) for s in segments)
            role = "agent" if evidence > 0 else "customer" if evidence < 0 else "unknown"
        else:
            role = "agent" if sid == agent else "customer"
        speakers.append(Speaker(sid, role, channel_of.get(sid), round(talk[sid], 3)))
    return speakers


def _entities(segments: list[Segment], *, redact: bool) -> list[EntityMention]:
    from suggest.nlu.entities import REDACTED_LABELS

    extractor = engines.entity_extractor()
    found = [[Span(e.label, e.text, e.start, e.end, e.value) for e in entities]
             for entities in extractor.extract_batch([s.text for s in segments])]
    if redact:  # the runs are named from the clear text, then the masked segments read again
        masked = _mask_number_runs(segments, found)  # once: it masks the segments in place
        changed = [i for i, seg in enumerate(segments) if id(seg) in masked]
        again = extractor.extract_batch([segments[i].text for i in changed])
        for i, entities in zip(changed, again, strict=True):
            found[i] = [Span(e.label, e.text, e.start, e.end, e.value) for e in entities]
    mentions: list[EntityMention] = []
    for segment, spans in zip(segments, found, strict=True):
        if redact:
            segment.text, segment.words, spans = redact_segment(segment.text, segment.words, spans, REDACTED_LABELS)
            spans = with_mask_spans(segment.text, segment.words, spans, REDACTED_LABELS)
        mentions.extend(EntityMention(s.label, s.text, segment.id, s.start, s.end, s.value) for s in spans)
    return mentions


def _mask_number_runs(segments: list[Segment], found: list[list[Span]]) -> set[int]:
    """Mask long digit runs per speaker across segments (numbers read out in pieces), under the
    label the extractor gave them on the clear text where it is an SSN or a card (``found``, per
    segment). Returns the ids of the segments changed."""
    labels = {id(seg): word_labels(seg.text, seg.words, spans) for seg, spans in zip(segments, found, strict=True)}
    changed: set[int] = set()
    for speaker in {s.speaker for s in segments}:
        places = [(seg, i) for seg in segments if seg.speaker == speaker for i in range(len(seg.words))]
        masked, runs = mask_number_runs([seg.words[i] for seg, i in places],
                                        [labels[id(seg)][i] for seg, i in places])
        if not runs:
            continue
        for (seg, i), word in zip(places, masked, strict=True):
            if word is not seg.words[i]:
                changed.add(id(seg))
            seg.words[i] = word
        for seg in segments:
            if id(seg) in changed and seg.speaker == speaker:
                seg.words = merge_masks(seg.words)
                seg.text = join_words(seg.words)
    return changed
