"""An ``edited`` feedback item needs the agent's wording: without it (or blank) it is a 422.

Stored without text, training counted the wording shown as the agent's own, a positive for the
very suggestion the agent changed. On the real app and a real SQLite database.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.harness import Env, scripted, stored_feedback

pytestmark = pytest.mark.unit


def _post(env: Env, call_id: str, *items: dict[str, Any]) -> Any:
    return env.client.post(f"/api/calls/{call_id}/feedback", json={"items": list(items)},
                           headers=env.headers("alice"))


@pytest.mark.parametrize("text", [None, "", "   \n\t"])
def test_an_edit_without_its_wording_is_refused_and_nothing_is_stored(env: Env, text: str | None) -> None:
    call = scripted(env, "CA-edit", "alice")
    ids = env.run(call.suggest, "t2", [("Let me check that order.", "check_order"),
                                        ("Could I have your order number?", "ask_order")], 4.0)
    item: dict[str, Any] = {"suggestion_id": ids[1], "kind": "edited"}
    if text is not None:
        item["text"] = text
    refused = _post(env, "CA-edit", {"suggestion_id": ids[0], "kind": "shown"}, item)
    assert refused.status_code == 422, refused.text
    assert "edited wording" in refused.text
    assert stored_feedback(env.services.store, "CA-edit") == []  # the whole request is refused
    kept = _post(env, "CA-edit", {"suggestion_id": ids[1], "kind": "edited", "text": "Your order number?"})
    assert kept.status_code == 201
    assert [(r["event"], r["edited_text"]) for r in stored_feedback(env.services.store, "CA-edit")] == [
        ("edited", "Your order number?")]
