"""Helpers shared by the WebSocket serializers: JSON decoding, call ids, identifiers, call-start
facts."""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from typing import Any

from telephony.errors import MalformedMessageError, ProtocolError

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.@:+-]")
MAX_ID_LENGTH = 128


def load_json_object(message: str | bytes) -> dict[str, Any]:
    """Parse one text message that must be a JSON object.

    Raises:
        MalformedMessageError: binary where text was due, invalid JSON, or not an object.
    """
    if isinstance(message, bytes):
        raise MalformedMessageError("binary message where a JSON text message was expected")
    try:
        value = json.loads(message)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedMessageError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedMessageError(f"JSON message is a {type(value).__name__}, not an object")
    return value


def require_dict(message: dict[str, Any], key: str) -> dict[str, Any]:
    """``message[key]`` if it is an object.

    Raises:
        ProtocolError: missing or not an object.
    """
    value = message.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"'{key}' is missing or not an object")
    return value


def clean_id(value: object) -> str | None:
    """A tenant/agent identifier from the far end: a short string of safe characters, or None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = _SAFE_ID.sub("_", str(value).strip())[:MAX_ID_LENGTH]
    return text or None


CONTEXT_PREFIX = "context."
"""Parameters named ``context.<name>`` carry the call-start facts of ``CallStartedFrame.context``."""
MAX_CONTEXT_FACTS = 64


def call_context(*blocks: object) -> dict[str, float]:
    """Call-start facts from the far end's parameter objects (``context.<name>`` -> number).

    Telephony platforms send custom parameters as strings, so numbers are parsed; a value that
    is not a finite number is left out (logged), never an error: the call goes on without it.
    """
    context: dict[str, float] = {}
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for key, value in block.items():
            name = clean_id(str(key)[len(CONTEXT_PREFIX) :]) if str(key).startswith(CONTEXT_PREFIX) else None
            if name is None or len(context) >= MAX_CONTEXT_FACTS:
                continue
            number = _finite_number(value)
            if number is None:
                log.warning("call-start fact %r is not a number (%r): left out", name, value)
            else:
                context[name] = number
    return context


def _finite_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def new_call_id(source: str) -> str:
    """A deployment-unique call id; the ingress's own ids go into the call's metadata."""
    return f"{source}-{uuid.uuid4().hex[:16]}"
