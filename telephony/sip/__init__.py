"""SIP and SIPREC ingress: a UAS/SRS on UDP and TCP that turns calls into per-leg frames.

Start it from the server with ``SipServer(handler, settings)`` then ``await server.start()``;
``await server.stop()`` on shutdown.
"""

from telephony.sip.server import SipServer, SipStats

__all__ = ["SipServer", "SipStats"]
