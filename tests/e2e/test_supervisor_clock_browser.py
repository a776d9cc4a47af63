"""The supervisor view on a computer whose clock is wrong: call lengths come from the server's clock
alone, whether a call was in the page's first snapshot or arrived on its socket, and an ended call
stays listed for its minute. Playwright's fake clock sets the browser's time 47 minutes ahead of
the server's (timers keep running)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.browser import chromium, open_page, wait_until
from tests.server.harness import ScriptedCall, ServerThread, make_services, new_app
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e
SKEW_S = 47 * 60
MARGIN_S = 60
"""How far a shown length may be from the server's: far inside the 2,820 s a viewer's skewed clock
would add or take, and wide enough for a page redrawn late on a loaded machine (a second or two)."""


def _lengths(page: object) -> dict[str, int]:
    """Call id -> its length cell ("m:ss" or "h:mm:ss") in seconds."""
    cells = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#rows tr')]
        .map((tr) => [tr.dataset.callId, tr.children[2].textContent]))""")  # type: ignore[attr-defined]
    seconds = {}
    for call_id, text in cells.items():
        parts = [int(p) for p in text.split(":")]
        seconds[call_id] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return seconds


def _assert_lengths(page: object, started: dict[str, float], ended: dict[str, float]) -> None:
    """Each shown length is the server's: from its start until its end, or now (floored to 1 s),
    within :data:`MARGIN_S`; a live call's length counts (each is 2.5 s old or more when checked),
    so one clamped at 0:00 by a viewer's clock that is behind fails too."""
    shown, now = _lengths(page), time.time()
    expected = {call_id: ended.get(call_id, now) - at for call_id, at in started.items()}
    assert set(shown) == set(expected), shown  # an ended call stays listed for a minute
    assert all(abs(shown[c] - expected[c]) <= MARGIN_S for c in expected), (shown, expected)
    assert all(shown[c] >= 1 for c in expected if c not in ended), (shown, expected)


@pytest.mark.parametrize("skew", [SKEW_S, -SKEW_S], ids=["viewer-ahead", "viewer-behind"])
def test_call_lengths_follow_the_servers_clock_not_the_viewers(tmp_path: Path, skew: int) -> None:
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    calls = {call_id: ScriptedCall(services, call_id, agent_id=agent)
             for call_id, agent in (("CA-ended", "carol"), ("CA-before", "alice"), ("CA-after", "bob"))}
    started: dict[str, float] = {}
    ended: dict[str, float] = {}

    def start(call_id: str) -> None:
        server.run(calls[call_id].start())
        started[call_id] = time.time()

    def end(call_id: str) -> None:
        server.run(calls[call_id].end(1.0))
        ended[call_id] = time.time()

    with ServerThread(new_app(services)) as server, chromium() as browser:
        start("CA-ended")
        start("CA-before")
        end("CA-ended")  # in the page's snapshot, ended by the server's clock
        page = open_page(browser)
        page.clock.install(time=time.time() + skew)
        page.goto(f"{server.url}/supervisor#token={sue}")
        page.wait_for_selector('#status[data-state="live"]')
        start("CA-after")  # from the socket
        wait_until(page, "document.querySelectorAll('#rows tr').length === 3")
        time.sleep(2.5)  # the snapshot's call is a few seconds old; the lengths are redrawn every second
        _assert_lengths(page, started, ended)

        end("CA-before")  # a snapshot call ended over the socket
        wait_until(page, "document.querySelector('#rows tr[data-call-id=\"CA-before\"]').dataset.status === 'ended'")
        time.sleep(1.2)
        _assert_lengths(page, started, ended)
        assert page.script_errors == []
