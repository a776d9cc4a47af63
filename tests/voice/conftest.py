"""Fixtures of the voice tests: a throwaway PostgreSQL server and per-test database URLs.

The server is a real ``initdb`` + ``pg_ctl`` cluster on a free 127.0.0.1 port, with its unix
socket in its own temporary directory and fsync off; it lives for the test session. As root
(initdb refuses root) it runs as the ``postgres`` user through ``runuser``. Set
``NEXTLINE_TEST_POSTGRES_URL`` to use an existing server instead (each test still gets its own
fresh database there). Tests skip with the reason when neither is available.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from voice.audio import AudioInfo
from voice.frames import TimedWord
from voice.transcript import CallTranscript, EntityMention, Segment, Speaker

PG_URL_ENV = "NEXTLINE_TEST_POSTGRES_URL"
PG_SUPERUSER = "nextline"


def _postgres_bin_dir() -> Path | None:
    """Newest Debian PostgreSQL install, or whatever initdb is on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running throwaway cluster; ``admin_url`` reaches its ``postgres`` database."""

    bin_dir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            PG_SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")


def _start_cluster() -> PostgresCluster:
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    run_as = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
    root = Path(tempfile.mkdtemp(prefix="nextline-pg-"))
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as)
    try:
        cluster.start()
    except Exception:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL superuser connection for the whole session (started here)."""
    external = os.environ.get(PG_URL_ENV)
    if external:
        yield external
        return
    cluster = _start_cluster()
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped after the test."""
    name = f"nextline_test_{os.getpid()}_{next(_database_numbers)}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per backend: a SQLite file in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nextline.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sample_transcript() -> CallTranscript:
    """A two-party support call shaped like the pipeline's output (agent on channel 0).

    The lines follow a SpokenWOZ taxi-booking call; it has word timestamps (and one segment
    without), non-ASCII text, markup-like characters, a long turn and entities.
    """

    def words(text: str, start: float, step: float) -> list[TimedWord]:
        return [
            TimedWord(w, round(start + i * step, 3), round(start + (i + 1) * step - 0.02, 3), 0.9)
            for i, w in enumerate(text.split())
        ]

    lines = [
        (
            "SPEAKER_00",
            "agent",
            0,
            0.46,
            "Hi, this is Nan's customer service. How can I help you?",
            0.3,
        ),
        (
            "SPEAKER_01",
            "customer",
            1,
            4.1,
            "I'm looking for a taxi from Wagga to the theater.",
            0.28,
        ),
        ("SPEAKER_00", "agent", 0, 8.0, "Sure. May I know your telephone number, José?", 0.31),
        (
            "SPEAKER_01",
            "customer",
            1,
            11.5,
            "It's 370 318 0482 & my e-mail is jose@example.com",
            0.33,
        ),
        (
            "SPEAKER_00",
            "agent",
            0,
            16.2,
            "Thank you. I booked your car, a grey Lexus, and it should arrive at 2:30 in the "
            "morning; the fare is about forty dollars <estimated> and you can pay by card when "
            "the driver arrives at the pick-up point.",
            0.27,
        ),
        ("SPEAKER_01", "customer", 1, 32.0, "Great, thanks so much. Bye!", None),
    ]
    segments = []
    for i, (speaker, role, channel, start, line, step) in enumerate(lines):
        timed = words(line, start, step) if step else []
        end = timed[-1].end if timed else start + 1.7
        segments.append(Segment(i, start, end, speaker, line, role, channel, timed))
    speakers = [
        Speaker(
            "SPEAKER_00", "agent", 0, sum(s.end - s.start for s in segments if s.role == "agent")
        ),
        Speaker(
            "SPEAKER_01",
            "customer",
            1,
            sum(s.end - s.start for s in segments if s.role == "customer"),
        ),
    ]
    entities = [
        EntityMention("PHONE", "370 318 0482", 3, 5, 17, "3703180482"),
        EntityMention("EMAIL", "jose@example.com", 3, 33, 49, "jose@example.com"),
        EntityMention("MONEY", "forty dollars", 4, 107, 120, "40.00 USD"),
    ]
    return CallTranscript(
        call_id="SNG0696-like",
        audio=AudioInfo(
            path="/calls/SNG0696.wav", format="WAV", sample_rate=8000, channels=2, duration=33.7
        ),
        speakers=speakers,
        segments=segments,
        entities=entities,
        options={"asr": {"model": "whisper-base", "beam_size": 5}, "speakers": "channels"},
        timings={"asr": 3.2, "diarize": 0.4},
        created_at="2026-11-27T00:00:00+00:00",
    )
