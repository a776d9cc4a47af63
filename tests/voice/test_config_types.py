"""A server setting of the wrong type is refused when the configuration is read, naming the
setting, instead of loading and then stopping the server far from its cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.config import load_config
from voice.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("line", "named"), [
    ('retention_days: "30"', "retention_days"),
    ('port: "8080"', "port"),
    ('record_audio: "no"', "record_audio"),
    ("asr_workers: true", "asr_workers"),
    ("telephony: [1, 2]", "telephony"),
    ("retention_days: .inf", "retention_days"),
    ("retention_days: -1", "retention_days"),
])
def test_a_setting_of_the_wrong_type_is_refused_by_name(tmp_path: Path, line: str, named: str) -> None:
    config_file = tmp_path / "nextline.yaml"
    config_file.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=named):
        load_config(config_file, environ={})


def test_settings_of_the_right_types_load(tmp_path: Path) -> None:
    config_file = tmp_path / "nextline.yaml"
    config_file.write_text("port: 8080\nretention_days: 30\nrecord_audio: false\nsuggest_model: null\n"
                           "telephony: {rtp_port_min: 20000}\n", encoding="utf-8")
    config = load_config(config_file, environ={"NEXTLINE_ASR_WORKERS": "2"})
    assert (config.port, config.retention_days, config.record_audio, config.asr_workers) == (8080, 30, False, 2)
    assert config.telephony == {"rtp_port_min": 20000}


@pytest.mark.parametrize(("raw", "keys"), [
    ("key1,key2:acme", {"key1": "", "key2": "acme"}),
    ("key1,key2=acme", {"key1": "", "key2": "acme"}),  # the form docs/telephony.md once showed
    ("q83vEjRWeJA=:acme, cXdlcnR5dWlvcA==", {"q83vEjRWeJA=": "acme", "cXdlcnR5dWlvcA==": ""}),
])
def test_audiohook_keys_bind_the_same_tenant_in_the_server_config_and_the_telephony_settings(
        raw: str, keys: dict[str, str]) -> None:
    """The server config split entries on ":" and TelephonySettings.from_env on "=", and the server
    used the config's: a key bound as the docs said (key2=acme) was refused with 401, and a base64
    key lost its "=" padding to a tenant named "="."""
    from telephony.settings import TelephonySettings

    environ = {"NEXTLINE_AUDIOHOOK_API_KEYS": raw}
    assert load_config(environ=environ).audiohook_api_keys == keys
    assert dict(TelephonySettings.from_env(environ).audiohook_api_keys) == keys
