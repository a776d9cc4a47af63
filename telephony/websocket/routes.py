"""FastAPI routes for the WebSocket ingresses: ``WS /ws/twilio`` and ``WS /ws/audiohook``.

The server mounts ``create_router(handler, settings)``; each connection becomes one call handed
to ``handler``. AudioHook's ``X-API-KEY`` is checked before the upgrade: a missing or wrong key
gets HTTP 401 and no WebSocket (uvicorn's WebSocket denial-response extension). Twilio's
``X-Twilio-Signature`` is checked the same way (403) once ``twilio_auth_token`` is set
(telephony/websocket/twilio_auth.py); without it ``/ws/twilio`` accepts any client, and a warning
at start says so.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, WebSocket
from starlette.responses import PlainTextResponse

from telephony.errors import AuthenticationError
from telephony.settings import TelephonySettings
from telephony.websocket.audiohook import AudioHookSerializer
from telephony.websocket.transport import WebSocketCallTransport
from telephony.websocket.twilio import TwilioSerializer
from telephony.websocket.twilio_auth import candidate_urls, signed_by_twilio
from voice.transport import CallHandler

log = logging.getLogger(__name__)


def audiohook_tenant_for_key(key: str | None, settings: TelephonySettings) -> str | None:
    """The tenant bound to an AudioHook API key ('' when the key names none).

    Raises:
        AuthenticationError: the key is missing or not configured (also when no keys are).
    """
    if key:
        for known, tenant in settings.audiohook_api_keys.items():
            if hmac.compare_digest(key.encode(), known.encode()):
                return tenant
    raise AuthenticationError(
        "missing or invalid X-API-KEY", hint="set NEXTLINE_AUDIOHOOK_API_KEYS on the server"
    )


def create_router(handler: CallHandler, settings: TelephonySettings | None = None) -> APIRouter:
    """Routes for Twilio Media Streams and Genesys AudioHook, feeding calls to ``handler``."""
    settings = settings or TelephonySettings()
    router = APIRouter()
    if not settings.twilio_auth_token:
        log.warning("WS /ws/twilio accepts any client: set NEXTLINE_TWILIO_AUTH_TOKEN to check "
                    "Twilio's request signature")

    @router.websocket("/ws/twilio")
    async def twilio_stream(websocket: WebSocket) -> None:
        if settings.twilio_auth_token and not _signed_by_twilio(websocket, settings):
            await websocket.send_denial_response(
                PlainTextResponse("missing or invalid X-Twilio-Signature", status_code=403))
            return
        await websocket.accept()
        transport = WebSocketCallTransport(
            websocket,
            TwilioSerializer(settings),
            handler,
            max_message_bytes=settings.max_message_bytes,
        )
        await transport.run()

    @router.websocket("/ws/audiohook")
    async def audiohook_stream(websocket: WebSocket) -> None:
        try:
            tenant = audiohook_tenant_for_key(websocket.headers.get("x-api-key"), settings)
        except AuthenticationError as exc:
            await websocket.send_denial_response(PlainTextResponse(exc.message, status_code=401))
            return
        serializer = AudioHookSerializer(
            settings,
            tenant=tenant or None,
            session_id=websocket.headers.get("audiohook-session-id"),
            organization_id=websocket.headers.get("audiohook-organization-id"),
        )
        await websocket.accept()
        transport = WebSocketCallTransport(
            websocket,
            serializer,
            handler,
            max_message_bytes=settings.max_message_bytes,
            close_timeout=settings.audiohook_close_timeout,
        )
        await transport.run()

    return router


def _signed_by_twilio(websocket: WebSocket, settings: TelephonySettings) -> bool:
    urls = candidate_urls(settings.twilio_stream_url, websocket.headers.get("host", ""),
                          websocket.url.path, websocket.url.query)
    if signed_by_twilio(websocket.headers.get("x-twilio-signature"), settings.twilio_auth_token, urls):
        return True
    client = websocket.client.host if websocket.client else "?"
    if client not in _REFUSED_LOGGED and len(_REFUSED_LOGGED) < 1000:  # a scan must not flood the log
        _REFUSED_LOGGED.add(client)
        log.warning("Twilio stream from %s refused: missing or invalid X-Twilio-Signature (signed URL "
                    "not one of %s; set twilio_stream_url behind a proxy)", client, ", ".join(urls) or "-")
    return False


_REFUSED_LOGGED: set[str] = set()
"""Sources whose refused Twilio upgrade was logged (once each)."""
