"""A cap on request bodies, checked before any route reads one.

A JSON route reads its whole body before anything else runs, the token check included, so
without a cap anyone who reaches the port can make the server hold as much as they send.
Measured before the cap: 200 MiB sent without a token to ``POST /api/session`` raised the
process's peak RSS from 136 MiB to 1.26 GiB, and the 422 echoed the 200 MiB back.

QA uploads stream their body to disk and keep their own cap (``voice.server.uploads``).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest request body outside uploads: 50 feedback items of 4,000 characters each, even
written as ``\\u`` escapes, are 1.2 MB."""
STREAMED_PATHS = frozenset({"/api/qa/uploads"})
"""Routes that stream their body to disk under a cap of their own."""


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, declared or counted as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES,
                 exempt: frozenset[str] = STREAMED_PATHS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith(tuple(self.exempt)):  # behind a prefix too
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self._detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # a chunked body: the route answers 413 (FastAPI re-raises it)
                raise HTTPException(413, self._detail)
            return message

        await self.app(scope, limited, send)

    @property
    def _detail(self) -> str:
        return f"the request body is larger than {self.max_bytes // 1024} KiB"
