"""Headerless PCM uploaded from the QA page in a real browser: choosing a .pcm file asks for its
sample rate and channels, the upload carries them and the job finishes; a value the server
refuses is shown in its words, not as "Unprocessable Entity".

Whisper is left out as in tests/server/test_raw_uploads.py: the batch path decodes the file with
the real ``load_audio`` and the options the job built.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import chromium, open_page, wait_until
from tests.server.harness import ServerThread, make_services, new_app
from tests.server.test_raw_uploads import decode_only, stereo_pcm
from voice.batch import pipeline
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e


def test_a_headerless_pcm_file_is_uploaded_with_its_rate_and_channels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "transcribe_file", decode_only)
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    pcm = {"name": "trunk-7.pcm", "mimeType": "application/octet-stream", "buffer": stereo_pcm(2.0, 8000)}
    with ServerThread(new_app(services)) as server, chromium() as browser:
        page = open_page(browser)
        page.goto(f"{server.url}/qa#token={sue}")
        page.wait_for_selector("#upload-panel:not([hidden])")
        assert page.locator("#raw-fields").is_hidden()
        page.set_input_files("#upload input[name=file]", pcm)
        assert page.locator("#raw-fields").is_visible()
        page.fill("#upload input[name=raw_rate]", "8000")
        page.fill("#upload input[name=raw_channels]", "2")
        page.click("#upload button[type=submit]")
        wait_until(page, "document.querySelector('#jobs .job[data-status=\"done\"]') !== null")
        assert page.locator("#raw-fields").is_hidden()  # the form was reset for the next file

        # A rate the server refuses (the field's own min stopped by hand) is explained on the page.
        page.set_input_files("#upload input[name=file]", pcm)
        page.evaluate("document.querySelector('#upload input[name=raw_rate]').removeAttribute('min')")
        page.fill("#upload input[name=raw_rate]", "100")
        page.click("#upload button[type=submit]")
        wait_until(page, "document.getElementById('upload-error').textContent !== ''")
        error = page.locator("#upload-error").text_content()
        assert error == "raw_rate: Input should be greater than or equal to 8000", error
        assert page.script_errors == []
        jobs = httpx.get(f"{server.url}/api/qa/uploads", headers={"Authorization": f"Bearer {sue}"}).json()["jobs"]
    assert [(j["status"], j["raw"], j["audio_seconds"]) for j in jobs] == [
        ("done", {"sample_rate": 8000, "channels": 2}, pytest.approx(2.0))]
