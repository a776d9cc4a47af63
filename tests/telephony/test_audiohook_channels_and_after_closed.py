"""AudioHook edge cases from fuzzing: unhashable ``channels`` entries in ``open`` are the normal
"no offered media" protocol error (they raised TypeError, an internal error), and once ``closed``
was sent every message is ignored (a second ``close`` got a second ``closed``, a ping a pong),
as the reference implementation signals nothing in its CLOSED state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telephony.errors import ProtocolError
from telephony.websocket.audiohook import AudioHookSerializer

pytestmark = pytest.mark.unit
STEREO = {"type": "audio", "format": "PCMU", "rate": 8000, "channels": ["external", "internal"]}


class Session:
    """Builds client messages with the right sequence numbers."""

    def __init__(self) -> None:
        self.serializer = AudioHookSerializer()
        self.seq = 0

    def send(self, kind: str, parameters: dict[str, Any] | None = None) -> list[Any]:
        self.seq += 1
        return self.serializer.deserialize(json.dumps({
            "version": "2", "id": "s1", "type": kind, "seq": self.seq, "serverseq": self.serializer._seq,
            "position": "PT0S", "parameters": parameters or {}}))

    def replies(self) -> list[str]:
        return [json.loads(r)["type"] for r in self.serializer.take_replies()]


@pytest.mark.parametrize("channels", [[{"a": 1}], [["external"]], ["external", {"b": 2}]])
def test_unhashable_channel_entries_are_no_offered_media(channels: list[Any]) -> None:
    session = Session()
    with pytest.raises(ProtocolError, match="no offered media"):
        session.send("open", {"conversationId": "c1", "media": [STEREO | {"channels": channels}]})
    assert session.replies() == ["disconnect"]


def test_unhashable_entries_do_not_hide_a_usable_offer() -> None:
    session = Session()
    (started,) = session.send("open", {"conversationId": "c1", "media": [STEREO | {"channels": [{"a": 1}]}, STEREO]})
    assert list(started.legs) == ["external", "internal"] and session.replies() == ["opened"]


def test_messages_after_closed_are_ignored() -> None:
    session = Session()
    session.send("open", {"conversationId": "c1", "media": [STEREO]})
    session.send("close", {"reason": "end"})
    assert session.replies() == ["opened", "closed"]
    assert session.send("close", {"reason": "end"}) == []
    assert session.send("ping") == []
    assert session.serializer.deserialize(b"\xff" * 320) == []
    assert session.serializer.deserialize("not json") == []  # no disconnect after closed either
    assert session.replies() == []
    assert session.serializer.ended and session.serializer.ignored_after_closed == 4
