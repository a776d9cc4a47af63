"""Options of the commands that work on the server's own database and data folder (agents, calls,
A/B, feedback, training data), and opening that database from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

db_option = click.option("--db", "db_url", default=None,
                         help="Database URL (default: the server's, SQLite in --data-dir).")
data_dir_option = click.option("--data-dir", default=None,
                               help="The server's data folder (default ./data): database, recordings, uploads.")
config_option = click.option("--config", "config_file", default=None,
                             type=click.Path(exists=True, dir_okay=False, path_type=Path),
                             help="The server's YAML config file.")


def existing_database(db_url: str | None) -> str:
    """The URL of a database a command only reads (``--db``, else the default).

    ``Store.open`` creates a SQLite file that is not there: for a reader that would turn a
    mistyped path into an empty database and a silently empty answer.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from voice.store import default_url

    url = db_url or default_url()
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # Store.open explains a malformed URL
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        if not Path(database).expanduser().is_file():
            raise click.ClickException(
                f"no database at {database}: give the --db URL the server writes to "
                "(or set NEXTLINE_DB_URL, as for voice serve)"
            )
    return url


def open_server_store(db_url: str | None, data_dir: str | None, config_file: Path | None, *,
                      reading: bool = False) -> tuple[Any, Any]:
    """The server's database as ``--db`` / ``--data-dir`` / ``--config`` name it: (Store, ServerConfig).

    ``reading``: the command only reads, so a database that is not there is an error
    (:func:`existing_database`), not a new empty one.
    """
    from voice.config import load_config
    from voice.errors import VoiceError
    from voice.store import Store

    try:
        config = load_config(config_file, {"db_url": db_url, "data_dir": data_dir})
        url = existing_database(config.database_url) if reading else config.database_url
        return Store.open(url), config
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
