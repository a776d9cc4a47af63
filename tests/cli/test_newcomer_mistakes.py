"""Mistakes a newcomer makes while following README.md get a one-line error that says what to do,
not a traceback, a silently empty answer or an empty file: a mistyped data folder, a model or
pipeline folder that is not one, an empty conversation file, a folder without transcripts."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voice.cli import cli
from voice.config import load_config
from voice.store import Store

pytestmark = pytest.mark.unit


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _one_line_error(result: Result, exit_code: int = 1) -> str:
    """The output of a command refused by click (no traceback, the expected exit status)."""
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


def _silence(path: Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return path


def test_the_top_level_help_shows_eval_asr_as_it_is_called() -> None:
    """`voice --help` showed `voice eval asr --data DIR`, which fails: No such option '--data'."""
    shown = _run("--help").output
    assert "eval asr --data" not in shown
    line = next(x for x in shown.splitlines() if "voice eval asr" in x)
    example = line.split()[1:3]  # ["eval", "asr"] then the positional folders
    assert example == ["eval", "asr"] and line.split()[3].startswith("DIR"), line


@pytest.mark.parametrize(
    "args",
    [("list",), ("erase", "twilio-MZ123", "--yes"), ("purge", "--older-than", "90", "--yes")],
)
def test_calls_commands_refuse_a_data_folder_without_a_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A mistyped --data-dir created an empty database there; `voice calls erase` then answered
    "not stored (nothing to erase)" (exit 0) to an erasure request for a call that is stored."""
    typo = tmp_path / "dta"
    output = _one_line_error(_run("calls", *args, "--data-dir", str(typo)))
    assert f"no database at {typo / 'nextline.db'}" in output
    assert not typo.exists()


def test_serve_refuses_a_suggest_model_that_is_not_a_model_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server started, then died in its start-up with a page-long ASGI traceback (exit 3)."""
    import uvicorn

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTLINE_SUGGEST_MODEL", "NEXTLINE_MODELS_ROOT", "NEXTLINE_AB_SPLIT"):
        monkeypatch.delenv(name, raising=False)
    not_a_model = tmp_path / "out"
    not_a_model.mkdir()
    output = _one_line_error(
        _run("serve", "--suggest-model", str(not_a_model), "--sip-port", "-1",
             "--data-dir", str(tmp_path / "data"))
    )  # fmt: skip
    assert "--suggest-model:" in output and "voice train" in output


def test_serve_refuses_an_unknown_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--log-level verbose` died with a KeyError from uvicorn (or logging's Unknown level)."""
    import uvicorn

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(uvicorn, "run", never)
    output = _one_line_error(_run("serve", "--log-level", "verbose"), exit_code=2)
    assert "'verbose' is not one of" in output


def test_eval_asr_refuses_a_model_folder_that_is_not_a_whisper_model(tmp_path: Path) -> None:
    """A traceback ending in asr.models.ModelNotFoundError."""
    data = tmp_path / "refs"
    data.mkdir()
    _silence(data / "x.wav")
    (data / "x.txt").write_text("hello\n")
    output = _one_line_error(_run("eval", "asr", str(data), "--model", str(tmp_path)))
    assert f"--model {tmp_path}" in output and "not a CTranslate2 Whisper model" in output


@pytest.mark.parametrize(
    ("option", "exit_code", "said"),
    [(("--pipeline", "PIPE"), 1, "no config.yaml"), (("--device", "gpu"), 2, "not a torch device")],
)
def test_eval_diarization_refuses_a_bad_pipeline_or_device(
    tmp_path: Path, option: tuple[str, str], exit_code: int, said: str
) -> None:
    """A traceback ending in diarize.models.ModelNotFoundError, or torch's RuntimeError."""
    data = tmp_path / "refs"
    data.mkdir()
    _silence(data / "x.wav")
    (data / "x.rttm").write_text("SPEAKER x 1 0.00 0.10 <NA> <NA> A <NA> <NA>\n")
    flag, value = option
    value = str(tmp_path) if value == "PIPE" else value
    output = _one_line_error(_run("eval", "diarization", str(data), flag, value), exit_code)
    assert said in output


def test_data_check_refuses_an_empty_file(tmp_path: Path) -> None:
    """`voice data check` passed an empty file (exit 0) that `voice train` then refused."""
    empty = tmp_path / "calls.jsonl"
    empty.write_text("")
    assert "has no conversations" in _one_line_error(_run("data", "check", str(empty)))


def test_train_says_the_file_is_empty(tmp_path: Path) -> None:
    """It said "no conversation of tenant 'acme' (tenants in the data: {})"."""
    empty = tmp_path / "calls.jsonl"
    empty.write_text("")
    args = ("train", "--data", str(empty), "--tenant", "acme", "--models", str(tmp_path / "m"))
    assert f"no conversations in {empty}" in _one_line_error(_run(*args))


def test_transcripts_import_refuses_a_folder_without_transcripts(tmp_path: Path) -> None:
    """Pointing at the recordings instead of `voice transcribe --out` wrote an empty JSONL, exit 0."""
    recordings = tmp_path / "calls"
    recordings.mkdir()
    _silence(recordings / "c1.wav")
    csv = tmp_path / "crm.csv"
    csv.write_text("call_id,success\nc1,true\n")
    out = tmp_path / "acme.jsonl"
    output = _one_line_error(
        _run("data", "import", "transcripts", str(recordings), "--outcomes", str(csv),
             "--out", str(out), "--tenant", "acme")
    )  # fmt: skip
    assert f"no transcripts in {recordings}" in output and "voice transcribe" in output
    assert not out.exists()


