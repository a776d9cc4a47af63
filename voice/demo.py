"""``voice demo``: the server on an embedded SQLite database, a suggestion model, a real call
replayed through the Twilio WebSocket path in real time, and the console's URL.

What it uses depends on what is there:

- with the shared evaluation data (``../shared/data`` or ``$NEXTLINE_SHARED_DATA``): a model
  trained on PersuasionForGood (Apache-2.0; trained once, cached) and a SpokenWOZ stereo phone
  call (CC BY-NC 4.0: local evaluation use only, never shipped);
- in a fresh clone without it: the 30 s two-party phone call that ships in the pyannote.audio
  wheel (MIT; mono, so it is streamed as one mixed track and the server's speaker attribution
  assigns the roles) and the model bundled in the package (``voice/demo_assets/model``) when a
  release carries one; otherwise the console runs without suggestions and says so.

Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice.errors import ConfigError
from voice.registry import resolve

DEMO_AGENT = "demo-agent"
DEMO_SUPERVISOR = "demo-supervisor"
SPOKENWOZ_CALL = "SNG0072"
REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = Path(__file__).resolve().parent / "demo_assets" / "model"


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What ``voice demo`` runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data/demo")
    """SQLite database, call recordings, cached model and encoder."""
    asr_model: str = "tiny.en"
    speed: float = 1.0
    """1.0 = real time."""
    delay: float = 3.0
    """Seconds between printing the URL and starting the call (time to open the page)."""
    calls: int = 1
    """Calls to replay one after another (0 = none: serve only)."""
    exit_after: bool = False
    """Stop the server once the replayed calls are stored (tests, CI)."""
    bundled_model: bool = False
    """Use the small bundled model even when the shared data could train the full one."""


@dataclass(frozen=True)
class DemoCall:
    """The recording the demo replays and where it comes from."""

    path: Path
    label: str


def shared_data_root() -> Path | None:
    """``$NEXTLINE_SHARED_DATA`` or ``../shared/data`` beside the repository, if present."""
    configured = os.environ.get("NEXTLINE_SHARED_DATA")
    root = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    return root if root.is_dir() else None


def demo_call(shared: Path | None) -> DemoCall:
    """A SpokenWOZ stereo call when the shared data is there, else the wheel's phone sample."""
    if shared is not None:
        path = shared / "diarization" / "spokenwoz_calls_8k" / f"{SPOKENWOZ_CALL}.wav"
        if path.is_file():
            return DemoCall(path, f"SpokenWOZ call {SPOKENWOZ_CALL} (stereo, 8 kHz; CC BY-NC 4.0, local use only)")
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no call to replay: pyannote.audio is not installed", hint="run scripts/setup.sh")
    path = Path(next(iter(spec.submodule_search_locations))) / "sample" / "sample.wav"
    return DemoCall(path, "the 30 s phone call bundled with pyannote.audio (MIT; mono, roles by speaker attribution)")


def demo_model(shared: Path | None, data_dir: Path, say: Callable[[str], None], *,
               prefer_bundled: bool = False) -> tuple[Path | None, str]:
    """The suggestion model directory and a line saying what it is (None: no suggestions)."""
    bundled = (BUNDLED_MODEL / "manifest.json").is_file()
    has_pfg = shared is not None and (shared / "dialogues" / "persuasionforgood").is_dir()
    if has_pfg and shared is not None and not (prefer_bundled and bundled):
        from voice.batch.demo_model import cached_pfg_model

        path = cached_pfg_model(shared / "dialogues" / "persuasionforgood", data_dir / "models",
                                data_dir / "cache", say)
        return path, f"trained on PersuasionForGood (Apache-2.0), {path.name}"
    if bundled:
        from voice.batch.demo_model import model_loads

        path = _materialise_bundled(data_dir, say)
        if model_loads(path):
            return path, "bundled model trained on PersuasionForGood (Apache-2.0)"
        return None, ("none: the bundled model does not match this suggestion engine "
                      "(rebuild it with scripts/build_demo_model.py), so the console shows no suggestions")
    return None, "none: no shared data and no bundled model, so the console shows no suggestions"


def _materialise_bundled(data_dir: Path, say: Callable[[str], None]) -> Path:
    """Copy the bundled model out and add its sentence encoder, exported from the installed MiniLM."""
    from voice.batch.demo_model import attach_encoder

    target = data_dir / "models" / "demo" / "bundled"
    shipped = (BUNDLED_MODEL / "manifest.json").read_bytes()
    current = (target / "manifest.json").read_bytes() if (target / "manifest.json").is_file() else None
    if current != shipped or not (target / "encoder").is_dir():  # first run, or a newer release's model
        say("preparing the bundled suggestion model (once)")
        shutil.copytree(BUNDLED_MODEL, target, dirs_exist_ok=True)
        attach_encoder(target, data_dir / "cache")
    return target


def ensure_agents(database_url: str) -> dict[str, str]:
    """Fresh tokens for the demo agent and supervisor (created on first run)."""
    from voice.store import Store
    from voice.store.agents import AgentError, AgentStore

    store = Store.open(database_url)
    try:
        agents, tokens = AgentStore(store), {}
        for name, role in ((DEMO_AGENT, "agent"), (DEMO_SUPERVISOR, "supervisor")):
            try:
                tokens[name] = agents.add(name, role=role)[1]  # type: ignore[arg-type]
            except AgentError:
                tokens[name] = agents.rotate(name)
        return tokens
    finally:
        store.close()


