"""Reference transcripts on disk: readers for TXT, TSV and STM, and test-set discovery.

Layouts understood (those of ``shared/data/asr`` and ``shared/data/diarization``), per folder:

- ``transcription.tsv`` with a ``reference`` column, keyed by its first column: a relative
  audio path (``wav/agent-user.wav``) or an utterance id (``<id>.wav`` next to the table).
  When a folder has one, its ``.txt`` files are ignored (they repeat the table).
- ``<name>.refs.tsv`` keyed ``left``/``right`` (or a channel number): one reference per
  channel of the stereo file ``<name>.wav``.
- ``<name>.txt`` or ``<name>.stm`` next to an audio file ``<name>.<ext>`` (any audio
  extension, including headerless ``.raw``); an STM's lines are joined in time order.

Files are UTF-8; a byte-order mark (Notepad, Excel) is dropped. Other encodings are refused with
a :class:`ReferenceError` that says so, as is an STM time that is not a finite number.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".raw", ".pcm")
_CHANNEL_NAMES = {"left": 0, "right": 1, "l": 0, "r": 1}


class ReferenceError(ValueError):
    """A reference file is malformed or names audio that does not exist."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.hint = hint


@dataclass(frozen=True)
class EvalItem:
    """One audio channel and the text spoken on it."""

    audio: Path
    reference: str
    channel: int | None = None
    """Channel to decode; ``None`` means the file's mono mix (it is mono in every set here)."""

    @property
    def name(self) -> str:
        """Short display name: file name, plus ``#<channel>`` for one leg of a stereo file."""
        return self.audio.name + (f"#{self.channel}" if self.channel is not None else "")


def read_txt(path: str | Path) -> str:
    """A plain-text reference (jfk.txt, goforward.txt, LibriVox .txt): the whole file."""
    return " ".join(_text(path).split())


def read_tsv(path: str | Path) -> dict[str, str]:
    """A tab-separated table with a header: first column -> ``reference`` column."""
    with io.StringIO(_text(path), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "reference" not in rows[0]:
        raise ReferenceError(f"{path}: no 'reference' column", hint="the header must name it")
    key = next(iter(rows[0]))
    return {row[key]: row["reference"] or "" for row in rows}


@dataclass(frozen=True)
class StmLine:
    """One STM line: ``<uri> <channel> <speaker> <start> <end> [<label>] <text>``."""

    uri: str
    channel: str
    speaker: str
    start: float
    end: float
    text: str
    label: str = ""
    """The optional NIST label field, e.g. ``<o,f0,male>`` (not spoken text)."""

    @property
    def ignored(self) -> bool:
        """NIST marks a stretch left out of scoring with this text instead of words."""
        return self.text.strip().lower() == _IGNORE_MARKER


_IGNORE_MARKER = "ignore_time_segment_in_scoring"
_HESITATION = re.compile(r"\(?%hesitation\b\)?", re.IGNORECASE)
"""NIST's token for a filler (um, uh): the normaliser drops fillers, so this goes too."""


def read_stm(path: str | Path) -> list[StmLine]:
    """All lines of an STM file (``;;`` comments skipped), in file order."""
    lines = []
    for raw in _text(path).splitlines():
        if not raw.strip() or raw.startswith(";;"):
            continue
        parts = raw.split(maxsplit=5)
        if len(parts) < 5:
            raise ReferenceError(
                f"{path}: not an STM line: {raw!r}", hint="uri chan spk start end text"
            )
        text = parts[5] if len(parts) == 6 else ""
        label = re.match(r"<[^<>\s]*>(?=\s|$)", text)
        if label:
            text = text[label.end():].strip()
        start, end = (_stm_time(path, raw, value) for value in parts[3:5])
        lines.append(StmLine(parts[0], parts[1], parts[2], start, end, text, label.group(0) if label else ""))
    return lines


def _stm_time(path: str | Path, line: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ReferenceError(f"{path}: {value!r} is not a time in seconds in the STM line {line!r}",
                             hint="uri chan spk start end text, times as numbers")
    return seconds


def _text(path: str | Path) -> str:
    """A reference file's text: UTF-8, a byte-order mark dropped."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ReferenceError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})",
                             hint="re-save it as UTF-8") from error


def stm_text(path: str | Path) -> str:
    """The scored STM reference as one text, lines in order of start time: no labels, no
    ``ignore_time_segment_in_scoring`` lines, no ``(%HESITATION)`` tokens."""
    lines = sorted((x for x in read_stm(path) if not x.ignored), key=lambda s: s.start)
    return " ".join(word for line in lines for word in _HESITATION.sub(" ", line.text).split())


def discover(roots: list[Path]) -> list[EvalItem]:
    """Every (audio, reference) pair under ``roots`` (folders searched recursively), sorted.

    Raises:
        ReferenceError: a table names audio that is missing, or nothing was found.
    """
    folders = sorted({d for root in roots for d in _folders(root)})
    items = [item for folder in folders for item in _items_in(folder)]
    if not items:
        raise ReferenceError(
            f"no audio with references under {', '.join(map(str, roots))}",
            hint="expected transcription.tsv, <name>.refs.tsv, or <name>.txt/.stm beside audio",
        )
    return items


def _folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ReferenceError(
            f"{root}: not a folder", hint="pass data folders, e.g. shared/data/asr"
        )
    return [root, *(p for p in root.rglob("*") if p.is_dir())]


def _items_in(folder: Path) -> list[EvalItem]:
    table = folder / "transcription.tsv"
    if table.is_file():
        return [_tsv_item(folder, key, text) for key, text in sorted(read_tsv(table).items())]
    items = []
    for refs in sorted(folder.glob("*.refs.tsv")):
        audio = _audio_for(folder, refs.name.removesuffix(".refs.tsv"))
        for key, text in read_tsv(refs).items():
            items.append(EvalItem(audio, text, _channel_index(refs, key)))
    for ref in sorted([*folder.glob("*.txt"), *folder.glob("*.stm")]):
        found = _find_audio(folder, ref.stem)
        if found is not None:
            text = stm_text(ref) if ref.suffix == ".stm" else read_txt(ref)
            items.append(EvalItem(found, text))
    return items


def _tsv_item(folder: Path, key: str, text: str) -> EvalItem:
    candidate = folder / key
    if candidate.suffix.lower() in AUDIO_SUFFIXES and candidate.is_file():
        return EvalItem(candidate, text)
    return EvalItem(_audio_for(folder, key), text)


def _audio_for(folder: Path, stem: str) -> Path:
    audio = _find_audio(folder, stem)
    if audio is None:
        raise ReferenceError(
            f"{folder}: no audio file for {stem!r}", hint=f"expected one of {AUDIO_SUFFIXES}"
        )
    return audio


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _channel_index(refs: Path, key: str) -> int:
    if key.lower() in _CHANNEL_NAMES:
        return _CHANNEL_NAMES[key.lower()]
    if key.isdigit():
        return int(key)
    raise ReferenceError(
        f"{refs}: channel {key!r} is not left/right or a number", hint="use left/right"
    )
