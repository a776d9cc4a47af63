"""Every HTTP/WebSocket ingress in one router, for the server to mount by dotted path.

``telephony.routes:create_router`` gives ``WS /ws/twilio``, ``WS /ws/audiohook`` and
``POST /webrtc/offer``. The SIP listener is not HTTP: start ``telephony.sip:SipServer``
alongside (see ``docs/telephony.md``).
"""

from __future__ import annotations

from fastapi import APIRouter

from telephony import webrtc, websocket
from telephony.settings import TelephonySettings
from telephony.webrtc.signaling import Authorize
from voice.transport import CallHandler


def create_router(handler: CallHandler, settings: TelephonySettings | None = None, *,
                  authorize_webrtc: Authorize | None = None) -> APIRouter:
    """Twilio, AudioHook and WebRTC routes feeding new calls to ``handler``; ``authorize_webrtc``
    decides who may post a WebRTC offer and for which tenant and agent (see telephony.webrtc)."""
    settings = settings or TelephonySettings()
    router = APIRouter()
    router.include_router(websocket.create_router(handler, settings))
    router.include_router(webrtc.create_router(handler, settings, authorize=authorize_webrtc))
    return router
