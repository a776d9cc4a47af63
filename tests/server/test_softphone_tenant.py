"""``POST /webrtc/offer`` by a supervisor: the agent the offer names must be of the call's tenant
(docs/telephony.md). Before, globex's supervisor could open a softphone call on acme's agent:
the call was authorised and refused only for its bad SDP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.server.harness import Env, make_services, new_app
from tests.server.test_webrtc_auth import _offer_sdp
from voice.errors import VoiceError
from voice.frames import CallStartedFrame
from voice.store.agents import AgentStore

pytestmark = pytest.mark.unit
BAD_SDP = "v=0 not an offer"  # an authorised offer gets 400 for it, a refused one 401/403 first
PEOPLE = (("alice", "agent", "acme"), ("sam", "supervisor", "acme"),
          ("bob", "agent", "globex"), ("gus", "supervisor", "globex"),
          ("tina", "agent", None), ("root", "supervisor", None))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """Two tenants (acme: alice, sam; globex: bob, gus), tina of no tenant, root over all."""
    services = make_services(tmp_path)
    agents = AgentStore(services.store)
    tokens = {name: agents.add(name, role=role, tenant=tenant)[1] for name, role, tenant in PEOPLE}
    with TestClient(new_app(services)) as client:
        yield Env(client, services, tokens)


def _post(env: Env, who: str, sdp: str = BAD_SDP, **fields: str) -> tuple[int, str]:
    answer = env.client.post("/webrtc/offer", json={"sdp": sdp, **fields}, headers=env.headers(who))
    return answer.status_code, answer.text


def test_a_supervisor_may_not_open_a_call_for_another_tenants_agent(env: Env) -> None:
    status, text = _post(env, "gus", agent_id="alice")
    assert status == 403
    assert "'alice'" in text and "'acme'" in text and "'globex'" in text  # says why
    assert _post(env, "gus", agent_id="alice", tenant="globex")[0] == 403
    assert _post(env, "sam", agent_id="bob")[0] == 403
    assert _post(env, "gus", agent_id="tina")[0] == 403  # no tenant: not "an agent of their tenant"
    # ... but they do for agents of their tenant (400: authorised, then the SDP is refused)
    assert _post(env, "gus", agent_id="bob")[0] == 400
    assert _post(env, "sam", agent_id="alice", tenant="acme")[0] == 400
    assert _post(env, "gus", agent_id="carol")[0] == 400  # an agent id without an account
    assert _post(env, "gus")[0] == 400  # no agent named
    assert _post(env, "bob", agent_id="alice")[0] == 403  # agents: their own calls only, as before
    assert _post(env, "alice")[0] == 400


def test_a_supervisor_of_every_tenant_names_the_agents_tenant(env: Env) -> None:
    assert _post(env, "root", agent_id="alice", tenant="acme")[0] == 400
    assert _post(env, "root", agent_id="alice", tenant="globex")[0] == 403
    assert _post(env, "root", agent_id="alice")[0] == 403  # the call would be the default tenant's
    assert _post(env, "root", agent_id="tina", tenant="acme")[0] == 400  # tina sees every tenant's calls
    assert _post(env, "root", agent_id="tina")[0] == 400


def test_the_refused_offer_opens_no_call_and_the_allowed_one_is_the_tenants(env: Env) -> None:
    opened: list[CallStartedFrame] = []

    async def open_call(started: CallStartedFrame, output: object) -> None:
        opened.append(started)  # the call as the pipeline would get it; refused to keep it short
        raise VoiceError("not in this test")

    env.services.manager.open_call = open_call  # type: ignore[method-assign]
    sdp = _offer_sdp()
    refused = _post(env, "gus", sdp, agent_id="alice")
    allowed = _post(env, "gus", sdp, agent_id="bob")
    assert refused[0] == 403 and allowed[0] == 503 and "not in this test" in allowed[1]
    assert [(s.source, s.tenant, s.agent_id) for s in opened] == [("webrtc", "globex", "bob")]
