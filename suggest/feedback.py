"""Agent feedback on suggestions as plain records (the database lives in ``voice.store``).

Events per suggestion: ``shown``, then ``accepted``, ``dismissed`` or ``edited``. The engine
reads them as :class:`FeedbackRecord` objects or as JSONL (one record per line, same fields);
``voice train --feedback`` exports them from the database and hands them over.

How training uses them (``suggest.train``): the last non-``shown`` event of a suggestion counts.
Its wording is mapped into the *new* model's action space by embedding it (action ids of an
older model mean nothing to a retrained one); ``accepted`` and ``edited`` (the edited wording)
add positive training rows, and per (customer intent, action) the accepted/dismissed counts give
a smoothed log-odds bias added to the policy's scores, so dismissed suggestions sink.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from suggest.data.format import ImportReport, RowIssue
from suggest.errors import DataFormatError
from suggest.types import ROLES, Turn

FeedbackEvent = Literal["shown", "accepted", "dismissed", "edited"]
FEEDBACK_EVENTS: tuple[FeedbackEvent, ...] = ("shown", "accepted", "dismissed", "edited")
UNDECIDED_ROLE = "unknown"
"""Role of a mixed leg's turns until its speakers' roles are decided (``voice.processors.speakers``):
such turns in a record's context are skipped, the record is kept."""


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback event on one suggestion."""

    suggestion_id: str
    call_id: str
    event: FeedbackEvent
    text: str
    """The suggestion as shown."""
    action: str = ""
    model_version: str = ""
    arm: str | None = None
    tenant: str = "default"
    agent_id: str | None = None
    turn_index: int = 0
    edited_text: str | None = None
    """What the agent said instead, for ``edited``."""
    context: tuple[Turn, ...] = field(default_factory=tuple)
    """The call's turns before the suggestion (recent ones suffice); empty: look the call up."""
    created_at: str = ""


@dataclass
class FeedbackSet:
    """Feedback records plus the rows that could not be read."""

    records: list[FeedbackRecord] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)


def final_events(records: Iterable[FeedbackRecord]) -> list[FeedbackRecord]:
    """The deciding event per suggestion: the last accepted/dismissed/edited one."""
    decided: dict[str, FeedbackRecord] = {}
    for record in records:
        if record.event != "shown":
            decided[record.suggestion_id] = record
    return list(decided.values())


def feedback_to_dict(record: FeedbackRecord) -> dict[str, Any]:
    """JSON-ready dict (turns as ``{role, text}``)."""
    data = asdict(record)
    data["context"] = [{"role": t.role, "text": t.text} for t in record.context]
    return data


def feedback_from_dict(data: Any) -> FeedbackRecord:
    """Validate one record.

    Context turns with role ``unknown`` (a mixed leg's turns before its roles were decided, which
    records stored by older servers hold) are left out of the context; the record is kept.

    Raises:
        ValueError: a field is missing or has the wrong type; the message names it.
    """
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    for key in ("suggestion_id", "call_id", "text"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"'{key}' must be a string")
    if data.get("event") not in FEEDBACK_EVENTS:
        raise ValueError(
            f"'event' must be one of {list(FEEDBACK_EVENTS)}, got {data.get('event')!r}"
        )
    context = []
    for i, turn in enumerate(data.get("context") or []):
        if isinstance(turn, dict) and turn.get("role") == UNDECIDED_ROLE:
            continue  # a mixed leg's turn from before its roles were decided: not context
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ROLES
            or not isinstance(turn.get("text"), str)
        ):
            raise ValueError(f"context[{i}] needs role agent|customer and text")
        context.append(Turn(role=turn["role"], text=turn["text"]))
    known = {f for f in FeedbackRecord.__dataclass_fields__} - {"context"}
    fields = {k: v for k, v in data.items() if k in known}
    fields["turn_index"] = int(fields.get("turn_index", 0))
    return FeedbackRecord(**fields, context=tuple(context))


def read_feedback(path: Path) -> FeedbackSet:
    """Read feedback JSONL; bad lines are reported with their line number.

    Raises:
        DataFormatError: the file is missing or not UTF-8 text.
    """
    if not path.is_file():
        raise DataFormatError(
            f"{path} not found", hint="export feedback with `voice feedback export`"
        )
    result = FeedbackSet()
    try:  # utf-8-sig: a BOM (Excel, PowerShell) is not part of the first line's JSON
        with path.open(encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    result.records.append(feedback_from_dict(json.loads(line)))
                except (json.JSONDecodeError, ValueError, TypeError) as error:
                    result.issues.append(RowIssue(f"line {number}", str(error)))
    except UnicodeDecodeError as error:  # raised while reading a line, not by its parsing
        raise DataFormatError(
            f"{path} is not UTF-8 text ({error.reason})",
            hint="feedback files are UTF-8 JSONL; re-export with `voice feedback export`",
        ) from error
    return result


def write_feedback(path: Path, records: Iterable[FeedbackRecord]) -> int:
    """Write feedback JSONL; returns the number of records."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(feedback_to_dict(record), ensure_ascii=False) + "\n")
            count += 1
    return count


def as_report(feedback: FeedbackSet) -> ImportReport:
    """The issues of a feedback read in the shape the CLI prints for imports."""
    return ImportReport(issues=feedback.issues)