def test_db_import_refuses_a_tenant_with_nothing_to_export(tmp_path: Path) -> None:
    """A tenant with no stored call (a typo) or none with an outcome wrote an empty JSONL, exit 0."""
    from voice.store import Store

    url = f"sqlite:///{tmp_path / 'nextline.db'}"
    Store.open(url).close()
    out = tmp_path / "acme.jsonl"
    output = _one_line_error(_run("data", "import", "db", "--tenant", "acme", "--db", url, "--out", str(out)))
    assert "no call of tenant 'acme' with an outcome" in output
    assert not out.exists()


def test_registry_list_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    """It printed "nosuch (0 versions; serves the newest)", exit 0."""
    output = _one_line_error(_run("registry", "list", "nosuch", "--models", str(tmp_path)))
    assert "no models of tenant 'nosuch'" in output


def test_readers_default_to_the_servers_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`voice serve` with no --db writes data/nextline.db; `voice train --feedback`, `voice
    feedback export` and `voice ab` read ./nextline.db, so after the README's server they found
    no database (or another one). Now every command defaults to the server's database."""
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTLINE_DATABASE_URL", "NEXTLINE_DB_URL", "NEXTLINE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    export = ("feedback", "export", "--out", str(tmp_path / "f.jsonl"))
    output = _one_line_error(_run(*export))
    assert f"no database at {tmp_path / 'data' / 'nextline.db'}" in output
    Store.open(load_config(environ={}).database_url).close()  # what `voice serve` creates
    assert _run(*export).exit_code == 0
    monkeypatch.setenv("NEXTLINE_DB_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert f"no database at {tmp_path / 'elsewhere.db'}" in _one_line_error(_run(*export))


@pytest.mark.parametrize(("name", "text"), [("ab.json", "{experiment: e1}"), ("ab.yaml", "arms: [")])
def test_ab_refuses_a_split_file_that_does_not_parse(tmp_path: Path, name: str, text: str) -> None:
    """A json.JSONDecodeError (or yaml ParserError) traceback."""
    split = tmp_path / name
    split.write_text(text)
    for args in (("assign", "--call-id", "c1"), ("report",)):
        output = _one_line_error(_run("ab", *args, "--split", str(split)))
        assert f"{split} is not valid" in output and "voice ab assign --help" in output


def test_suggest_refuses_an_empty_dialogues_file(tmp_path: Path) -> None:
    """It wrote an empty replay and said "mean top-1 similarity 0.000", exit 0."""
    empty = tmp_path / "calls.jsonl"
    empty.write_text("")
    out = tmp_path / "qa.jsonl"
    output = _one_line_error(
        _run("suggest", "--model", "acme/v1", "--models", str(tmp_path), "--dialogues", str(empty),
             "--out", str(out))
    )  # fmt: skip
    assert f"no conversations in {empty}" in output
    assert not out.exists()


def test_an_earlier_releases_database_is_still_read_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, these commands defaulted to ./nextline.db: a new empty data/nextline.db beside it
    would hide its rows (A/B assignments) without a word."""
    from voice.store import default_url

    monkeypatch.chdir(tmp_path)
    for name in ("NEXTLINE_DATABASE_URL", "NEXTLINE_DB_URL", "NEXTLINE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    Store.open(f"sqlite:///{tmp_path / 'nextline.db'}").close()
    with caplog.at_level("WARNING"):
        assert default_url() == f"sqlite:///{tmp_path / 'nextline.db'}"
    assert "the earlier default" in caplog.text and str(tmp_path / "data" / "nextline.db") in caplog.text
    Store.open(load_config(environ={}).database_url).close()  # the server's, once it exists
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert default_url() == f"sqlite:///{tmp_path / 'data' / 'nextline.db'}"
    assert f"{tmp_path / 'nextline.db'} (the earlier default) is left out" in caplog.text
    monkeypatch.setenv("NEXTLINE_DB_URL", "sqlite:///a.db")
    monkeypatch.setenv("NEXTLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")  # the same file
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert default_url() == "sqlite:///a.db"
    assert "name different databases" not in caplog.text
    monkeypatch.setenv("NEXTLINE_DATABASE_URL", "sqlite:///b.db")
    with caplog.at_level("WARNING"):
        assert default_url() == "sqlite:///a.db"
    assert "name different databases" in caplog.text


def test_the_server_takes_the_older_database_variable_too() -> None:
    """The CLI read NEXTLINE_DATABASE_URL and the server only NEXTLINE_DB_URL: with only the older
    one set, they opened different databases without a word."""
    only_older = load_config(environ={"NEXTLINE_DATABASE_URL": "sqlite:////srv/calls.db"})
    assert only_older.database_url == "sqlite:////srv/calls.db"
    both = {"NEXTLINE_DATABASE_URL": "sqlite:////srv/old.db", "NEXTLINE_DB_URL": "sqlite:////srv/calls.db"}
    assert load_config(environ=both).database_url == "sqlite:////srv/calls.db"


def test_a_raw_rate_typo_is_refused_before_any_audio_is_read(tmp_path: Path) -> None:
    """`--raw-rate 8` (for 8000) was accepted: an hour of 8 kHz PCM would have been resampled
    2000-fold, into some 115 GB of samples, before the process died."""
    raw = tmp_path / "call.raw"
    raw.write_bytes(b"\0\0" * 8000)
    for command in (("transcribe", str(raw), "--out", str(tmp_path / "out")), ("eval", "asr", str(tmp_path))):
        output = _one_line_error(_run(*command, "--raw-rate", "8"), exit_code=2)
        assert "8 is not in the range 8000<=x<=192000" in output
    assert not (tmp_path / "out").exists()
