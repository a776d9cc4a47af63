"""Telephony ingress: SIP/SIPREC, Twilio Media Streams, Genesys AudioHook and WebRTC.

Every ingress turns a call into the same frames (``voice.frames``) and hands them to the
server's ``voice.transport.CallHandler``. Entry points, resolved by the server by dotted path so
``voice`` never imports this package:

- ``telephony.routes:create_router(handler, settings)``: ``WS /ws/twilio``, ``WS /ws/audiohook``,
  ``POST /webrtc/offer``;
- ``telephony.sip:SipServer(handler, settings)``: the SIP UAS/SRS on UDP and TCP;
- ``telephony.settings:TelephonySettings``: their options (``from_env()`` for secrets).

Imports here stay light; the submodules pull in FastAPI or aiortc only when used.
"""
