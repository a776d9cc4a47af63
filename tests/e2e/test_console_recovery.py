"""The agent console after its socket dropped or the page reloaded, in a real browser against the
real server: a call the server no longer holds (restart, or gone from the hub's history) ends
and the next call opens; a reload that replays the call's history reports no card as shown twice,
of the cards a replay flashes only the one left on screen counts as shown, and cards already acted
on come back in that state; opening the console on a long call takes seconds."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.browser import chromium, open_console, open_page, wait_until
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


def test_a_reload_keeps_what_the_agent_did_with_the_cards(tmp_path: Path) -> None:
    """Cards accepted or dismissed before a reload come back in that state, without their buttons;
    the shortcuts go on from the card still open, and nothing is stored twice."""
    services = make_services(tmp_path)
    alice = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        call = ScriptedCall(services, "CA-acted", agent_id="alice")
        server.run(call.start())
        page = open_console(browser, server.url, alice)
        server.run(call.final("t0", "inbound", "customer", "Where is my order?", 1.0, 2.0))
        ids = server.run(call.suggest("t0", list(SERVICE_LINES[:3]), 2.0))
        page.wait_for_selector("#cards .card >> nth=2")
        page.locator("body").press("a")  # card 1
        page.wait_for_selector("#cards .card[data-state='accepted']")
        page.keyboard.press("d")  # then the selection moved on to card 2
        page.wait_for_selector("#cards .card[data-state='dismissed']")
        _wait_for_actions(services, "CA-acted", 2)
        wait_until(page, """(() => { const saved = JSON.parse(sessionStorage.getItem('nextline.shown') || '{}');
            return Object.keys(saved.acted || {}).length === 2; })()""")  # the page noted both (agent/main.js)

        page.reload()
        page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
        page.wait_for_selector("#cards .card >> nth=2")
        cards = page.locator("#cards .card")
        assert [cards.nth(i).get_attribute("data-state") for i in range(3)] == ["accepted", "dismissed", None]
        assert cards.nth(0).locator("button").count() == 0 and cards.nth(1).locator("button").count() == 0
        assert cards.nth(2).get_attribute("aria-current") == "true"
        page.locator("body").press("a")  # the open card, not card 1 again
        page.wait_for_selector("#cards .card:nth-child(3)[data-state='accepted']")
        _wait_for_actions(services, "CA-acted", 3)
        time.sleep(0.5)  # a repeat would be stored by now
        assert _actions(services, "CA-acted") == [(ids[0], "accepted"), (ids[1], "dismissed"), (ids[2], "accepted")]
        assert page.script_errors == []


def _actions(services, call_id: str) -> list[tuple[str, str]]:
    return [(r["suggestion_id"], r["event"]) for r in stored_feedback(services.store, call_id) if r["event"] != "shown"]


def _wait_for_actions(services, call_id: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_actions(services, call_id)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} actions stored after {timeout:.0f} s"
        time.sleep(0.05)


LONG_CALL_TURNS = 400


def test_a_long_calls_history_is_laid_out_once_per_frame(tmp_path: Path) -> None:
    """The history of a long call (a final and an nlu event per turn) replays whole: the log is
    measured and scrolled once per frame, not per event (3,000 turns took 47 s to appear, now
    about 3 s: scripts/bench_console_long_call.py), a role decided late still reaches the turns
    shown as unknown, the log follows to the end, and replayed turns are not animated (new ones are)."""
    services = make_services(tmp_path)
    alice = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        call = ScriptedCall(services, "CA-long", agent_id="alice")
        server.run(call.start())

        async def history() -> None:
            for i in range(LONG_CALL_TURNS):
                leg, role = ("inbound", "customer") if i % 2 else ("outbound", "agent")
                await call.final(f"t{i}", leg, role, f"turn number {i} with some words in it", i * 2.0, i * 2.0 + 1.5)
                await call.nlu(f"t{i}", role, None, [], i * 2.0 + 1.5)

        server.run(history(), timeout=300)
        page = open_page(browser)
        page.goto(f"{server.url}/agent#token={alice}")
        wait_until(page, f"document.querySelectorAll('#transcript .turn').length === {LONG_CALL_TURNS}",
                   timeout=120, poll=0.1)
        assert page.locator("#transcript .turn.fresh").count() == 0
        wait_until(page, """(() => { const s = document.getElementById('transcript-scroll');
            return s.scrollTop + s.clientHeight >= s.scrollHeight - 48; })()""")  # followed to the end

        role = page.evaluate("""() => {
            const view = window.nextline.console.transcript;
            const turn = (i, role) => ({ turn_id: 'u' + i, leg: 'mixed', role, speaker: 'spk', text: 'hi',
                                         start: 1e6 + i });
            view.final(turn(0, 'unknown'));
            for (let i = 1; i <= 200; i++) view.final(turn(i, 'customer'));
            return view.turns.get('u0').querySelector('.role').textContent;
        }""")
        assert role == "Customer"  # a role decided late reaches the speaker's earlier turn
        wait_until(page, """(() => { const s = document.getElementById('transcript-scroll');
            return s.scrollTop + s.clientHeight >= s.scrollHeight - 48; })()""")  # and the log follows
        server.run(call.final("live", "inbound", "customer", "Are you still there?", 1e7, 1e7 + 1))
        page.wait_for_selector("#transcript .turn.fresh[data-turn-id='live']")
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
