"""Server configuration: defaults < config file (YAML) < environment (NEXTLINE_*) < flags.

Secrets (API keys, database passwords in URLs) are read from the environment only and are kept
out of ``repr``; a config file that names one is refused.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from voice.errors import ConfigError

SECRET_KEYS = {"audiohook_api_keys", "db_url"}
"""Keys that may only come from the environment (they carry credentials)."""


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything ``voice serve`` needs; one instance per process."""

    host: str = "127.0.0.1"
    """HTTP/WebSocket bind address."""
    port: int = 8000
    """HTTP/WebSocket port."""
    sip_port: int = 5060
    """SIP listener port (UDP and TCP); 0 picks a free one, -1 disables SIP."""
    model: str = "tiny.en"
    """Whisper model for live calls: tiny.en, base or a CTranslate2 directory."""
    device: str = "auto"
    """cpu, cuda or auto."""
    asr_backend: str = "faster-whisper"
    """faster-whisper (CTranslate2; the CPU path) or torch: batched decoding across calls with
    CUDA-graph decode steps, for a GPU (docs/results/gpu.md)."""
    asr_workers: int = 0
    """Concurrent decodes (0 = one per core with faster-whisper; 4 with the torch backend)."""
    asr_final_beam: int = 5
    """Beam size of each turn's final decode (1 = greedy: cheaper, but over the 128 SpokenWOZ
    turns +3.7 WER points over offline against +0.0 with 5 on the torch backend, and 28.3 against
    25.0 % with faster-whisper)."""
    asr_max_batch: int = 0
    """Torch backend: requests per decode batch at most (0 = 256). Each decode worker holds one
    CUDA graph per power-of-two bucket up to it, about 12 MB per row with tiny.en (25 GB for 4
    workers at 256); several processes per GPU want less (12 processes: 2 workers, 64)."""
    asr_threads: int = 0
    """CPU threads per decode (0 = 1, or every core when ``asr_workers`` is 1)."""
    asr_partial_window: str = "12,8"
    """CPU: encoder window of partial decodes as "minimum,padding" seconds ("20,10" = the finals').
    Shorter is cheaper; finals replace the partials' words anyway (docs/results/streaming.md)."""
    event_relay: bool = False
    """Share call events with the other server processes on the same PostgreSQL database
    (LISTEN/NOTIFY; voice/server/relay.py): each process then lists and streams every call."""
    suggest_model: str | None = None
    """Suggestion model directory (models/<tenant>/<version>), or none."""
    models_root: str | None = None
    """Root of the per-tenant model registry; each call's tenant picks its model from it."""
    ab_split: str | None = None
    """A/B experiment file (JSON/YAML: experiment, unit call|agent, arms of name/model/weight)."""
    db_url: str | None = field(default=None, repr=False)
    """Database URL (default: SQLite file nextline.db in the data folder). Environment only when it holds a password."""
    data_dir: str = "data"
    """Folder for the default SQLite database, call audio and uploads."""
    record_audio: bool = True
    """Keep each live call's audio (for QA replay) in data_dir/audio/<call_id>.wav."""
    redact: bool = False
    """Mask card numbers, SSNs, e-mails and phone numbers in everything a live call leaves: the
    agent's screen, stored turns and transcript, feedback, and the recording (silenced there)."""
    retention_days: float = 0.0
    """Erase stored calls (transcripts, recordings, feedback quoting them) this many days after they were
    created, checked hourly; 0 keeps them until erased (``voice calls purge``)."""
    audiohook_api_keys: dict[str, str] = field(default_factory=dict, repr=False)
    """Accepted AudioHook X-API-KEY values -> tenant (environment only: NEXTLINE_AUDIOHOOK_API_KEYS=key:tenant,...)."""
    telephony: dict[str, Any] = field(default_factory=dict)
    """Extra telephony settings (see telephony/settings.py), e.g. rtp_port_min."""
    trusted_proxies: str = ""
    """Reverse proxies whose ``X-Forwarded-Proto``/``X-Forwarded-For`` are believed: comma-separated
    IP addresses or networks ("10.0.0.0/8, 192.168.1.5"), or "*" for any peer; "" adds none (docs/ui.md,
    "Behind a reverse proxy"). Through them the session cookie is Secure and the access log names the
    client."""

    def __post_init__(self) -> None:
        _check_types(self)
        _check_proxies(self.trusted_proxies)
        if not math.isfinite(self.retention_days) or self.retention_days < 0:
            raise ConfigError(f"retention_days must be a number of days >= 0, not {self.retention_days!r}",
                              hint="0 keeps calls until they are erased")

    @property
    def database_url(self) -> str:
        """The URL to open: explicit, else SQLite under data_dir."""
        return self.db_url or f"sqlite:///{(Path(self.data_dir) / 'nextline.db').resolve()}"


