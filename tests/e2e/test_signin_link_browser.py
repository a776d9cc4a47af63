"""A ``#token=`` sign-in link in a real browser (voice/server/static/js/api.js).

Before, a link replaced the token stored in the browser without asking: gus (globex) sent sam
(acme) ``/qa#token=<gus's token>``, sam stayed signed in as gus, and what he uploaded next landed
in gus's tenant. Now a link that would replace someone else's stored token asks first, naming
who it signs in as; dismissed, nothing changes. With no token stored the link signs in directly
(``voice demo`` prints such links), and in every case the token leaves the address bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium, open_page
from tests.server.harness import ServerThread, make_services, new_app
from voice.store.agents import AgentStore

pytestmark = pytest.mark.e2e
TOKEN_KEY = "nextline.token"


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    browser: Any


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The real app with sam (acme's supervisor) and gus (globex's), and a chromium."""
    services = make_services(tmp_path)
    agents = AgentStore(services.store)
    tokens = {name: agents.add(name, role="supervisor", tenant=tenant)[1]
              for name, tenant in (("sam", "acme"), ("gus", "globex"))}
    with ServerThread(new_app(services)) as server, chromium() as browser:
        yield Site(server.url, tokens, browser)


def _open_link(page: Any, url: str, answer: str | None) -> list[str]:
    """Open ``url`` as a fresh page load (not a same-document hash change) in ``page``'s browser
    profile; answer any dialog with ``answer`` (``accept``/``dismiss``); returns the dialogs' texts."""
    shown: list[str] = []

    def on_dialog(dialog: Any) -> None:
        shown.append(f"{dialog.type}: {dialog.message}")
        dialog.accept() if answer == "accept" else dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto("about:blank")
        page.goto(url)
        page.wait_for_selector(".who strong", timeout=15_000)
    finally:
        page.remove_listener("dialog", on_dialog)
    return shown


def _state(page: Any) -> dict[str, Any]:
    """Who the top bar shows, the stored token, the address, and who the session cookie is."""
    return page.evaluate("""async (key) => ({
        shown: document.querySelector('.who strong').textContent,
        stored: localStorage.getItem(key),
        hash: location.hash,
        href: location.href,
        cookie: (await (await fetch('/api/me', {credentials: 'same-origin'})).json()).name,
    })""", TOKEN_KEY)


def _signed_in_as_sam(site: Site) -> Any:
    page = open_page(site.browser)
    assert _open_link(page, f"{site.url}/qa#token={site.tokens['sam']}", answer=None) == []
    return page


def test_dismissing_a_link_with_another_users_token_keeps_the_signed_in_user(site: Site) -> None:
    page = _signed_in_as_sam(site)  # with no token stored, the link signs in directly: no dialog
    first = _state(page)
    assert first["shown"] == "sam" and first["cookie"] == "sam" and first["stored"] == site.tokens["sam"]
    assert first["hash"] == "" and site.tokens["sam"] not in first["href"]

    shown = _open_link(page, f"{site.url}/qa#token={site.tokens['gus']}", answer="dismiss")
    assert len(shown) == 1 and shown[0].startswith("confirm: ")
    assert "another user" in shown[0] and "gus" in shown[0] and "sam" in shown[0]  # says who is who
    state = _state(page)
    assert state["shown"] == "sam" and state["cookie"] == "sam"
    assert state["stored"] == site.tokens["sam"]
    assert state["hash"] == "" and site.tokens["gus"] not in state["href"]
    page.goto(f"{site.url}/qa")  # the next visit is still sam's
    page.wait_for_selector(".who strong")
    assert _state(page)["shown"] == "sam"
    assert page.script_errors == []


def test_accepting_a_link_with_another_users_token_switches_to_them(site: Site) -> None:
    page = _signed_in_as_sam(site)
    shown = _open_link(page, f"{site.url}/supervisor#token={site.tokens['gus']}", answer="accept")
    assert len(shown) == 1 and "gus" in shown[0]
    state = _state(page)
    assert state["shown"] == "gus" and state["cookie"] == "gus"
    assert state["stored"] == site.tokens["gus"]
    assert state["hash"] == "" and site.tokens["gus"] not in state["href"]
    assert page.script_errors == []


def test_a_link_with_the_stored_token_or_an_invalid_one_asks_nothing(site: Site) -> None:
    page = _signed_in_as_sam(site)
    assert _open_link(page, f"{site.url}/qa#token={site.tokens['sam']}", answer="accept") == []
    assert _open_link(page, f"{site.url}/qa#token=nl_not-a-token", answer="accept") == []
    state = _state(page)
    assert state["shown"] == "sam" and state["stored"] == site.tokens["sam"] and state["hash"] == ""
    assert page.script_errors == []
