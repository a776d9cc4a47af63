"""QA replay and the supervisor view in a real browser: a processed call with its recorded audio
(the bundled 30 s phone call), clicking a transcript line seeks the audio to that turn, the
model's suggestions sit beside the agent's words, the outcome is set, and the supervisor view
follows a live call; the call list pages by cursor and the upload list survives a failed poll."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import soundfile as sf

from tests.e2e.browser import chromium, open_page, screenshot, wait_until
from tests.server.harness import (
    ScriptedCall,
    ServerThread,
    bundled_sample,
    fake_reviewer_loader,
    make_services,
    new_app,
)
from voice.server.console import console_for
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e
ROLES = {"Diane": ("outbound", "agent"), "Sheila": ("inbound", "customer")}


def _recorded_call(server: ServerThread, services, call_id: str) -> list:
    """The bundled sample through the recorder: its audio becomes the call's WAV, its STM the turns."""
    wav, script = bundled_sample()
    audio, rate = sf.read(wav, dtype="int16")
    call = ScriptedCall(services, call_id, agent_id="alice", record_audio=True)
    server.run(call.start())
    step = rate // 5  # 200 ms frames keep the test quick; the recorder places them by pts
    for offset in range(0, len(audio), step):
        server.run(call.audio("inbound", audio[offset:offset + step], rate, offset / rate))
    for index, line in enumerate(script):
        leg, role = ROLES[line.speaker]
        server.run(call.final(f"t{index}", leg, role, line.text, line.start, line.end))
    server.run(call.end(len(audio) / rate))
    return script


def test_qa_replay_seeks_to_the_clicked_turn(tmp_path: Path) -> None:
    services = make_services(tmp_path, suggest_model=str(tmp_path / "models" / "v7"))
    agents = AgentStore(services.store)
    sue = agents.add("sue", role="supervisor")[1]
    app = new_app(services)
    with ServerThread(app) as server, chromium() as browser:
        console_for(app).reviews.loader = fake_reviewer_loader
        script = _recorded_call(server, services, "CA-qa-1")
        page = open_page(browser)
        page.goto(f"{server.url}/qa#token={sue}")
        page.wait_for_selector("#calls tbody tr a.call-link")
        screenshot(page, "qa-list")

        page.locator("a.call-link", has_text="CA-qa-1").click()
        page.wait_for_selector(".line-row .sugg", timeout=20_000)
        wait_until(page, "document.getElementById('audio').readyState >= 1")
        assert page.evaluate("document.getElementById('audio').duration") == pytest.approx(30.0, abs=0.2)
        target = 7  # "And I'm Sheila in Texas, originally from Chicago."
        line = page.locator(".line").nth(target)
        assert script[target].text in line.inner_text()
        line.click()
        position = page.evaluate("document.getElementById('audio').currentTime")
        assert script[target].start - 0.05 <= position <= script[target].start + 1.0
        assert line.get_attribute("aria-current") == "true"
        assert page.locator(".line[aria-current='true']").count() == 1
        assert page.locator("#summary .stat").count() == 3
        assert page.locator("#export-csv").get_attribute("href") == "/api/qa/calls/CA-qa-1/review.csv"

        page.select_option("#outcome select", "true")
        page.fill("#outcome input[name='value']", "42")
        page.click("#outcome button[type='submit']")
        page.wait_for_selector("#outcome .badge.ok")
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "qa-call")
        screenshot(page, "qa-call-full", full_page=True)
        page.goto(f"{server.url}/qa?outcome=success")
        page.wait_for_selector("#calls tbody tr a.call-link")
        assert page.locator("#calls tbody tr").count() == 1
        assert page.script_errors == []


def test_supervisor_view_follows_live_calls(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser)
        page.goto(f"{server.url}/supervisor#token={sue}")
        page.wait_for_selector('#status[data-state="live"]')
        call = ScriptedCall(services, "CA-sup-1", agent_id="alice")
        server.run(call.start())
        server.run(call.final("t1", "inbound", "customer", "I'd like to cancel my subscription.", 0.5, 2.5))
        server.run(call.nlu("t1", "customer", "cancel_subscription", [], 2.5))
        server.run(call.suggest("t1", [("I'm sorry to hear that. May I ask why?", "retention_probe")], 2.5))
        row = page.locator("#rows tr[data-call-id='CA-sup-1']")
        row.locator(".chip.intent", has_text="cancel_subscription").wait_for()
        row.locator("td.text", has_text="May I ask why?").wait_for()
        assert page.locator("#count-active").inner_text() == "1"
        time.sleep(0.2)
        screenshot(page, "supervisor")
        server.run(call.end(3.0))
        page.wait_for_selector("#rows tr[data-call-id='CA-sup-1'][data-status='ended']")
        assert page.locator("#count-active").inner_text() == "0"
        assert page.script_errors == []


