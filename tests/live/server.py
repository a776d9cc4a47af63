"""The whole ``voice serve`` process inside the test run: uvicorn on a free 127.0.0.1 port in a
background thread, the SIP listener on another, real models (tiny.en), a SQLite file.

The server runs on its own event loop so that one instance (models loaded once) serves every
test of the folder, while each test drives its peers from its own ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from voice.config import ServerConfig
from voice.server.app import create_app

AUDIOHOOK_KEY = "live-test-key"
START_TIMEOUT = 300.0
"""Seconds for the lifespan to load the models (a loaded shared machine is slow)."""


class LiveServer:
    """``create_app`` exactly as ``voice serve`` builds it, served in a thread."""

    def __init__(self, data_dir: Path, *, model: str = "tiny.en") -> None:
        self.config = ServerConfig(
            host="127.0.0.1", sip_port=0, model=model, data_dir=str(data_dir),
            audiohook_api_keys={AUDIOHOOK_KEY: ""},
            telephony={"rtp_port_min": 0, "rtp_port_max": 0},  # OS-chosen: no clash with neighbours
        )  # fmt: skip
        self.app = create_app(self.config)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="on", ws="websockets")
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="live-server", daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of HTTP and WebSockets."""
        return f"127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def services(self) -> Any:
        """The loaded ``LiveServices`` (store, hub, SIP server, ...)."""
        return self.app.state.services

    @property
    def sip(self) -> Any:
        """The running ``telephony.sip.SipServer``."""
        return self.services.sip

    @property
    def sip_port(self) -> int:
        """The SIP listener's UDP port."""
        return int(self.sip.ports["udp"])

    def add_agent(self, name: str, role: str = "agent") -> str:
        """Create an agent (as ``voice agents add NAME --role ROLE``) and return the token."""
        from voice.store.agents import AgentStore

        _, token = AgentStore(self.services.store).add(name, role=role)
        return token

    def call_on_loop(self, fn: Any) -> Any:
        """Run ``fn()`` on the server's event loop (its objects are not thread-safe) and wait."""
        assert self.loop is not None

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._server.serve(sockets=[self._sock]))

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start (see the log above)")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self._sock.close()
