"""WebSocket ingresses: Twilio Media Streams and Genesys AudioHook v2.

``create_router(handler, settings)`` gives the FastAPI routes ``WS /ws/twilio`` and
``WS /ws/audiohook``; the serializers own the wire formats.
"""

from telephony.websocket.audiohook import AudioHookSerializer
from telephony.websocket.routes import create_router
from telephony.websocket.twilio import TwilioSerializer

__all__ = ["AudioHookSerializer", "TwilioSerializer", "create_router"]
