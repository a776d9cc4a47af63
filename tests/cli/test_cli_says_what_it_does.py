"""CLI messages and maintenance commands that said something other than what they did.

``python -m voice.store current`` migrated the database it was asked about (and created one at a
mistyped SQLite path); ``voice models list`` left Silero VAD out and cut paths at 80 columns;
``voice data check`` said "imported"; ``voice serve/demo --model tiny`` printed a traceback after
"serving on"; ``voice ab report --split`` had no help; ``voice suggest`` on the bundled demo
model advised retraining it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner, Result

from voice.cli import cli
from voice.store import Store
from voice.store.__main__ import main as store_main
from voice.store.migrate import alembic_config, head_revision

pytestmark = pytest.mark.unit


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


def _never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the server was started")


# --- python -m voice.store current -------------------------------------------------------------


def _revision_in_file(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_store_current_reports_an_old_revision_without_migrating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It opened through Store.open, which upgrades to head: it always said "at head"."""
    path = tmp_path / "old.db"
    store = Store.open(f"sqlite:///{path}")
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0003")
    store.close()

    store_main(["current", "--url", f"sqlite:///{path}"])

    out = capsys.readouterr().out
    assert f"at revision 0003 (head {head_revision()})" in out, out
    assert _revision_in_file(path) == "0003"  # left as it was


def test_store_current_refuses_a_missing_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in the path silently created (and migrated) a new empty database."""
    typo = tmp_path / "nextlien.db"
    with pytest.raises(SystemExit) as exit_info:
        store_main(["current", "--url", f"sqlite:///{typo}"])
    assert exit_info.value.code == 1
    assert "no SQLite database at" in capsys.readouterr().err
    assert not typo.exists()


def test_store_help_says_what_each_command_does(capsys: pytest.CaptureFixture[str]) -> None:
    """The help read "current the database at --url (both migrate it to head)"."""
    with pytest.raises(SystemExit):
        store_main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "both migrate" not in out
    assert "without changing it" in out


# --- voice models list -------------------------------------------------------------------------


def _last_column(output: str) -> str:
    """The text of the table's last column, its wrapped lines joined."""
    return "".join(line.split("│")[-2].strip() for line in output.splitlines() if line.count("│") >= 2)


def test_models_list_names_silero_and_wraps_paths_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Silero VAD was missing, and locations were cut to "/work/main/.ven…" on an 80-column terminal."""
    from voice.vad.silero import silero_model_path

    monkeypatch.setenv("COLUMNS", "80")
    result = _run("models", "list")
    assert "Silero VAD" in result.output, result.output
    assert "…" not in result.output
    assert str(silero_model_path()) in _last_column(result.output)


# --- voice data check --------------------------------------------------------------------------


def test_data_check_says_read_not_imported(tmp_path: Path) -> None:
    """`voice data check FILE` printed "3 conversations imported": nothing is imported by a check."""
    from suggest.data.format import write_conversations
    from suggest.types import Conversation, Outcome, Turn

    path = tmp_path / "c.jsonl"
    write_conversations(path, [
        Conversation(id=f"c{i}", tenant="acme", agent_id="a1", outcome=Outcome(success=i == 0),
                     turns=(Turn("agent", "Hello, how can I help?"), Turn("customer", "Cancel my plan.")))
        for i in range(3)
    ])  # fmt: skip
    result = _run("data", "check", str(path))
    assert result.exit_code == 0, result.output
    assert "3 valid conversations read (1 successful)" in result.output
    assert "imported" not in result.output


# --- voice serve / voice demo --model ----------------------------------------------------------


def test_serve_refuses_an_unknown_whisper_model_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It printed "nextline serving on ..." and then a 25-frame traceback from the lifespan."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", _never)
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTLINE_MODEL", "NEXTLINE_SUGGEST_MODEL", "NEXTLINE_MODELS_ROOT", "NEXTLINE_AB_SPLIT"):
        monkeypatch.delenv(name, raising=False)
    output = _one_line_error(_run("serve", "--model", "tiny", "--sip-port", "-1", "--data-dir", str(tmp_path / "data")))
    assert "Error: --model tiny: unknown Whisper model 'tiny'" in output
    assert "serving on" not in output


def test_demo_refuses_an_unknown_whisper_model_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same traceback, from the demo's server."""
    from voice import demo

    monkeypatch.setattr(demo.DemoRun, "run", _never)
    output = _one_line_error(_run("demo", "--model", "tiny", "--data-dir", str(tmp_path / "demo")))
    assert "Error: --model tiny: unknown Whisper model 'tiny'" in output


# --- voice ab report / voice suggest -----------------------------------------------------------


def test_ab_report_describes_split() -> None:
    """`--split FILE [required]` had no description in `voice ab report --help`."""
    result = _run("ab", "report", "--help")
    assert result.exit_code == 0
    split_help = " ".join(result.output.split("--split FILE", 1)[1].split("--db", 1)[0].split())
    assert split_help.startswith('JSON/YAML: {"experiment", "unit": "call"|"agent"'), split_help


def test_suggest_on_the_bundled_model_says_how_to_get_its_encoder(tmp_path: Path) -> None:
    """It said "voice/demo_assets/model/encoder holds no encoder.json (retrain the model)"."""
    from suggest.data.format import write_conversations
    from suggest.types import Conversation, Outcome, Turn
    from voice.demo import BUNDLED_MODEL

    if not (BUNDLED_MODEL / "manifest.json").is_file():
        pytest.skip("the bundled demo model is not in this checkout")
    dialogues = tmp_path / "d.jsonl"
    write_conversations(dialogues, [Conversation(
        id="c1", tenant="demo", agent_id="a1", outcome=Outcome(success=True),
        turns=(Turn("agent", "Would you donate to Save the Children?"), Turn("customer", "Maybe.")))])  # fmt: skip
    output = _one_line_error(_run("suggest", "--model", str(BUNDLED_MODEL), "--dialogues", str(dialogues),
                                  "--out", str(tmp_path / "out.jsonl")))  # fmt: skip
    assert "retrain" not in output
    assert "shipped without its sentence encoder" in output
    assert "voice demo --bundled-model" in output and "data/demo/models/demo/bundled" in output


def test_serve_names_a_mistyped_telephony_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the config file's telephony block was a raw dataclass TypeError traceback."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", _never)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXTLINE_TELEPHONY", raising=False)
    config_file = tmp_path / "nextline.yaml"
    config_file.write_text("telephony:\n  rtp_port_mn: 41000\n", encoding="utf-8")
    output = _one_line_error(_run("serve", "--model", "tiny.en", "--sip-port", "-1", "--config", str(config_file),
                                  "--data-dir", str(tmp_path / "data")))
    assert "unknown telephony settings rtp_port_mn" in output and "rtp_port_min" in output


def test_serve_takes_a_torch_transfer_file_and_names_a_missing_one(tmp_path: Path) -> None:
    """The model check refused the torch backend's transfer file (the GPU route's *.safetensors),
    which ``TorchWhisperDecoder.load`` takes."""
    import click

    from voice.cli.serve_cmd import check_asr_model

    transfer = tmp_path / "tiny.safetensors"
    transfer.write_bytes(b"{}")
    check_asr_model(str(transfer), "torch")  # no error: the decoder reads it at start
    with pytest.raises(click.ClickException, match="no such transfer file"):
        check_asr_model(str(tmp_path / "missing.safetensors"), "torch")
    with pytest.raises(click.ClickException, match="not a CTranslate2 Whisper model|unknown Whisper model"):
        check_asr_model(str(transfer), "ctranslate2")