def load_config(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> ServerConfig:
    """Build the config from a YAML file, the environment and explicit overrides (flags).

    Raises:
        ConfigError: unknown keys, a secret in the file, or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config_file:
        values.update(_read_file(Path(config_file)))
    values.update(_from_env(env))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return replace(ServerConfig(), **values)
    except TypeError as exc:
        raise ConfigError(f"bad configuration: {exc}") from exc


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of settings")
    known = {f.name for f in fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}")
    secrets = sorted(set(data) & SECRET_KEYS)
    if secrets:
        raise ConfigError(f"{path}: {', '.join(secrets)} must come from the environment, not a file",
                          hint="set NEXTLINE_DB_URL / NEXTLINE_AUDIOHOOK_API_KEYS")
    return data


def _from_env(env: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if env.get("NEXTLINE_DATABASE_URL") and not env.get("NEXTLINE_DB_URL"):
        # The CLI's older name for the same setting (voice.store.default_url): one database for both.
        values["db_url"] = env["NEXTLINE_DATABASE_URL"]
    for f in fields(ServerConfig):
        raw = env.get(f"NEXTLINE_{f.name.upper()}")
        if raw is None:
            continue
        if f.name == "audiohook_api_keys":
            values[f.name] = parse_api_keys(raw)
        elif f.name == "telephony":
            values[f.name] = yaml.safe_load(raw) or {}
        elif f.type in ("int", "float"):
            try:
                values[f.name] = int(raw) if f.type == "int" else float(raw)
            except ValueError as exc:
                raise ConfigError(f"NEXTLINE_{f.name.upper()}={raw!r} is not a number") from exc
        elif f.type in ("bool",):
            values[f.name] = raw.lower() in ("1", "true", "yes", "on")
        else:
            values[f.name] = raw
    return values


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "str | None": (str, type(None)), "int": (int,), "float": (int, float), "bool": (bool,),
    "dict[str, str]": (dict,), "dict[str, Any]": (dict,)}
"""The Python types each annotation of :class:`ServerConfig` accepts (an int for a float)."""


def _check_types(config: ServerConfig) -> None:
    """Refuse a setting of the wrong type now, naming it: ``retention_days: "30"`` in a YAML file
    loaded fine and then stopped the server at start with a TypeError far from its cause."""
    for f in fields(config):
        allowed, value = _TYPES.get(str(f.type)), getattr(config, f.name)
        if allowed is None or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)):
            continue
        shown = "" if f.name in SECRET_KEYS else f" ({value!r})"
        raise ConfigError(f"{f.name} must be {f.type}, not {type(value).__name__}{shown}",
                          hint=f"write it without quotes in the config file, e.g. {f.name}: {json.dumps(f.default)}"
                          if f.type in ("int", "float", "bool") else "see voice serve --help")


def _check_proxies(value: object) -> None:
    """Refuse what uvicorn's proxy check would silently treat as a host name that never matches."""
    if not isinstance(value, str):
        raise ConfigError(f"trusted_proxies must be a comma-separated string, not {type(value).__name__}",
                          hint='e.g. trusted_proxies: "10.0.0.0/8, 192.168.1.5"')
    if value.strip() == "*":  # any peer: only where nothing but the proxy can reach the server
        return
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            ipaddress.ip_network(item)
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {item!r} is not an IP address or network",
                              hint="list the proxies' addresses, e.g. 10.0.0.0/8, 192.168.1.5") from exc


def parse_api_keys(raw: str) -> dict[str, str]:
    """``key1:tenantA,key2`` -> {key1: tenantA, key2: ''} ('' = tenant from the open message).

    ``key=tenant`` is read the same way (the form telephony/settings.py documented), except where
    nothing follows the last ``=``: that is a base64 key's padding (``q83v...Zw==``), part of the
    key. The one parser of ``NEXTLINE_AUDIOHOOK_API_KEYS`` for both the server config and
    ``TelephonySettings.from_env``: they once split on different characters, and a key bound the
    documented way was refused with 401.
    """
    keys = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, colon, tenant = item.rpartition(":")
        if not colon:
            key, equals, tenant = item.rpartition("=")
            if not equals or not tenant:
                key, tenant = item, ""
        keys[key.strip()] = tenant.strip()
    return keys
