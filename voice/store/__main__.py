"""``python -m voice.store {upgrade,current,stamp,revision}``: database maintenance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, inspect, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from voice.errors import StorageError
from voice.store.migrate import alembic_config, current_revision, head_revision, make_revision
from voice.store.store import Store, create_engine_for, default_url

_URL_HELP = "SQLAlchemy URL (default: the one voice serve uses, $NEXTLINE_DB_URL or data/nextline.db)"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one maintenance command; errors exit with status 1."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "revision":
            make_revision(args.message, autogenerate=not args.empty)
        elif args.command == "upgrade":
            with Store.open(args.url) as store, store.engine.connect() as connection:
                print(f"{store.url}: at revision {current_revision(connection)} (head {head_revision()})")
        elif args.command == "stamp":
            print(stamp(args.url or default_url(), args.revision))
        else:
            print(describe_current(args.url or default_url()))
    except StorageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m voice.store", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    upgrade = sub.add_parser(
        "upgrade",
        help="migrate the database at --url to the newest revision (creating it if needed)",
    )
    upgrade.add_argument("--url", default=None, help=_URL_HELP)
    current = sub.add_parser(
        "current",
        help="print the revision the database at --url is at, without changing it",
    )
    current.add_argument("--url", default=None, help=_URL_HELP)
    adopt = sub.add_parser(
        "stamp",
        help="record that the database at --url is at REVISION (default: head) without running a "
        "migration: adopts tables that were created outside the migrations and match that revision",
    )
    adopt.add_argument("--url", default=None, help=_URL_HELP)
    adopt.add_argument("revision", nargs="?", default="head", help="revision id, or head (default)")
    rev = sub.add_parser("revision", help="write a new revision file into voice/store/migrations/versions")
    rev.add_argument("-m", "--message", required=True, help="what the revision does, e.g. 'add suggestions'")
    rev.add_argument("--empty", action="store_true", help="do not autogenerate from the table classes")
    return parser


def describe_current(url: str) -> str:
    """One line saying which revision the database at ``url`` is at, read without migrating.

    Raises:
        StorageError: the URL is malformed, names a SQLite file that does not exist, or the
            database cannot be read.
    """
    engine = _read_only_engine(url)
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
            tables = sorted(inspect(connection).get_table_names()) if revision is None else []
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read database {safe_url}: {exc}".splitlines()[0]) from exc
    finally:
        engine.dispose()
    head = head_revision()
    if revision is None and tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        state = (f"no revision, but tables ({shown}): created outside nextline's migrations, which "
                 "`upgrade` cannot adopt; if they are this nextline's schema, `python -m voice.store "
                 f"stamp --url URL` records revision {head}, else copy the data into a database "
                 "`upgrade` creates")
    elif revision is None:
        state = "no revision: an empty database, `upgrade` creates the tables"
    elif revision == head:
        state = f"at revision {revision} (head {head}): up to date"
    elif _known(revision):
        state = f"at revision {revision} (head {head}): `upgrade` migrates it"
    else:
        state = f"at revision {revision}, unknown to this nextline (head {head}): a newer nextline migrated it"
    return f"{safe_url}: {state}"


def stamp(url: str, revision: str = "head") -> str:
    """Record ``revision`` in the database at ``url`` without running a migration; one line
    saying so.

    Raises:
        StorageError: the URL is unusable, the SQLite file does not exist, the revision is not
            one of this nextline's, or the database refused the write.
    """
    engine = _read_only_engine(url)  # a missing SQLite file is an error, not a new database
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as connection:
            command.stamp(alembic_config(connection), revision)
            stamped = current_revision(connection)
    except CommandError as exc:
        raise StorageError(f"cannot stamp {safe_url} at {revision!r}: {exc}",
                           hint=f"this nextline's revisions end at {head_revision()}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot write database {safe_url}: {exc}".splitlines()[0]) from exc
    finally:
        engine.dispose()
    return f"{safe_url}: stamped at revision {stamped} (no migration run)"


def _read_only_engine(url: str) -> Engine:
    """An engine that connects without creating anything: a missing SQLite file is an error."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine_for(parsed)
        database = parsed.database or ""
        if database not in ("", ":memory:") and not Path(database).expanduser().is_file():
            raise StorageError(
                f"no SQLite database at {Path(database).expanduser()}",
                hint="check --url or $NEXTLINE_DB_URL; `python -m voice.store upgrade` creates one",
            )
        # Not create_engine_for: its WAL pragma and mkdir would change what we only read.
        return create_engine(parsed)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise StorageError(f"cannot use database URL {url!r}: {exc}") from exc


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


if __name__ == "__main__":
    main()
