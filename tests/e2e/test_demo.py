"""``voice demo`` end to end with the engines it can load here: the bundled suggestion model,
real NLU, real storage and the real Twilio client and route; the ASR runtime is a scripted
stand-in that reads the bundled sample call's reference transcript as the audio passes it (the
live runtime has its own tests). The demo prints working links, the call reaches the console
live, and the stored call replays in QA with the model's review."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.e2e.browser import chromium, open_page, screenshot
from tests.server.harness import bundled_sample, scripted_services_loader
from voice import demo
from voice.live.services import LiveServices

pytestmark = pytest.mark.e2e
SPEAKERS = {"Diane": ("inbound", "customer"), "Sheila": ("inbound", "agent")}


def test_demo_serves_a_replayed_call_to_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (demo.BUNDLED_MODEL / "manifest.json").is_file():
        pytest.skip("no bundled demo model: build it with scripts/build_demo_model.py")
    _, script = bundled_sample()  # mono: one mixed "inbound" track, roles as attribution would give them
    lines = [(x.start, x.end, *SPEAKERS[x.speaker], x.text) for x in script]
    monkeypatch.setattr(LiveServices, "load", staticmethod(scripted_services_loader(lines)))
    monkeypatch.setenv("NEXTLINE_SHARED_DATA", str(tmp_path / "no-shared-data"))
    said: list[str] = []
    options = demo.DemoOptions(port=_free_port(), data_dir=tmp_path / "demo", speed=2.0, delay=4.0, exit_after=True)
    run = demo.DemoRun(options, said.append)
    runner = threading.Thread(target=lambda: said.append(f"milestones {asyncio.run(run.run())}"), daemon=True)
    runner.start()
    with chromium() as browser:
        page = open_page(browser)
        page.wait_for_timeout(100)
        console = _wait_for_line(said, "Agent console", runner)
        page.goto(console)
        page.wait_for_selector('#status[data-state="live"]', timeout=30_000)
        page.wait_for_selector("#cards .card:not(.placeholder)", timeout=60_000)
        assert page.locator("#transcript .turn").count() >= 1
        screenshot(page, "demo-console")
        runner.join(timeout=120)
        # once a speaker's role is decided, their earlier "unknown" turns show it as well
        page.wait_for_selector('#status[data-state="ended"]', timeout=30_000)
        stale = page.evaluate("""() => {
            const turns = [...document.querySelectorAll('#transcript .turn')];
            const known = new Set(turns.filter(t => !t.classList.contains('unknown')).map(t => t.dataset.speaker));
            return turns.filter(t => t.classList.contains('unknown') && known.has(t.dataset.speaker)).length;
        }""")
        assert stale == 0
    assert not runner.is_alive()
    assert any(line.startswith("call 1 ended and is stored") for line in said), said
    milestones = run.milestones
    assert milestones["server_ready"] < milestones["first_final"] <= milestones["call_stored"]
    assert "first_suggestion" in milestones


def _wait_for_line(said: list[str], prefix: str, runner: threading.Thread, timeout: float = 180.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in said:
            if line.strip().startswith(prefix):
                return line.split()[-1]
        assert runner.is_alive(), said
        time.sleep(0.1)
    raise AssertionError(f"the demo never printed {prefix!r}: {said}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
