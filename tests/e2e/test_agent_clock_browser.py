"""The agent console on a computer whose clock is wrong: the live call's length in the call bar
comes from the server's clock (``server_time`` of ``GET /api/calls``), as on the supervisor view.
Playwright's fake clock sets the browser's time 47 minutes ahead of the server's, or behind."""

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
"""How far the shown length may be from the server's: far inside the 2,820 s a viewer's skewed
clock would add or take, and wide enough for a page redrawn late on a loaded machine."""


@pytest.mark.parametrize("skew", [SKEW_S, -SKEW_S], ids=["viewer-ahead", "viewer-behind"])
def test_the_call_bar_shows_the_calls_length_on_the_servers_clock(tmp_path: Path, skew: int) -> None:
    services = make_services(tmp_path)
    alice = AgentStore(services.store).add("alice")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        server.run(ScriptedCall(services, "CA-clock", agent_id="alice").start())
        started = time.time()
        page = open_page(browser)
        page.clock.install(time=time.time() + skew)
        page.goto(f"{server.url}/agent#token={alice}")
        page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
        time.sleep(2.5)  # the length is redrawn every second
        detail = wait_until(page, "document.getElementById('call-detail').textContent")
        parts = [int(part) for part in detail.split(" · ")[-1].split(":")]  # "m:ss" or "h:mm:ss"
        shown, expected = sum(part * 60 ** i for i, part in enumerate(reversed(parts))), time.time() - started
        # The server's length: it counts (the call is 2.5 s old or more, so a length clamped at
        # 0:00 by a clock that is behind fails) and is nowhere near 47 minutes off.
        assert shown >= 1 and abs(shown - expected) <= MARGIN_S, (detail, expected)
        assert page.script_errors == []
