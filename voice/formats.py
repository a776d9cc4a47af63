"""Standard output formats of a call transcript: JSON, RTTM, SRT and WebVTT.

- JSON is ``CallTranscript.to_json`` (the documented schema).
- RTTM has one ``SPEAKER`` line per segment (NIST format, as read by pyannote and dscore).
- SRT and WebVTT cues carry the speaker: an ``Agent:`` prefix in SRT, a ``<v Agent>`` voice
  tag in VTT. Long segments are split into readable cues (at most two lines of 42 characters,
  7 s, no long pause inside), timed by the word timestamps when they line up with the text.

Cue text always comes from ``segment.text``, never from the words: a redacted transcript masks
the text, and subtitles must not bring the original words back.

``write_outputs`` writes each file atomically (temporary file, fsync, rename), so a killed run
leaves either the previous file or the complete new one, never half of one.
"""

from __future__ import annotations

import bisect
import html
import os
import re
import textwrap
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from voice.errors import ConfigError
from voice.transcript import CallTranscript, Segment

FORMATS = ("json", "rttm", "srt", "vtt")
"""Every format ``write_outputs`` knows, in its default order."""


@dataclass(frozen=True)
class CueOptions:
    """How segments are cut into subtitle cues (defaults follow common broadcast guidelines)."""

    line_width: int = 42
    """Most characters on one subtitle line."""
    max_lines: int = 2
    """Most lines in one cue; with ``line_width`` this bounds the cue text."""
    max_duration: float = 7.0
    """Longest cue in seconds."""
    max_gap: float = 1.5
    """A pause between two words longer than this (seconds) starts a new cue."""
    min_duration: float = 0.2
    """Shortest cue in seconds: ASR words often have start == end, and players never show a
    cue that ends where it starts. Cut short where the next cue starts sooner."""


@dataclass(frozen=True)
class Cue:
    """One subtitle: a piece of one segment's text with its time span and speaker label."""

    start: float
    end: float
    label: str
    text: str


@dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float


def speaker_labels(transcript: CallTranscript) -> dict[str, str]:
    """Display name per speaker id: the role ("Agent"), or the id if the role is unknown/shared."""
    speaker_ids = list(
        dict.fromkeys(
            [s.id for s in transcript.speakers] + [g.speaker for g in transcript.segments]
        )
    )
    roles = {speaker_id: transcript.role_of(speaker_id) for speaker_id in speaker_ids}
    for segment in transcript.segments:  # a segment may know a role its speaker entry lacks
        if roles[segment.speaker] == "unknown":
            roles[segment.speaker] = segment.role
    labels = {}
    for speaker_id, role in roles.items():
        shared = sum(1 for r in roles.values() if r == role) > 1
        labels[speaker_id] = speaker_id if role == "unknown" or shared else role.capitalize()
    return labels


def to_rttm(transcript: CallTranscript) -> str:
    """NIST RTTM, one line per segment: ``SPEAKER uri 1 start dur <NA> <NA> who <NA> <NA>``."""
    uri = _no_spaces(transcript.call_id)
    lines = [
        f"SPEAKER {uri} 1 {s.start:.3f} {max(0.0, s.end - s.start):.3f} <NA> <NA> "
        f"{_no_spaces(s.speaker)} <NA> <NA>"
        for s in sorted(transcript.segments, key=lambda s: (s.start, s.end))
    ]
    return "".join(line + "\n" for line in lines)


def cues(transcript: CallTranscript, options: CueOptions | None = None) -> list[Cue]:
    """The transcript cut into subtitle cues, ordered by start time."""
    options = options or CueOptions()
    labels = speaker_labels(transcript)
    result: list[Cue] = []
    for segment in transcript.segments:
        label = labels[segment.speaker]

        def fits(text: str, prefix: str = f"{label}: ") -> bool:
            # The SRT prefix shares the first line with the text; VTT uses the same cues.
            return len(_wrap(prefix + text, options.line_width)) <= options.max_lines

        for group in _group_tokens(_tokens(segment), fits, options):
            text = " ".join(token.text for token in group)
            result.append(Cue(group[0].start, max(group[-1].end, group[0].start), label, text))
    return _lengthen_short_cues(sorted(result, key=lambda c: (c.start, c.end)), options.min_duration)


def _lengthen_short_cues(ordered: list[Cue], min_duration: float) -> list[Cue]:
    """Cues of at least ``min_duration``, except where that would run into the next cue that
    starts later (a cue starting at the same time as another is lengthened regardless)."""
    starts = [cue.start for cue in ordered]
    out = []
    for cue in ordered:
        if cue.end - cue.start >= min_duration:
            out.append(cue)
            continue
        following = bisect.bisect_right(starts, cue.start)  # the first cue that starts later
        end = cue.start + min_duration
        if following < len(starts):
            end = min(end, starts[following])
        out.append(Cue(cue.start, max(cue.end, end), cue.label, cue.text))
    return out


