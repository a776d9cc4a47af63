"""The agent console after its socket dropped or the page reloaded, in a real browser against the
real server: a call the server no longer holds (restart, or gone from the hub's history) ends
and the next call opens; a reload that replays the call's history reports no card as shown twice,
and of the cards a replay flashes only the one left on screen counts as shown."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.browser import chromium, open_console, wait_until
from tests.server.harness import SERVICE_LINES, ScriptedCall, ServerThread, make_services, new_app, stored_feedback
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e


def test_console_moves_on_from_a_call_the_server_no_longer_holds(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    alice = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        first = ScriptedCall(services, "CA-before", agent_id="alice")
        server.run(first.start())
        page = open_console(browser, server.url, alice)
        page.evaluate("""() => { const s = window.nextline.stream; const connect = s.connect.bind(s);
            s.connect = () => setTimeout(connect, 1500); s.socket.close(); }""")
        page.wait_for_selector('#status[data-state="reconnecting"]')

        async def ended_and_forgotten() -> None:  # what a restart leaves: the row, no history
            await first.end(3.0)
            services.hub.forget("CA-before")
            services.registry.forget("CA-before")

        server.run(ended_and_forgotten())
        server.run(ScriptedCall(services, "CA-next", agent_id="alice").start())
        wait_until(page, "document.getElementById('call-title').textContent === 'Call CA-next'", timeout=15)
        page.wait_for_selector('#status[data-state="live"]')
        assert page.script_errors == []


def test_replayed_suggestions_are_not_reported_shown_again(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    alice = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        call = ScriptedCall(services, "CA-reload", agent_id="alice")
        server.run(call.start())
        early = [server.run(_turn(call, index)) for index in range(3)]  # before the console opens
        page = open_console(browser, server.url, alice)
        _wait_for_shown(services, 3)
        time.sleep(1.0)  # any further report would be stored by now
        assert set(_wait_for_shown(services, 3)) == set(early[-1])  # turns 0 and 1 only flashed by

        live = []
        for index in range(3, 6):
            live.append(server.run(_turn(call, index)))
            time.sleep(0.5)
        _wait_for_shown(services, 12)
        page.reload()
        page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
        page.wait_for_selector(f"#cards .card-text:has-text('{SERVICE_LINES[5 % len(SERVICE_LINES)][0]}')")
        time.sleep(1.0)  # past the shown delay: a report would be stored by now
        shown = Counter(r["suggestion_id"] for r in stored_feedback(services.store, "CA-reload")
                        if r["event"] == "shown")
        assert set(shown) == set(early[-1]).union(*live) and max(shown.values()) == 1
        assert page.script_errors == []


async def _turn(call: ScriptedCall, index: int) -> list[str]:
    await call.final(f"t{index}", "inbound", "customer", f"Customer turn {index}.", index, index + 0.5)
    rotated = SERVICE_LINES[index % len(SERVICE_LINES):] + SERVICE_LINES[: index % len(SERVICE_LINES)]
    return await call.suggest(f"t{index}", list(rotated[:3]), index + 0.5)


def _wait_for_shown(services, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = [r["suggestion_id"] for r in stored_feedback(services.store, "CA-reload") if r["event"] == "shown"]
        if len(shown) >= count:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} shown reports after {timeout:.0f} s")
