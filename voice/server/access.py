"""Recording accesses to a call's personal data in the access log (voice/store/access_log.py).

Called by the routes that serve a call's transcript (or any of its words: a review's rows, a
call list's latest line, the supervisor feed), recording or export, set its outcome or erase it,
once the caller was authorized: every such request, whatever the client sends (a
``Range`` or ``since`` must not make an access invisible). What a player's seeks and a console's
reconnects would repeat is folded on the server instead: one entry per person, call and action
within :data:`REPEAT_WINDOW`. The write runs off the event loop; if it fails the request is still
answered (the data was already checked as the caller's to see) and the failure is logged, so an
outage of the log never takes the QA pages down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from starlette.requests import HTTPConnection

from voice.server.console import console_of
from voice.store.access_log import AccessAction, AccessEntry, AccessLog, now
from voice.store.agents import Agent

log = logging.getLogger(__name__)
REPEAT_WINDOW = 300.0
"""Seconds within which the same person's same action on the same call is one entry."""
_RECENT_KEPT = 10_000
"""Accesses remembered for folding repeats (oldest forgotten first)."""


async def log_access(connection: HTTPConnection, viewer: Agent, action: AccessAction, call_id: str) -> None:
    """Append who did ``action`` to ``call_id``, from where, now (once per :data:`REPEAT_WINDOW`)."""
    await log_accesses(connection, viewer, action, (call_id,))


async def log_accesses(connection: HTTPConnection, viewer: Agent, action: AccessAction,
                       call_ids: Iterable[str]) -> None:
    """:func:`log_access` for several calls at once (a call list): one trip off the event loop."""
    console = console_of(connection)
    client = connection.client.host if connection.client else None
    at = now()
    entries = [AccessEntry(at, viewer.name, viewer.role, viewer.tenant, action, call_id, client)
               for call_id in dict.fromkeys(call_ids)
               if not _repeated(console.recent_accesses, (viewer.name, action, call_id))]
    if not entries:
        return
    try:
        await asyncio.to_thread(_record_all, AccessLog(console.live.store), entries)
    except Exception:  # noqa: BLE001 - see the module docstring
        log.exception("could not write the access log entries %s of %s by %s", action,
                      ", ".join(e.call_id for e in entries), viewer.name)


def _record_all(access_log: AccessLog, entries: list[AccessEntry]) -> None:
    for entry in entries:
        access_log.record(entry)


def _repeated(recent: OrderedDict[tuple[str, str, str], float], key: tuple[str, str, str]) -> bool:
    """Whether ``key`` was logged within the window; remembers it now otherwise (event loop only)."""
    now_s = time.monotonic()
    last = recent.get(key)
    if last is not None and now_s - last < REPEAT_WINDOW:
        return True
    recent[key] = now_s
    recent.move_to_end(key)
    while len(recent) > _RECENT_KEPT:
        recent.popitem(last=False)
    return False