def to_srt(transcript: CallTranscript, options: CueOptions | None = None) -> str:
    """SubRip subtitles; each cue starts with the speaker label (``Agent: ...``)."""
    options = options or CueOptions()
    blocks = []
    for index, cue in enumerate(cues(transcript, options), start=1):
        # "-->" inside the text would read as a timing line to SRT parsers.
        lines = _wrap(f"{cue.label}: {cue.text}".replace("-->", "->"), options.line_width)
        timing = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{index}\n{timing}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def to_vtt(transcript: CallTranscript, options: CueOptions | None = None) -> str:
    """WebVTT subtitles; each cue is a ``<v Label>`` voice span, text escaped for VTT."""
    options = options or CueOptions()
    blocks = ["WEBVTT\n"]
    for cue in cues(transcript, options):
        lines = [html.escape(line, quote=False) for line in _wrap(cue.text, options.line_width)]
        voice = html.escape(cue.label, quote=False)
        timing = f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}"
        blocks.append(f"{timing}\n<v {voice}>" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def to_json(transcript: CallTranscript) -> str:
    """The documented transcript schema as pretty JSON, ending with a newline."""
    return transcript.to_json() + "\n"


_RENDERERS: dict[str, tuple[str, Callable[[CallTranscript], str]]] = {
    "json": (".json", to_json),
    "rttm": (".rttm", to_rttm),
    "srt": (".srt", to_srt),
    "vtt": (".vtt", to_vtt),
}


def write_outputs(
    transcript: CallTranscript, out_dir: str | Path, name: str, formats: Iterable[str] = FORMATS
) -> list[Path]:
    """Write ``<out_dir>/<name>.<ext>`` for each format, atomically; returns the paths in order.

    Raises:
        ConfigError: an unknown format, or a ``name`` that is empty or contains a path separator.
        OSError: the directory cannot be created or written.
    """
    wanted = list(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in wanted if f not in _RENDERERS]
    if unknown:
        raise ConfigError(
            f"unknown output format(s) {unknown}", hint=f"choose from {', '.join(FORMATS)}"
        )
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise ConfigError(
            f"invalid output name {name!r}", hint="use a plain file name such as the call id"
        )
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in wanted:
        extension, render = _RENDERERS[fmt]
        path = directory / f"{name}{extension}"
        write_atomic(path, render(transcript))
        paths.append(path)
    return paths


def write_atomic(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` (UTF-8); readers see the old or new file, never half."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with 0o666 lets the umask decide permissions, like a plain open() would.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself is already synced
    finally:
        os.close(fd)


def _tokens(segment: Segment) -> list[_Token]:
    """The segment's whitespace tokens with times: from its words when they line up one to one,
    otherwise spread over the segment in proportion to their length."""
    texts = segment.text.split()
    if not texts:
        return []
    words = segment.words
    if len(words) == len(texts):
        return [_Token(text, w.start, w.end) for text, w in zip(texts, words, strict=True)]
    seconds_per_char = max(0.0, segment.end - segment.start) / len(" ".join(texts))
    tokens, position = [], 0
    for text in texts:
        start = segment.start + seconds_per_char * position
        tokens.append(_Token(text, start, start + seconds_per_char * len(text)))
        position += len(text) + 1
    return tokens


def _group_tokens(
    tokens: list[_Token], fits: Callable[[str], bool], options: CueOptions
) -> list[list[_Token]]:
    """Greedy cue building: break when the text no longer fits, the cue gets too long or a
    pause comes; past half the lines, also break after a sentence end, which reads better."""
    groups: list[list[_Token]] = []
    current: list[_Token] = []
    text = ""
    for token in tokens:
        if current:
            candidate = f"{text} {token.text}"
            too_slow = token.end - current[0].start > options.max_duration
            paused = token.start - current[-1].end > options.max_gap
            sentence_end = (
                len(text) > options.line_width * options.max_lines // 2
                and _ENDS_SENTENCE.search(current[-1].text) is not None
            )
            if not fits(candidate) or too_slow or paused or sentence_end:
                groups.append(current)
                current, text = [], ""
        current.append(token)
        text = f"{text} {token.text}" if text else token.text
    if current:
        groups.append(current)
    return groups


_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]*$")


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def _timestamp(seconds: float, decimal_mark: str) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


def _no_spaces(value: str) -> str:
    """RTTM fields are whitespace-separated; an empty field would shift the columns."""
    return re.sub(r"\s+", "_", value.strip()) or "unknown"
