"""The supervisor view under many concurrent calls in a real browser: a burst of updates is drawn
once per frame, not as one rebuilt table per message, and the once-a-second refresh of the call
lengths keeps the rows' nodes, so a focused call link keeps the keyboard focus."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.browser import chromium, open_page, wait_until
from tests.server.harness import ScriptedCall, ServerThread, make_services, new_app
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e
CALLS = 100


def test_supervisor_view_keeps_up_with_many_calls_and_keeps_focus(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    calls = [ScriptedCall(services, f"CA-many-{index:03d}", agent_id=f"agent{index}") for index in range(CALLS)]

    async def start() -> None:
        for call in calls:
            await call.start()

    async def burst() -> None:
        for index, call in enumerate(calls):
            await call.final(f"t{index}", "inbound", "customer", "I'd like to cancel.", 0.5, 2.5)
            await call.nlu(f"t{index}", "customer", "cancel_subscription", [], 2.5)

    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser)
        page.goto(f"{server.url}/supervisor#token={sue}")
        page.wait_for_selector('#status[data-state="live"]')
        server.run(start())
        wait_until(page, f"document.getElementById('count-active').textContent === '{CALLS}'")
        page.evaluate("""() => { window.renders = 0;
            new MutationObserver(() => { window.renders += 1; })
              .observe(document.getElementById('rows'), {childList: true, subtree: true}); }""")
        server.run(burst())
        wait_until(page, f"document.querySelectorAll('#rows .chip.intent').length === {CALLS}")
        assert page.evaluate("window.renders") < CALLS  # 2 x CALLS messages, one table each before

        link = page.locator("#rows tr[data-call-id='CA-many-005'] a")
        link.focus()
        time.sleep(1.5)  # the lengths are redrawn every second
        assert page.evaluate("document.activeElement.textContent") == "CA-many-005"
        assert page.locator("#rows tr").count() == CALLS
        assert page.script_errors == []


def test_a_revoked_supervisor_is_told_so_instead_of_reconnecting_forever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voice.server import auth

    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.2)  # revocation reaches open sockets in well under 1 s
    monkeypatch.setattr(auth, "RECHECK_SECONDS", 0.2)
    services = make_services(tmp_path)
    people = AgentStore(services.store)
    sue = people.add("sue", role="supervisor")[1]

    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser)
        page.goto(f"{server.url}/supervisor#token={sue}")
        page.wait_for_selector('#status[data-state="live"]')
        people.remove("sue")
        wait_until(page, "document.getElementById('status').dataset.state === 'error'")
        assert page.locator("#status").text_content() == "Your sign-in is no longer valid"
        time.sleep(1.0)  # and it stays so: no reconnect loop
        assert page.evaluate("document.getElementById('status').dataset.state") == "error"


def test_a_failed_first_snapshot_does_not_leave_a_dead_page(tmp_path: Path) -> None:
    """The first GET /api/calls failing (a restart, a proxy's 502) threw before the socket was
    opened: the page never went live and never showed a call."""
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    failed: list[str] = []

    def fail_once(route: object) -> None:
        if failed:
            route.continue_()  # type: ignore[attr-defined]
        else:
            failed.append(route.request.url)  # type: ignore[attr-defined]
            route.fulfill(status=502, body="bad gateway")  # type: ignore[attr-defined]

    with ServerThread(new_app(services)) as server, chromium() as browser:
        server.run(ScriptedCall(services, "CA-after-502", agent_id="alice").start())
        page = open_page(browser)
        page.route("**/api/calls", fail_once)
        page.goto(f"{server.url}/supervisor#token={sue}")
        page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
        wait_until(page, "document.getElementById('count-active').textContent === '1'")
        assert failed and page.locator("#rows tr[data-call-id='CA-after-502']").count() == 1
        assert page.script_errors == []
