"""Values the far end sends about a call: identifiers (tenant, agent) and call-start facts.

Call-start facts are numeric parameters named ``context.<name>``; they become
``CallStartedFrame.context``, which a suggestion model trained with the conversation format's
``context`` reads by name (docs/telephony.md lists where each ingress carries them).
"""

from __future__ import annotations

import logging
import math
import re

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.@:+-]")
MAX_ID_LENGTH = 128


def clean_id(value: object) -> str | None:
    """A tenant/agent identifier from the far end: a short string of safe characters, or None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = _SAFE_ID.sub("_", str(value).strip())[:MAX_ID_LENGTH]
    return text or None


CONTEXT_PREFIX = "context."
"""Parameters named ``context.<name>`` carry the call-start facts of ``CallStartedFrame.context``."""
MAX_CONTEXT_FACTS = 64
MAX_CONTEXT_MAGNITUDE = 3.4028234663852886e38
"""Largest call-start fact kept: float32's maximum, the suggestion models' feature type (the
engine refuses a larger one, which made every score NaN; telephony cannot import it from there)."""


def call_context(*blocks: object) -> dict[str, float]:
    """Call-start facts from the far end's parameter objects (``context.<name>`` -> number).

    Telephony platforms send custom parameters as strings, so numbers are parsed; a value that
    is not a finite number, or is beyond :data:`MAX_CONTEXT_MAGNITUDE`, is left out (logged),
    never an error: the call goes on without it.
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
            elif abs(number) > MAX_CONTEXT_MAGNITUDE:
                log.warning(
                    "call-start fact %r=%r is beyond +-%.3g, more than a suggestion model can hold: left out",
                    name,
                    value,
                    MAX_CONTEXT_MAGNITUDE,
                )
            else:
                context[name] = number
    return context


def _finite_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        return None
    return number if math.isfinite(number) else None
