"""``voice demo``'s choices without starting it: which call and model it uses, and its tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice import demo
from voice.store import Store
from voice.store.agents import AgentStore, AuthenticationError

pytestmark = pytest.mark.unit


def test_without_shared_data_the_wheel_sample_is_replayed(tmp_path: Path) -> None:
    call = demo.demo_call(None)
    assert call.path.name == "sample.wav" and call.path.is_file() and "MIT" in call.label
    assert demo.demo_call(tmp_path).path == call.path  # a shared folder without the call falls back too


def test_spokenwoz_is_used_when_the_shared_data_has_it(tmp_path: Path) -> None:
    wav = tmp_path / "diarization" / "spokenwoz_calls_8k" / f"{demo.SPOKENWOZ_CALL}.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    call = demo.demo_call(tmp_path)
    assert call.path == wav and "CC BY-NC" in call.label


def test_no_model_means_no_suggestions_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "BUNDLED_MODEL", tmp_path / "missing")
    path, label = demo.demo_model(None, tmp_path, lambda _line: None)
    assert path is None and "no suggestions" in label


def test_every_run_issues_fresh_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    first, second = demo.ensure_agents(url), demo.ensure_agents(url)
    with Store.open(url) as store:
        agents = AgentStore(store)
        assert agents.authenticate(second[demo.DEMO_AGENT]).role == "agent"
        assert agents.authenticate(second[demo.DEMO_SUPERVISOR]).role == "supervisor"
        with pytest.raises(AuthenticationError):
            agents.authenticate(first[demo.DEMO_AGENT])
