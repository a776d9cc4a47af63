"""The call transcript: one versioned, documented JSON shape for batch and live calls.

Schema (``schema_version`` "1.1"; see docs/transcript-schema.md):

- ``call_id``, ``created_at`` (ISO-8601 UTC), ``redacted`` (bool)
- ``audio``: ``path``, ``format``, ``sample_rate``, ``channels``, ``duration`` (of the input)
- ``speakers``: ``id``, ``role`` (agent|customer|unknown), ``channel`` (int or null), ``talk_time``
- ``segments``: ``id``, ``start``, ``end``, ``speaker``, ``role``, ``channel``, ``text``,
  ``words`` (``text``, ``start``, ``end``, ``probability``; ``leading_space: false`` on a piece
  attached to the word before it, since 1.1)
- ``entities``: ``label``, ``text``, ``value``, ``segment``, ``start_char``, ``end_char``
- ``options``: what produced it (model, speakers mode, ...); ``timings``: seconds per stage.

Leaf-level module: imports only ``voice.frames`` and ``voice.audio`` types.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from voice.audio import AudioInfo
from voice.frames import Role, TimedWord, word_dict

SCHEMA_VERSION = "1.1"
"""1.1 added the optional ``leading_space`` of a word; 1.0 files read the same."""


@dataclass
class Speaker:
    """One party of the call."""

    id: str
    role: Role = "unknown"
    channel: int | None = None
    talk_time: float = 0.0


@dataclass
class Segment:
    """A stretch of one speaker's speech with its text."""

    id: int
    start: float
    end: float
    speaker: str
    text: str
    role: Role = "unknown"
    channel: int | None = None
    words: list[TimedWord] = field(default_factory=list)


@dataclass
class EntityMention:
    """An entity found in a segment's text (character offsets into that text)."""

    label: str
    text: str
    segment: int
    start_char: int
    end_char: int
    value: str | None = None


@dataclass
class CallTranscript:
    """Everything the pipeline produced for one call."""

    call_id: str
    audio: AudioInfo
    speakers: list[Speaker]
    segments: list[Segment]
    entities: list[EntityMention] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    redacted: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: str = SCHEMA_VERSION

    def role_of(self, speaker_id: str) -> Role:
        """Role of a speaker id ("unknown" when the speaker is not listed)."""
        return next((s.role for s in self.speakers if s.id == speaker_id), "unknown")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict in the documented schema."""
        data = asdict(self)
        for segment, source in zip(data["segments"], self.segments, strict=True):
            segment["words"] = [word_dict(w) for w in source.words]
        return data

    def to_json(self) -> str:
        """Pretty JSON text (UTF-8, stable key order)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallTranscript:
        """Parse the documented schema back (rejects unknown major versions)."""
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"unsupported transcript schema_version {version!r}; expected {SCHEMA_VERSION}")
        segments = [
            Segment(**{**s, "words": [TimedWord(**w) for w in s.get("words", [])]})
            for s in data["segments"]
        ]
        return cls(
            call_id=data["call_id"],
            audio=AudioInfo(**data["audio"]),
            speakers=[Speaker(**s) for s in data["speakers"]],
            segments=segments,
            entities=[EntityMention(**e) for e in data.get("entities", [])],
            options=data.get("options", {}),
            timings=data.get("timings", {}),
            redacted=data.get("redacted", False),
            created_at=data.get("created_at", ""),
            schema_version=version,
        )
