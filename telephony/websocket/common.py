"""Helpers shared by the WebSocket serializers: JSON decoding, call ids (identifiers: ``telephony.far_end``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from telephony.errors import MalformedMessageError, ProtocolError


def load_json_object(message: str | bytes) -> dict[str, Any]:
    """Parse one text message that must be a JSON object.

    Raises:
        MalformedMessageError: binary where text was due, invalid JSON, or not an object.
    """
    if isinstance(message, bytes):
        raise MalformedMessageError("binary message where a JSON text message was expected")
    try:
        value = json.loads(message)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, and ints of 4,300+ digits
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


def new_call_id(source: str) -> str:
    """A deployment-unique call id; the ingress's own ids go into the call's metadata."""
    return f"{source}-{uuid.uuid4().hex[:16]}"
