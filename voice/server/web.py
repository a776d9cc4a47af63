"""The pages: plain HTML, CSS and ES modules from ``voice/server/static`` (no build step).

Pages hold no data: everything comes from the authenticated API after the page loads, so the
HTML itself is public. A strict Content-Security-Policy allows only this origin's scripts.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"/agent": "agent.html", "/qa": "qa.html", "/supervisor": "supervisor.html"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'")


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def create_router() -> APIRouter:
    """``/`` (to the console), ``/agent``, ``/qa``, ``/qa/calls/{id}`` and ``/supervisor``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/agent")

    for path, name in PAGES.items():
        router.add_api_route(path, lambda name=name: _page(name), methods=["GET"])

    @router.get("/qa/calls/{call_id}")
    async def qa_call_page(call_id: str) -> FileResponse:
        return _page("qa-call.html")

    return router


class _NoCache:
    """Static files revalidate on every load: no build step means no hashed file names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).extend(
                    [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_static(app: FastAPI) -> None:
    """Serve ``/static/...`` (CSS, JS modules, icons)."""
    app.mount("/static", _NoCache(StaticFiles(directory=STATIC_DIR)), name="static")
