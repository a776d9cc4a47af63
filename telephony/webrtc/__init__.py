"""WebRTC ingress (aiortc): ``POST /webrtc/offer`` for browser softphones."""

from telephony.webrtc.signaling import create_router
from telephony.webrtc.transport import WebRtcCall, WebRtcIngress, WebRtcOffer

__all__ = ["WebRtcCall", "WebRtcIngress", "WebRtcOffer", "create_router"]
