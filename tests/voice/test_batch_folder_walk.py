"""`voice transcribe DIR` finds every file under DIR or says why not: linked folders are followed
(once: no loops, never to a parent), broken links and folders or files it may not read fail in
errors.jsonl, and a folder without audio is refused when it is all there is (among other inputs,
a warning). ``Path.rglob`` skipped all of these silently (exit 0).

Permission tests run the command in a child process; as root (which reads every file) the child
drops the capabilities that let root ignore permissions, with util-linux ``setpriv``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.voice.batch_faults import decode_or_die
from voice.batch.options import TranscribeOptions
from voice.batch.runner import BatchRunner, expand_inputs
from voice.cli import cli
from voice.errors import ConfigError

pytestmark = pytest.mark.data

SAMPLE = "diarization/pyannote_sample_telephone/sample.wav"  # 30 s, 16 kHz mono PCM_16
REPO = Path(__file__).resolve().parents[2]
_NO_OVERRIDE = "-dac_override,-dac_read_search"


def _run_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """``voice ARGS`` in a child process that file permissions apply to, even as root."""
    command = [sys.executable, "-c", "from voice.cli import main; main()", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, which ignores file permissions, and setpriv (util-linux) is missing")
        command = [setpriv, f"--inh-caps={_NO_OVERRIDE}", f"--bounding-set={_NO_OVERRIDE}", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)


def _logged(out: Path) -> dict[str, str]:
    lines = (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    return {Path(r["path"]).name: r["error"] for r in map(json.loads, lines)}


def test_linked_folders_are_followed_once_and_a_loop_of_links_ends(shared_data: Path, tmp_path: Path) -> None:
    archive, elsewhere = tmp_path / "archive", tmp_path / "mounted"
    (archive / "day1").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(shared_data / SAMPLE, archive / "day1" / "a.wav")
    shutil.copy(shared_data / SAMPLE, elsewhere / "b.wav")
    (archive / "day2").symlink_to(elsewhere, target_is_directory=True)  # an archive spread over disks
    (archive / "again").symlink_to(archive / "day1", target_is_directory=True)  # a second name
    (archive / "day1" / "up").symlink_to(archive, target_is_directory=True)  # a loop back to the top
    jobs = expand_inputs([str(archive)], tmp_path / "out")
    assert sorted(j.path.name for j in jobs) == ["a.wav", "b.wav"]
    assert not any(j.problem for j in jobs)


def test_a_broken_link_named_like_audio_fails_in_the_error_log(shared_data: Path, tmp_path: Path) -> None:
    archive, out = tmp_path / "archive", tmp_path / "out"
    archive.mkdir()
    shutil.copy(shared_data / SAMPLE, archive / "a.wav")
    (archive / "gone.wav").symlink_to(tmp_path / "unmounted" / "gone.wav")  # its disk is not mounted
    (archive / "loop1.wav").symlink_to(archive / "loop2.wav")
    (archive / "loop2.wav").symlink_to(archive / "loop1.wav")
    runner = BatchRunner(out, TranscribeOptions(model="tiny.en"), ["json"], work=decode_or_die)
    summary = runner.run(expand_inputs([str(archive)], out))
    assert {r.job.path.name: r.status for r in summary.results} == {
        "a.wav": "done", "gone.wav": "failed", "loop1.wav": "failed", "loop2.wav": "failed"}
    logged = _logged(out)
    assert set(logged) == {"gone.wav", "loop1.wav", "loop2.wav"}
    assert logged["gone.wav"].startswith(f"broken link to {tmp_path / 'unmounted' / 'gone.wav'}")


def test_a_folder_without_audio_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "notes.txt").write_text("not audio\n")
    with pytest.raises(ConfigError, match="no audio files found under this folder"):
        expand_inputs([str(folder)], tmp_path / "out")
    result = CliRunner().invoke(cli, ["transcribe", str(folder), "--out", str(tmp_path / "out"), "--no-db"])
    assert result.exit_code == 1 and "no audio files found under this folder" in result.output
    assert "0 transcribed" not in result.output


def test_an_empty_folder_among_others_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`archive/2026-*/` with one quiet month: that month is named, the others are transcribed."""
    quiet, busy = tmp_path / "2026-01", tmp_path / "2026-02"
    quiet.mkdir()
    busy.mkdir()
    (busy / "call.wav").write_bytes(b"RIFF")
    jobs = expand_inputs([str(quiet), str(busy)], tmp_path / "out")
    assert [job.path.name for job in jobs] == ["call.wav"]
    assert any("2026-01: no audio files found" in record.getMessage() for record in caplog.records)


def test_a_link_to_a_parent_folder_does_not_pull_in_its_siblings(tmp_path: Path) -> None:
    """`calls/a/up -> ..` must not transcribe `calls/b` (nor, with a link to /, the machine)."""
    asked, sibling = tmp_path / "calls" / "a", tmp_path / "calls" / "b"
    asked.mkdir(parents=True)
    sibling.mkdir()
    (asked / "x.wav").write_bytes(b"RIFF")
    (sibling / "x.wav").write_bytes(b"RIFF")
    (asked / "up").symlink_to("..")
    jobs = expand_inputs([str(asked)], tmp_path / "out")
    assert [(job.path, job.name) for job in jobs] == [(asked / "x.wav", "x")]


def test_a_broken_link_reached_under_two_spellings_fails_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bl"
    folder.mkdir()
    (folder / "gone.wav").symlink_to("nothing.wav")
    monkeypatch.chdir(tmp_path)
    jobs = expand_inputs([str(folder), "bl"], tmp_path / "out")
    assert [job.path.name for job in jobs if job.problem] == ["gone.wav"]


def test_a_folder_that_cannot_be_listed_is_named_and_fails_the_run(tmp_path: Path) -> None:
    archive, out = tmp_path / "archive", tmp_path / "out"
    locked = archive / "locked"
    locked.mkdir(parents=True)
    (locked / "call.wav").write_bytes(b"RIFF")
    locked.chmod(0)
    try:
        result = _run_unprivileged("transcribe", str(archive), "--out", str(out), "--no-db")
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert _logged(out) == {"locked": "cannot list this folder: Permission denied"}
    shown = result.stdout + result.stderr
    assert "0 transcribed, 0 already done, 1 failed" in shown and "cannot list this folder" in shown


def test_a_file_that_may_not_be_read_says_permission_denied(shared_data: Path, tmp_path: Path) -> None:
    archive, out = tmp_path / "archive", tmp_path / "out"
    archive.mkdir()
    shutil.copy(shared_data / SAMPLE, archive / "private.wav")
    (archive / "private.wav").chmod(0)
    result = _run_unprivileged("transcribe", str(archive), "--out", str(out), "--no-db")
    assert result.returncode == 1, result.stdout + result.stderr
    error = _logged(out)["private.wav"]
    assert "Permission denied" in error and "not a readable audio file" not in error
