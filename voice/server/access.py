"""Recording accesses to a call's personal data in the access log (voice/store/access_log.py).

Called by the routes that serve a call's transcript, recording or export, set its outcome or
erase it, once the caller was authorized. The write runs off the event loop; if it fails the
request is still answered (the data was already checked as the caller's to see) and the failure
is logged, so an outage of the log never takes the QA pages down with it.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import HTTPConnection

from voice.server.console import console_of
from voice.store.access_log import AccessAction, AccessEntry, AccessLog, now
from voice.store.agents import Agent

log = logging.getLogger(__name__)


async def log_access(connection: HTTPConnection, viewer: Agent, action: AccessAction, call_id: str) -> None:
    """Append who did ``action`` to ``call_id``, from where, now."""
    entry = AccessEntry(now(), viewer.name, viewer.role, viewer.tenant, action, call_id,
                        connection.client.host if connection.client else None)
    try:
        await asyncio.to_thread(AccessLog(console_of(connection).live.store).record, entry)
    except Exception:  # noqa: BLE001 - see the module docstring
        log.exception("could not write the access log entry %s of %s by %s", action, call_id, viewer.name)
