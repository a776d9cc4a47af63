"""Conversation JSONL, format v1: one conversation per line (see docs/suggestion-model.md).

A line::

    {"schema": "conversation/1", "id": "c1", "tenant": "acme", "agent_id": "a7",
     "outcome": {"success": true, "value": 1.5},
     "turns": [{"role": "agent", "text": "Hi!", "start": 0.0, "end": 1.2}, ...],
     "meta": {"source": "persuasionforgood", "license": "Apache-2.0"}}

``schema`` may be absent (read as v1); ``start``/``end``, ``agent_id``, ``value``, ``entities``,
``meta`` and ``context`` (numeric facts the agent knows at call start, e.g.
``{"priority_food": 2}``; an optional v1 field) are optional. A malformed line becomes a
:class:`RowIssue` with its line number; the other lines are still read. A turn whose text is
empty or whitespace is dropped (counted in the report's notes); a line left without turns is bad.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suggest.errors import DataFormatError
from suggest.types import ROLES, Conversation, Outcome, Turn

SCHEMA = "conversation/1"
"""Written on every line; readers accept ``conversation/1`` and ``conversation/1.<minor>``."""


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A row that could not be read: where it is and why."""

    where: str
    """``line 12`` for line-based files, ``casino_train.json item 7`` for JSON arrays."""
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ImportReport:
    """What an import or a read produced: conversations plus the rows it had to skip."""

    conversations: list[Conversation] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Deliberate skips and other facts worth printing (e.g. duplicate perspectives)."""

    def summary(self) -> str:
        """One line for the end of an import: counts of imported and skipped rows."""
        won = sum(c.outcome.success for c in self.conversations)
        return (
            f"{len(self.conversations)} conversations imported ({won} successful), "
            f"{len(self.issues)} rows skipped with errors"
        )

    def check_summary(self) -> str:
        """One line for the end of a check (nothing is imported): valid and invalid rows read."""
        won = sum(c.outcome.success for c in self.conversations)
        return (
            f"{len(self.conversations)} valid conversations read ({won} successful), "
            f"{len(self.issues)} rows with errors"
        )


def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
    """The JSON object of one line, keys in documented order."""
    turns = []
    for turn in conversation.turns:
        item: dict[str, Any] = {"role": turn.role, "text": turn.text}
        if turn.start is not None:
            item["start"] = turn.start
        if turn.end is not None:
            item["end"] = turn.end
        if turn.entities is not None:
            item["entities"] = [
                {"label": e.label, "text": e.text, "start": e.start, "end": e.end, "value": e.value}
                for e in turn.entities
            ]
        turns.append(item)
    outcome: dict[str, Any] = {"success": conversation.outcome.success}
    if conversation.outcome.value is not None:
        outcome["value"] = conversation.outcome.value
    line: dict[str, Any] = {
        "schema": SCHEMA,
        "id": conversation.id,
        "tenant": conversation.tenant,
        "agent_id": conversation.agent_id,
        "outcome": outcome,
        "turns": turns,
    }
    if conversation.meta:
        line["meta"] = dict(sorted(conversation.meta.items()))
    if conversation.context:  # absent when empty: files and data hashes without it are unchanged
        line["context"] = dict(sorted(conversation.context.items()))
    return line


def conversation_from_dict(data: Any) -> Conversation:
    """Validate one parsed line.

    Raises:
        ValueError: the object does not follow format v1; the message names the field.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema", SCHEMA)
    if str(schema).split(".")[0] != SCHEMA:
        raise ValueError(f"unsupported schema {schema!r}; this nextline reads {SCHEMA!r}")
    conversation_id = _required_str(data, "id")
    tenant = _required_str(data, "tenant")
    agent_id = data.get("agent_id")
    if agent_id is not None and not isinstance(agent_id, str | int):
        raise ValueError("'agent_id' must be a string or null")
    turns_data = data.get("turns")
    if not isinstance(turns_data, list) or not turns_data:
        raise ValueError("'turns' must be a non-empty list")
    turns = tuple(_turn_from_dict(t, i) for i, t in enumerate(turns_data))
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    return Conversation(
        id=conversation_id,
        tenant=tenant,
        agent_id=None if agent_id is None else str(agent_id),
        outcome=_outcome_from_dict(data.get("outcome")),
        turns=turns,
        meta={str(k): str(v) for k, v in meta.items()},
        context=_context_from_dict(data.get("context")),
    )


