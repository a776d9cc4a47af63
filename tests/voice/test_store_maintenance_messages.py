"""What `python -m voice.store` and the store's errors tell an operator: the PostgreSQL hint names
the variable the docs name ($NEXTLINE_DB_URL, not the older $NEXTLINE_DATABASE_URL), and a
database with tables but no revision is named as such (it was called "an empty database", for
which `upgrade` creates the tables, when `upgrade` would fail on them) with `stamp` to adopt it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voice.errors import StorageError
from voice.store import Store
from voice.store.__main__ import describe_current, main
from voice.store.migrate import head_revision

pytestmark = pytest.mark.unit


def test_an_unreachable_server_hint_names_the_documented_variable() -> None:
    with pytest.raises(StorageError) as refused:
        Store.open("postgresql+psycopg://nextline@127.0.0.1:1/calls")  # port 1: nothing listens
    assert "(NEXTLINE_DB_URL sets the URL)" in str(refused.value)
    assert "NEXTLINE_DATABASE_URL" not in str(refused.value)


def test_tables_without_a_revision_are_named_and_stamp_adopts_them(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nextline.db"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    with sqlite3.connect(path) as db:  # as if made by create_all, outside the migrations
        db.execute("DROP TABLE alembic_version")
    said = describe_current(url)
    assert "an empty database" not in said
    assert "no revision, but tables (ab_assignments, " in said and "created outside nextline's migrations" in said
    assert f"`python -m voice.store stamp --url URL` records revision {head_revision()}" in said
    main(["stamp", "--url", url])
    assert capsys.readouterr().out == f"{url}: stamped at revision {head_revision()} (no migration run)\n"
    assert describe_current(url).endswith(f"at revision {head_revision()} (head {head_revision()}): up to date")


def test_an_empty_database_is_still_called_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    said = describe_current(f"sqlite:///{path}")
    assert said.endswith("no revision: an empty database, `upgrade` creates the tables")
