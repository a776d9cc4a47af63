"""Output names and the "already done" check of a resumable batch run.

- A source file writes ``OUT/<stem>.*`` unless a *different* source already owns that name: its
  ``<stem>.json`` records another ``audio.path``, or an earlier input of the same run took it.
  Then it writes ``OUT/<stem>-<hash>.*``, the hash being of the resolved source path. A name
  thus depends on the source and on what ``OUT`` holds, never on the other inputs of a run:
  running ``dA`` and then ``dA dB`` keeps dA's names and does not redo dA's files.
- A file is finished when its ``<name>.json`` records the same resolved source path and the same
  options fingerprint, and every requested format exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voice.batch.options import TranscribeOptions

MAX_STEM_BYTES = 180
"""Longer stems are cut and hashed: NAME_MAX is 255 bytes, and the writer adds a hash suffix,
an extension and a temporary-file prefix/suffix (a 246-byte name failed with ENAMETOOLONG)."""


def path_hash(path: Path, length: int = 8) -> str:
    """Short, stable hash of a resolved source path."""
    return hashlib.sha1(str(path).encode()).hexdigest()[:length]


def _stem(path: Path) -> str:
    stem = path.stem
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
    for name in (stem, f"{stem}-{path_hash(path)}", f"{stem}-{path_hash(path, 40)}"):
        owner = claimed.get(name) or recorded_source(read_json(out_dir / f"{name}.json"))
        if owner is None or owner == path:
            claimed[name] = path
            return name
    raise AssertionError(f"no free output name for {path}")  # needs a SHA-1 collision


def finished_transcript(out_dir: Path, name: str, source: Path, options: TranscribeOptions,
                        formats: Sequence[str]) -> dict[str, Any] | None:
    """The transcript dict when ``source`` is finished under ``name`` with these options, else ``None``."""
    if not all((out_dir / f"{name}.{fmt}").is_file() for fmt in ["json", *formats]):
        return None
    data = read_json(out_dir / f"{name}.json")
    if data is None or recorded_source(data) != source.resolve():
        return None
    if data.get("options", {}).get("fingerprint") != options.fingerprint():
        return None
    return data