def read_conversations(path: str | Path) -> ImportReport:
    """Read a conversation JSONL file; bad lines are reported in ``issues``, not raised.

    A second line with the id of an earlier one (same tenant) is a bad line: the first is kept.

    Raises:
        DataFormatError: the file is missing or not UTF-8 text.
    """
    report = ImportReport()
    first_line: dict[tuple[str, str], int] = {}
    blank: list[str] = []
    for number, line in _numbered_lines(Path(path)):
        if not line.strip():
            continue
        try:
            conversation, dropped = without_blank_turns(conversation_from_dict(json.loads(line)))
            if not conversation.turns:
                raise ValueError("every turn's text is empty")
            key = (conversation.tenant, conversation.id)
            if key in first_line:  # twice in training: its own outcome leaks into its baseline
                raise ValueError(
                    f"id {conversation.id!r} of tenant {conversation.tenant!r} is already on "
                    f"line {first_line[key]} (ids are unique per tenant; the first is kept)"
                )
            first_line[key] = number
            report.conversations.append(conversation)
            blank.extend(f"line {number} turns[{i}]" for i in dropped)
        except json.JSONDecodeError as error:
            report.issues.append(
                RowIssue(f"line {number}", f"not JSON: {error.msg} at column {error.colno}")
            )
        except ValueError as error:
            report.issues.append(RowIssue(f"line {number}", str(error)))
        except RecursionError:  # json's parser recurses once per nesting level
            report.issues.append(RowIssue(f"line {number}", "not JSON: nested too deeply"))
    if blank:
        report.notes.append(
            f"{len(blank)} turns with empty text dropped (e.g. {', '.join(blank[:3])}): an empty "
            "turn would become an empty suggestion"
        )
    return report


def without_blank_turns(conversation: Conversation) -> tuple[Conversation, list[int]]:
    """``conversation`` without its whitespace-only turns, and the indices of those dropped.

    An empty agent turn would be learnt as a move (an action whose example is '') and shown as an
    empty suggestion; importers skip empty utterances the same way.
    """
    dropped = [i for i, turn in enumerate(conversation.turns) if not turn.text.strip()]
    if not dropped:
        return conversation, []
    kept = tuple(turn for turn in conversation.turns if turn.text.strip())
    return dataclasses.replace(conversation, turns=kept), dropped


def write_conversations(path: str | Path, conversations: Iterable[Conversation]) -> int:
    """Write conversations as JSONL (UTF-8, one per line); returns how many were written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with target.open("w", encoding="utf-8") as out:
        for conversation in conversations:
            out.write(json.dumps(conversation_to_dict(conversation), ensure_ascii=False) + "\n")
            count += 1
    return count


def data_hash(conversations: Iterable[Conversation]) -> str:
    """sha256 of the conversations' canonical JSON: same data, same hash, whatever the file."""
    digest = hashlib.sha256()
    for conversation in conversations:
        line = json.dumps(conversation_to_dict(conversation), ensure_ascii=False, sort_keys=True)
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist", hint="pass a conversation JSONL file")
    try:  # utf-8-sig: a BOM (Excel, PowerShell) is not part of the first line's JSON
        with path.open(encoding="utf-8-sig") as lines:
            yield from enumerate(lines, start=1)
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"{path} is not UTF-8 text ({error.reason})", hint="conversation files are UTF-8 JSONL"
        ) from error


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty string")
    return value


def _outcome_from_dict(data: Any) -> Outcome:
    if not isinstance(data, dict):
        raise ValueError("'outcome' must be an object with a boolean 'success'")
    success = data.get("success")
    if not isinstance(success, bool):
        raise ValueError("'outcome.success' must be true or false")
    value = data.get("value")
    if value is not None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError("'outcome.value' must be a finite number or absent")
        value = float(value)
    return Outcome(success=success, value=value)


def _context_from_dict(data: Any) -> dict[str, float]:
    """``context``: an object of non-empty names to finite numbers (booleans are not numbers)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("'context' must be an object of name -> number")
    context = {}
    for name, value in data.items():
        if not name.strip():
            raise ValueError("'context' names must be non-empty strings")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"'context.{name}' must be a finite number, got {value!r}")
        context[name] = float(value)
    return context


def _turn_from_dict(data: Any, index: int) -> Turn:
    where = f"turns[{index}]"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object")
    role = data.get("role")
    if role not in ROLES:
        raise ValueError(f"{where}.role must be one of {list(ROLES)}, got {role!r}")
    text = data.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{where}.text must be a string")
    try:  # JSON can carry lone surrogates ("\ud800") that no encoder or UTF-8 writer accepts
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{where}.text is not valid Unicode (a lone surrogate)") from error
    times = [data.get("start"), data.get("end")]
    for name, value in zip(("start", "end"), times, strict=True):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{where}.{name} must be a number of seconds or absent")
    entities = data.get("entities")
    return Turn(
        role=role,
        text=text,
        start=None if times[0] is None else float(times[0]),
        end=None if times[1] is None else float(times[1]),
        entities=None if entities is None else _entities_from_list(entities, where),
    )


def _entities_from_list(items: Any, where: str) -> tuple[Any, ...]:
    from suggest.nlu.types import Entity  # lazy: the nlu package loads spaCy on import

    if not isinstance(items, list):
        raise ValueError(f"{where}.entities must be a list")
    try:
        return tuple(
            Entity(
                str(e["label"]),
                str(e["text"]),
                int(e["start"]),
                int(e["end"]),
                str(e.get("value") or e["text"]),
            )
            for e in items
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{where}.entities: each needs label, text, start, end ({error})"
        ) from error