class DemoRun:
    """One ``voice demo``: serve, replay, report."""

    def __init__(self, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.started = time.perf_counter()
        self.milestones: dict[str, float] = {}
        self._twilio_token = secrets.token_hex(16)  # the demo's own "Twilio account"

    def mark(self, name: str) -> float:
        """Seconds since the command started, remembered under ``name``."""
        self.milestones.setdefault(name, round(time.perf_counter() - self.started, 2))
        return self.milestones[name]

    async def run(self) -> dict[str, float]:
        """Run until interrupted (or until the calls are stored with ``exit_after``)."""
        import uvicorn

        from voice.server.app import create_app

        shared = shared_data_root()
        call = demo_call(shared)
        model, model_label = await asyncio.to_thread(demo_model, shared, self.options.data_dir, self.say,
                                                     prefer_bundled=self.options.bundled_model)
        config = self._config(model)
        tokens = await asyncio.to_thread(ensure_agents, config.database_url)
        self.say(f"suggestion model: {model_label}")
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=config.port, log_level="warning", proxy_headers=False))
        serving = asyncio.create_task(server.serve())
        await _until_started(server, serving)
        self.mark("server_ready")
        self._print_urls(tokens)
        watcher = asyncio.create_task(self._watch(app))
        try:
            if self.options.calls:
                await self._replay(call, app)
            if self.options.exit_after:
                server.should_exit = True
            await serving
        finally:
            watcher.cancel()
        return self.milestones

    def _config(self, model: Path | None) -> Any:
        from voice.config import load_config

        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        # The replayed call signs its stream as Twilio does, so the demo runs the checked path.
        return load_config(None, {"host": self.options.host, "port": self.options.port, "sip_port": -1,
                                  "model": self.options.asr_model, "data_dir": str(self.options.data_dir),
                                  "suggest_model": str(model) if model else None,
                                  "telephony": {"twilio_auth_token": self._twilio_token}}, environ={})

    def _print_urls(self, tokens: dict[str, str]) -> None:
        base = f"http://{self.options.host}:{self.options.port}"
        self.say(f"ready in {self.mark('server_ready'):.1f} s")
        self.say(f"  Agent console  {base}/agent#token={tokens[DEMO_AGENT]}")
        self.say(f"  QA replay      {base}/qa#token={tokens[DEMO_SUPERVISOR]}")
        self.say(f"  Supervisor     {base}/supervisor#token={tokens[DEMO_SUPERVISOR]}")

    async def _replay(self, call: DemoCall, app: Any) -> None:
        load_call = resolve("telephony.clients:load_call")
        replay_twilio = resolve("telephony.clients:replay_twilio")
        # A mono recording carries both parties: flag it so the server attributes speakers.
        options = resolve("telephony.clients:ReplayOptions")(speed=self.options.speed, tenant="demo",
                                                            agent_id=DEMO_AGENT, mixed=True)
        audio = await asyncio.to_thread(load_call, call.path)
        url = f"ws://{self.options.host}:{self.options.port}/ws/twilio"
        for number in range(self.options.calls):
            self.say(f"call {number + 1}: replaying {call.label} through {url} in "
                     f"{self.options.delay:.0f} s (open the console now)")
            await asyncio.sleep(self.options.delay)
            await replay_twilio(url, audio, options, auth_token=self._twilio_token)
            call_id = await _stored_call(app)
            self.mark("call_stored")
            self.say(f"call {number + 1} ended and is stored: replay it at "
                     f"http://{self.options.host}:{self.options.port}/qa/calls/{call_id}")

    async def _watch(self, app: Any) -> None:
        """Print the call as the console shows it (turns with speaker, role, entities and
        intent; suggestions), and note when words and a suggestion first appeared."""
        hub = app.state.services.hub
        finals: dict[str, dict[str, Any]] = {}
        async for event in hub.subscribe_all():
            kind = event.get("type")
            if kind == "transcript.final":
                if "first_final" not in self.milestones:
                    self.say(f"first final transcript at {self.mark('first_final'):.1f} s")
                finals[str(event.get("turn_id"))] = event
            elif kind == "nlu" and str(event.get("turn_id")) in finals:
                self.say(turn_line(finals.pop(str(event["turn_id"])), event))
            elif kind == "suggestion":
                if "first_suggestion" not in self.milestones:
                    self.say(f"first suggestion at {self.mark('first_suggestion'):.1f} s")
                for item in event.get("suggestions", [])[:1]:
                    self.say(f"      suggested next line ({item.get('action')}, "
                             f"{event.get('latency_ms', {}).get('total', 0):.0f} ms): {item.get('text')}")


def turn_line(final: dict[str, Any], nlu: dict[str, Any]) -> str:
    """One transcript line: time, role and speaker, text, entities and intent."""
    entities = ", ".join(f"{e.get('label')}={e.get('text')}" for e in nlu.get("entities") or [])
    extras = [f"entities: {entities}"] if entities else []
    if nlu.get("intent"):
        extras.append(f"intent: {nlu['intent']}")
    speaker = f" {final['speaker']}" if final.get("speaker") else ""
    line = f"  [{final.get('start', 0):6.1f} s] {final.get('role')}{speaker}: {final.get('text')}"
    return line + (f"   ({'; '.join(extras)})" if extras else "")


async def _until_started(server: Any, serving: asyncio.Task[Any]) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        if serving.done():
            with contextlib.suppress(SystemExit):
                serving.result()
            raise ConfigError("the server did not start", hint="is the port already in use? try --port 8010")
        await asyncio.sleep(0.05)


async def _stored_call(app: Any, wait_s: float = 60.0) -> str:
    """The newest demo call once the server has stored it."""
    registry = app.state.services.registry
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls = registry.list(agent_id=DEMO_AGENT)
        if calls and calls[0].status == "ended":
            return str(calls[0].call_id)
        await asyncio.sleep(0.2)
    raise ConfigError("the replayed call was not stored in time", hint="see the server log above")
