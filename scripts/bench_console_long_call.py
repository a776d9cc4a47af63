"""Time for the agent console, opened on a long call, to lay out the call's whole history.

A scripted call of N turns (a final and an nlu event each) is published to a real server, then
the console is opened on it in chromium; the script prints the time until every turn is on the
page and the cost of one more live final at the end of the log. Results: docs/results/ui.md.

Usage: .venv/bin/python scripts/bench_console_long_call.py [--turns 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.browser import chromium, open_page, wait_until  # noqa: E402
from tests.server.harness import ScriptedCall, ServerThread, make_services, new_app  # noqa: E402
from voice.store.agents import AgentStore  # noqa: E402

EXTRA_FINALS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3000, help="turns in the call's history")
    turns = parser.parse_args().turns
    with tempfile.TemporaryDirectory() as folder:
        services = make_services(Path(folder))
        agent = AgentStore(services.store).add("alice")[1]
        with ServerThread(new_app(services)) as server, chromium() as browser:
            call = ScriptedCall(services, "CA-long", agent_id="alice")
            server.run(call.start())

            async def history() -> None:
                for i in range(turns):
                    leg, role = ("inbound", "customer") if i % 2 else ("outbound", "agent")
                    await call.final(f"t{i}", leg, role, f"turn number {i} with some words in it",
                                     i * 2.0, i * 2.0 + 1.5)
                    await call.nlu(f"t{i}", role, None, [], i * 2.0 + 1.5)

            server.run(history(), timeout=600)
            page = open_page(browser)
            started = time.monotonic()
            page.goto(f"{server.url}/agent#token={agent}")
            wait_until(page, f"document.querySelectorAll('#transcript .turn').length === {turns}",
                       timeout=600, poll=0.1)
            laid_out = time.monotonic() - started
            per_final = page.evaluate(f"""() => {{ const view = window.nextline.console.transcript;
                const began = performance.now();
                for (let i = 0; i < {EXTRA_FINALS}; i++) view.final({{turn_id: 'x' + i, leg: 'inbound',
                    role: 'customer', speaker: 'inbound', text: 'hi', start: 1e6 + i}});
                return (performance.now() - began) / {EXTRA_FINALS}; }}""")
    print(f"{turns} turns on the page after {laid_out:.1f} s; one more final: {per_final:.2f} ms")


if __name__ == "__main__":
    main()
