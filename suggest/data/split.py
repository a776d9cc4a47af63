"""The fixed held-out split: a conversation is held out when a hash of its id says so.

Hashing the id (not shuffling) keeps the split identical across runs, machines, file orders and
data additions; a new conversation lands on one side forever. ``HELDOUT_FRACTION`` of ids are
held out. The salt is part of the definition: changing it defines a different split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Literal

from suggest.types import Conversation

HELDOUT_FRACTION = 0.2
SPLIT_SALT = "nextline-heldout-v1"

Split = Literal["train", "test", "all"]


def is_heldout(conversation_id: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """True when the conversation belongs to the held-out (test) side."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def select(conversations: Iterable[Conversation], split: Split) -> list[Conversation]:
    """The conversations of one side of the split (``all``: every one)."""
    if split == "all":
        return list(conversations)
    want_heldout = split == "test"
    return [c for c in conversations if is_heldout(c.id) == want_heldout]


def split_counts(conversations: Sequence[Conversation]) -> dict[str, int]:
    """How many conversations fall on each side."""
    test = sum(is_heldout(c.id) for c in conversations)
    return {"train": len(conversations) - test, "test": test}
