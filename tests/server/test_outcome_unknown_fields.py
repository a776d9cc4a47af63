"""``PUT /api/calls/{id}/outcome`` refuses unknown fields with 422: a misspelt ``sucess`` was
ignored, so the call's stored outcome was overwritten with nulls and the CRM saw a 200."""

from __future__ import annotations

import pytest

from tests.server.harness import Env, scripted

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "body", [{"sucess": False}, {"success": False, "valeu": 3.0}, {"success": True, "extra": None}]
)
def test_unknown_outcome_fields_are_422_and_keep_the_stored_outcome(env: Env, body: dict[str, object]) -> None:
    scripted(env, "CA-won", "alice", end=True)
    sue = env.headers("sue")
    stored = {"success": True, "value": 120.5, "label": "sale", "source": "crm"}
    assert env.client.put("/api/calls/CA-won/outcome", headers=sue, json=stored).status_code == 200

    refused = env.client.put("/api/calls/CA-won/outcome", headers=sue, json=body)

    assert refused.status_code == 422
    unknown = next(key for key in body if key not in stored)
    assert any(error["loc"][-1] == unknown for error in refused.json()["detail"])
    outcome = env.client.get("/api/qa/calls/CA-won", headers=sue).json()["call"]["outcome"]
    assert (outcome["success"], outcome["value"], outcome["label"]) == (True, 120.5, "sale")


def test_every_field_the_console_and_docs_send_is_still_accepted(env: Env) -> None:
    scripted(env, "CA-won", "alice", end=True)
    sue = env.headers("sue")
    for body in ({"success": None, "value": None, "source": "qa"},  # voice/server/static/js/qa/call.js
                 {"success": True, "value": 120.5, "label": "sale", "source": "crm"}):  # docs/ui.md
        assert env.client.put("/api/calls/CA-won/outcome", headers=sue, json=body).status_code == 200


def test_an_outcome_read_back_from_the_api_can_be_put_back(env: Env) -> None:
    """A CRM's read-modify-write: the reply's read-only ``updated_at`` is accepted and ignored."""
    scripted(env, "CA-won", "alice", end=True)
    sue = env.headers("sue")
    first = env.client.put("/api/calls/CA-won/outcome", headers=sue,
                           json={"success": True, "value": 120.5, "label": "sale", "source": "crm"})
    assert "updated_at" in first.json()

    second = env.client.put("/api/calls/CA-won/outcome", headers=sue, json=dict(first.json(), value=130.0))

    assert second.status_code == 200 and second.json()["value"] == 130.0