def test_qa_date_filters_are_the_viewers_days(tmp_path: Path) -> None:
    """A call at 21:30 on 26 Nov in New York (02:30 UTC on the 27th) is listed under the 26th there."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from voice.store.tables import CallRow

    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    with ServerThread(new_app(services)) as server, chromium() as browser:
        call = ScriptedCall(services, "CA-evening", agent_id="alice")
        server.run(call.start())
        server.run(call.end(5.0))
        evening = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
        deadline = time.monotonic() + 5
        while True:  # the call's row is written off the event loop
            with services.store.session() as session:
                if session.execute(update(CallRow).where(CallRow.call_id == "CA-evening")
                                   .values(created_at=evening, started_at=evening)).rowcount:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page = open_page(browser, timezone_id="America/New_York")
        page.goto(f"{server.url}/qa?since=2026-11-26&until=2026-11-26#token={sue}")
        wait_until(page, "/^\\d+ calls?$/.test(document.getElementById('calls-count').textContent)")
        rows = page.locator("#calls tbody tr")
        assert rows.count() == 1 and "Nov 26" in rows.first.inner_text()
        page.goto(f"{server.url}/qa?since=2026-11-27&until=2026-11-27")
        wait_until(page, "/^\\d+ calls?$/.test(document.getElementById('calls-count').textContent)")
        assert page.locator("#calls tbody tr").count() == 0
        assert page.script_errors == []


def test_the_upload_list_keeps_polling_after_a_failed_poll(tmp_path: Path) -> None:
    """One failed poll of the jobs (a proxy's 502, a restart) is retried: the job still reaches
    "Done" on the page, and the error goes once a poll succeeds."""
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    job = {"job_id": "j1", "filename": "call.wav", "status": "transcribing", "elapsed": 3, "call_id": None}
    answers = [{"jobs": [job]}, None, {"jobs": [{**job, "status": "done", "call_id": "call-j1"}]}]
    polls: list[float] = []

    def answer(route) -> None:
        body = answers[min(len(polls), len(answers) - 1)]
        polls.append(time.monotonic())
        if body is None:
            route.fulfill(status=502, content_type="application/json", body='{"detail": "Bad Gateway"}')
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser)
        page.route("**/api/qa/uploads", answer)
        page.goto(f"{server.url}/qa#token={sue}")
        wait_until(page, "document.getElementById('upload-error').textContent.includes('Bad Gateway')", timeout=10)
        wait_until(page, "document.querySelector('#jobs .job[data-status=\"done\"]') !== null", timeout=10)
        assert page.locator("#upload-error").text_content() == ""
        assert page.locator("#jobs .job a", has_text="Open").get_attribute("href") == "/qa/calls/call-j1"
        time.sleep(1.5)
        assert len(polls) == 3  # nothing runs any more: polling stopped, as it should
        assert page.script_errors == []


def _stored_calls(services, kind: str, count: int, day: str, first: int = 0) -> list[str]:
    """``count`` ended calls of ``kind`` straight into the store, a minute apart from noon UTC on
    ``day`` plus ``first`` minutes (a few milliseconds, where the recorder would take seconds);
    newest first."""
    from datetime import UTC, datetime, timedelta

    from voice.store.tables import CallRow

    noon = datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC)
    ids = [f"CA-{kind}-{index:03d}" for index in range(first, first + count)]
    with services.store.session() as session:
        session.add_all(CallRow(call_id=call_id, kind=kind, status="done", agent_id="alice", duration=60.0,
                                created_at=noon + timedelta(minutes=index), updated_at=noon,
                                started_at=noon + timedelta(minutes=index))
                        for index, call_id in enumerate(ids, start=first))
    return ids[::-1]


def test_qa_list_loads_more_calls_than_one_page(tmp_path: Path) -> None:
    """105 calls: the first page says it is not all of them, "Load more" appends the rest with the
    same filters and time zone, and a new filter starts again from the first page."""
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    live = _stored_calls(services, "live", 105, "2026-11-20")
    uploaded = _stored_calls(services, "batch", 3, "2026-11-20")
    count = "document.getElementById('calls-count').textContent"
    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser, timezone_id="America/New_York")
        asked: list[dict[str, list[str]]] = []
        page.on("request", lambda request: asked.append(parse_qs(urlsplit(request.url).query))
                if urlsplit(request.url).path == "/api/qa/calls" else None)
        page.goto(f"{server.url}/qa?since=2026-11-20&until=2026-11-20&kind=live#token={sue}")
        wait_until(page, f"{count} === '100 calls shown, more…'")
        rows = page.locator("#calls tbody tr a.call-link")
        assert rows.all_inner_texts() == live[:100]
        more = page.get_by_role("button", name="Load more calls")
        assert more.is_visible()

        _stored_calls(services, "live", 1, "2026-11-20", first=200)  # a call comes in between the pages
        more.click()
        wait_until(page, f"{count} === '105 calls'")
        assert rows.all_inner_texts() == live  # none twice: the next page is what came after the last row
        assert more.is_hidden()
        assert page.evaluate("document.activeElement.textContent") == live[100]  # the first new call
        first, second = asked
        assert "before" not in first and second["before"][0].startswith("2026-11-20T12:05:00")  # live[99]
        for query in (first, second):
            assert query["limit"] == ["100"] and query["kind"] == ["live"]
            assert query["tz"] == ["America/New_York"]
            assert query["since"] == query["until"] == ["2026-11-20"]

        page.select_option("#filters select[name='kind']", "batch")
        wait_until(page, f"{count} === '3 calls'")
        assert rows.all_inner_texts() == uploaded and more.is_hidden()
        assert "before" not in asked[-1] and asked[-1]["kind"] == ["batch"]
        page.select_option("#filters select[name='kind']", "live")
        wait_until(page, f"{count} === '100 calls shown, more…'")
        assert rows.all_inner_texts() == ["CA-live-200", *live[:99]] and more.is_visible()
        screenshot(page, "qa-list-more", full_page=True)
        assert page.script_errors == []
