"""Scripted ingress clients that replay call files in real time (or faster).

Used by the tests and by the live-path benchmark to play N concurrent calls through
``/ws/twilio`` and ``/ws/audiohook``: ``replay_twilio``, ``replay_audiohook``, ``load_call``;
``python -m telephony.clients --help`` for the command line.
"""

from telephony.clients.audiohook import replay_audiohook
from telephony.clients.common import ReplayOptions, ReplayResult, load_call
from telephony.clients.twilio import replay_twilio

__all__ = ["ReplayOptions", "ReplayResult", "load_call", "replay_audiohook", "replay_twilio"]
