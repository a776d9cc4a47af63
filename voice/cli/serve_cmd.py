"""``voice serve``: the live server (HTTP, WebSockets and SIP in one process)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP/WebSocket port (default 8000).")
@click.option("--sip-port", type=int, default=None, help="SIP port, UDP and TCP (default 5060; -1 disables SIP).")
@click.option("--model", default=None, help="Whisper model for live calls: tiny.en (default), base or a path.")
@click.option("--asr-backend", type=click.Choice(["faster-whisper", "torch"]), default=None,
              help="faster-whisper (default; CPU) or torch: batches every call's decodes on a GPU, "
                   "CUDA-graph decode steps (docs/results/gpu.md).")
@click.option("--asr-workers", type=int, default=None,
              help="Concurrent decodes (default: one per core; 4 with --asr-backend torch).")
@click.option("--asr-final-beam", type=click.IntRange(min=1), default=None,
              help="Beam size of each turn's final decode (default 5; 1 = greedy, cheaper, ~3-4 WER points "
                   "worse on phone calls).")
@click.option("--asr-max-batch", type=click.IntRange(min=1), default=None,
              help="Torch backend: requests per decode batch at most (default 256; 64 when a GPU "
                   "runs 12 server processes under MPS).")
@click.option("--asr-threads", type=int, default=None,
              help="CPU threads per decode (default 1; every core with --asr-workers 1).")
@click.option("--asr-partial-window", default=None, metavar="MIN,PAD",
              help='CPU: encoder window of partial decodes, minimum and padding seconds (default "12,8"; '
                   '"20,10" decodes partials like finals: lower one-call p95, more CPU).')
@click.option("--suggest-model", default=None, help="Suggestion model directory (models/<tenant>/<version>).")
@click.option("--models-root", default=None,
              help="Model registry root: each new call gets its tenant's promoted (else newest) model there.")
@click.option("--db", "db_url", default=None, help="Database URL (default: SQLite in --data-dir).")
@click.option("--data-dir", default=None, help="Folder for the default database and call recordings (default ./data).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML config file (keys as in voice/config.py; secrets only from the environment).")
@click.option("--retention-days", type=click.FloatRange(min=0), default=None,
              help="Erase stored calls (transcript, recording, feedback quoting them) this many days after they "
                   "were created; checked hourly. Default 0: keep until `voice calls purge`.")
@click.option("--redact", is_flag=True, default=None,
              help="Mask card numbers, SSNs, e-mails and phone numbers on the agent's screen, in stored turns "
                   "and feedback, and silence them in the recording.")
@click.option("--event-relay", is_flag=True, default=None,
              help="Share call events with the other server processes on the same PostgreSQL --db, so "
                   "each lists and streams every call (several processes per GPU).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"],
                                               case_sensitive=False),
              default="info", show_default=True, help="Server log verbosity.")
def serve(host: str | None, port: int | None, sip_port: int | None, model: str | None,
          asr_backend: str | None, asr_workers: int | None, asr_final_beam: int | None,
          asr_max_batch: int | None,
          asr_threads: int | None, asr_partial_window: str | None, suggest_model: str | None,
          models_root: str | None, db_url: str | None, data_dir: str | None, config_file: Path | None,
          retention_days: float | None, redact: bool | None, event_relay: bool | None, log_level: str) -> None:
    """Serve live calls: Twilio (WS /ws/twilio), AudioHook (WS /ws/audiohook), WebRTC
    (POST /webrtc/offer) and SIP/SIPREC; events at WS /ws/calls/{id}/events and
    GET /api/calls/{id}/events (SSE). Settings: flags > NEXTLINE_* environment > --config file.

    \b
    Example:
      NEXTLINE_AUDIOHOOK_API_KEYS=secret:acme voice serve --suggest-model models/acme/v3
    """
    import logging

    import uvicorn

    from voice.config import load_config
    from voice.errors import VoiceError
    from voice.live.asr_runtime import check_backend, partial_window
    from voice.server.app import create_app
    from voice.server.relay import relay_conninfo

    try:
        config = load_config(config_file, {"host": host, "port": port, "sip_port": sip_port, "model": model,
                                           "asr_backend": asr_backend, "asr_workers": asr_workers,
                                           "asr_max_batch": asr_max_batch, "asr_final_beam": asr_final_beam,
                                           "asr_threads": asr_threads,
                                           "asr_partial_window": asr_partial_window,
                                           "suggest_model": suggest_model, "models_root": models_root,
                                           "db_url": db_url, "data_dir": data_dir,
                                           "retention_days": retention_days, "redact": redact,
                                           "event_relay": event_relay})
        partial_window(config.asr_partial_window)  # a bad window fails here, not after the models load
        check_backend(config.asr_backend)
        if config.event_relay:
            relay_conninfo(config.database_url)  # PostgreSQL only: say so before the models load
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    check_asr_model(config.model, config.asr_backend)
    _check_suggest_model(config.suggest_model, config.models_root)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"nextline serving on http://{config.host}:{config.port} (SIP port {config.sip_port})", err=True)
    # proxy_headers off: only the app's trusted_proxies decides whose forwarded headers count (uvicorn
    # would also believe any process on this host).
    try:
        app = create_app(config)
    except VoiceError as exc:  # a bad telephony block in the config file, say
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, ws="websockets",
                proxy_headers=False)


def check_asr_model(model: str, backend: str = "ctranslate2") -> None:
    """A Whisper model name or path that resolves to nothing fails here, in one line, before
    uvicorn starts; at start-up it stopped the server with a traceback after "serving on".
    The torch backend also takes a transfer file (``*.safetensors``, the GPU route's
    ``scripts/gpu/prepare.py``), as ``TorchWhisperDecoder.load`` does."""
    from asr.models import ModelNotFoundError, resolve_whisper_model

    if backend == "torch" and Path(model).suffix == ".safetensors":
        if not Path(model).is_file():
            raise click.ClickException(f"--model {model}: no such transfer file")
        return
    try:
        resolve_whisper_model(model)
    except ModelNotFoundError as exc:
        raise click.ClickException(f"--model {model}: {exc}") from exc


def _check_suggest_model(suggest_model: str | None, models_root: str | None) -> None:
    """A --suggest-model that names no model fails here, in one line, before the models load;
    at start-up it stopped the server with a traceback of the ASGI lifespan."""
    if not suggest_model:
        return
    from suggest.errors import SuggestError
    from suggest.registry import ModelRegistry

    registry = ModelRegistry(Path(models_root)) if models_root else ModelRegistry()
    try:
        registry.resolve(suggest_model)
    except SuggestError as exc:
        raise click.ClickException(f"--suggest-model: {exc}") from exc


def register(cli: click.Group) -> None:
    """Attach the command to the main CLI."""
    cli.add_command(serve)
