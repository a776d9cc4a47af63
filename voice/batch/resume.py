"""Output names and the "already done" check of a resumable batch run.

- A source file writes ``OUT/<stem>.*`` unless a *different* source already owns that name: its
  ``<stem>.json`` records another ``audio.path``, or an earlier input of the same run took it.
  Then it writes ``OUT/<stem>-<hash>.*``, the hash being of the resolved source path. A name
  thus depends on the source and on what ``OUT`` holds, never on the other inputs of a run:
  running ``dA`` and then ``dA dB`` keeps dA's names and does not redo dA's files.
- Names and recorded paths are text: a file name that is not UTF-8 (a Latin-1 ``café.wav``)
  shows its odd bytes as ``\\xe9`` (:func:`display_path`); hashes are of the path's bytes.
- A file is finished when its ``<name>.json`` records the same resolved source path, the same
  options fingerprint (of the options that apply to that file, :func:`file_fingerprint`), the
  same source size and modification time, and, for every requested format, a content hash
  that the file ``<name>.<fmt>`` still matches: the JSON is written last, and lists what was
  written with it, so a subtitle left by a run with other options (clear text before
  ``--redact``) is never taken as done.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voice.batch.options import TranscribeOptions

MAX_STEM_BYTES = 180
"""Longer stems are cut and hashed: NAME_MAX is 255 bytes, and the writer adds a hash suffix,
an extension and a temporary-file prefix/suffix (a 246-byte name failed with ENAMETOOLONG)."""
RAW_SUFFIXES = {".raw", ".pcm", ".s16", ".sln"}
"""Headerless PCM, the only files that ``raw_rate``/``raw_channels`` apply to (as ``voice.audio``)."""
LEGACY_OUTPUT_WINDOW_S = 2.0
"""A JSON written before outputs were hashed is trusted for a format whose file was written at
most this long before it: the earlier writer wrote the other formats just before the JSON (no
transcription in between), so an older file is left over from another run."""


def display_path(path: str | Path) -> str:
    """``path`` as valid text: bytes that are not UTF-8 become ``\\xNN`` (names, JSON, database)."""
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def path_hash(path: Path, length: int = 8) -> str:
    """Short, stable hash of a resolved source path (of its bytes: any file name can be hashed)."""
    return hashlib.sha1(os.fsencode(path)).hexdigest()[:length]


def _stem(path: Path) -> str:
    stem = display_path(path.stem)
    if len(stem.encode()) <= MAX_STEM_BYTES:
        return stem
    cut = stem.encode()[: MAX_STEM_BYTES - 9].decode(errors="ignore")
    return f"{cut}-{path_hash(path)}"


def read_json(json_path: Path) -> dict[str, Any] | None:
    """A transcript JSON as a dict, or ``None`` when it is absent or unreadable (redo the file)."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_source(data: dict[str, Any] | None) -> Path | None:
    """The resolved source path a transcript was made from, or ``None`` if it does not say."""
    audio = (data or {}).get("audio")
    path = audio.get("path") if isinstance(audio, dict) else None
    return Path(path).resolve() if isinstance(path, str) and path else None


def output_name(path: Path, out_dir: Path, claimed: dict[str, Path]) -> str:
    """The output name of the resolved source ``path`` (see the module docstring).

    ``claimed`` maps names to the sources given them earlier in this run; it is updated.
    """
    stem = _stem(path)
    shown = Path(display_path(path))
    for name in (stem, f"{stem}-{path_hash(path)}", f"{stem}-{path_hash(path, 40)}"):
        owner = claimed.get(name) or recorded_source(read_json(out_dir / f"{name}.json"))
        if owner is None or owner == shown:
            claimed[name] = shown
            return name
    raise AssertionError(f"no free output name for {path}")  # needs a SHA-1 collision


def file_fingerprint(options: TranscribeOptions, path: Path, mode: str | None) -> str:
    """The options fingerprint of one file: options that cannot change its output are left at
    their defaults, so adding ``--raw-rate`` does not redo every WAV, nor ``--agent-channel``
    every diarized mono file. A transcript written before these fingerprints (no ``outputs`` in
    its options) is also done under the whole-run fingerprint it was written with, so an
    upgrade redoes nothing that an unchanged run would not.

    ``mode`` is the speaker mode the file was transcribed with (``speakers_used``).
    """
    fields = options.to_dict()
    defaults = TranscribeOptions().to_dict()
    relevant = set(fields)
    if path.suffix.lower() not in RAW_SUFFIXES:
        relevant -= {"raw_rate", "raw_channels"}
    if mode != "channels":
        relevant.discard("agent_channel")
    if mode != "diarize":
        relevant -= {"num_speakers", "min_speakers", "max_speakers", "diarization"}
    payload = json.dumps({k: v if k in relevant else defaults[k] for k, v in fields.items()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def source_stamp(path: Path) -> dict[str, int]:
    """Size and modification time of a source: a file copied again (or completed) is redone."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def content_hash(path: Path) -> str:
    """Hash of a written output file, recorded in the JSON written after it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def finished_transcript(out_dir: Path, name: str, source: Path, options: TranscribeOptions,
                        formats: Sequence[str]) -> dict[str, Any] | None:
    """The transcript dict when ``source`` is finished under ``name`` with these options, else ``None``."""
    json_path = out_dir / f"{name}.json"
    data = read_json(json_path)
    if data is None or recorded_source(data) != Path(display_path(source.resolve())):
        return None
    recorded = data.get("options")
    if not isinstance(recorded, dict):
        return None
    mode = recorded.get("speakers_used")
    wanted = {file_fingerprint(options, source, mode if isinstance(mode, str) else None)}
    if "outputs" not in recorded:  # written by a release before per-file fingerprints
        wanted.add(options.fingerprint())
    if recorded.get("fingerprint") not in wanted:
        return None
    try:
        if recorded.get("source", source_stamp(source)) != source_stamp(source):
            return None
    except OSError:
        return None
    others = [f for f in formats if f != "json"]
    return data if _outputs_match(out_dir, name, json_path, recorded.get("outputs"), others) else None


def _outputs_match(out_dir: Path, name: str, json_path: Path, outputs: object, formats: Sequence[str]) -> bool:
    """Every format file exists and was written together with the JSON."""
    try:
        if isinstance(outputs, dict):
            return all(outputs.get(f) == content_hash(out_dir / f"{name}.{f}") for f in formats)
        # A JSON of an earlier release: no hashes, so trust only files written just before it.
        written = json_path.stat().st_mtime
        return all(0 <= written - (out_dir / f"{name}.{f}").stat().st_mtime <= LEGACY_OUTPUT_WINDOW_S
                   for f in formats)
    except OSError:
        return False
