"""The console's server-side helpers, built once per app on top of the live services.

Agents, QA listings, feedback, reviews and uploads all use the live server's database; they
are created on first use (after the lifespan loaded the services) and kept on ``app.state``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.requests import HTTPConnection

from voice.store.agents import AgentStore
from voice.store.qa import QaStore


@dataclass
class ConsoleServices:
    """What the console, QA and supervisor routes share."""

    live: Any
    """voice.live.services.LiveServices (hub, registry, store, config)."""
    agents: AgentStore
    qa: QaStore
    feedback: Any
    """voice.server.feedback_api.FeedbackRecorder."""
    reviews: Any
    """voice.server.review.ReviewService."""
    uploads: Any
    """voice.server.uploads.UploadQueue."""
    recent_accesses: OrderedDict[tuple[str, str, str], float] = field(default_factory=OrderedDict)
    """(actor, action, call id) -> when the access log last recorded it (voice/server/access.py)."""

    def close(self) -> None:
        """Stop background work (uploads finish their current file first)."""
        self.uploads.close()
        self.reviews.close()


def live_services(app: FastAPI) -> Any:
    """The loaded LiveServices.

    Raises:
        HTTPException: 503 while the server is still loading its models.
    """
    services = getattr(app.state, "services", None)
    if services is None:
        raise HTTPException(503, "the server is still loading its models; retry in a few seconds")
    return services


def console_of(connection: HTTPConnection) -> ConsoleServices:
    """The ConsoleServices of the app serving ``connection``."""
    return console_for(connection.app)


def console_for(app: FastAPI) -> ConsoleServices:
    """The app's ConsoleServices, created on first use."""
    console: ConsoleServices | None = getattr(app.state, "console", None)
    if console is None:
        console = _build(live_services(app))
        app.state.console = console
    return console


def _build(live: Any) -> ConsoleServices:
    from voice.server.feedback_api import FeedbackRecorder
    from voice.server.review import ReviewService
    from voice.server.uploads import UploadQueue

    qa = QaStore(live.store)
    reviews = ReviewService(live.config, qa, live.store)
    return ConsoleServices(live=live, agents=AgentStore(live.store), qa=qa,
                           feedback=FeedbackRecorder(live.store, live.hub), reviews=reviews,
                           uploads=UploadQueue(live.config, live.store, qa, reviews))


async def close_console(app: FastAPI) -> None:
    """Called when the server stops."""
    console: ConsoleServices | None = getattr(app.state, "console", None)
    if console is not None:
        await asyncio.to_thread(console.close)
