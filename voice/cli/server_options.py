"""Options of the commands that work on the server's own database and data folder (agents, calls)."""

from __future__ import annotations

from pathlib import Path

import click

db_option = click.option("--db", "db_url", default=None,
                         help="Database URL (default: the server's, SQLite in --data-dir).")
data_dir_option = click.option("--data-dir", default=None,
                               help="The server's data folder (default ./data): database, recordings, uploads.")
config_option = click.option("--config", "config_file", default=None,
                             type=click.Path(exists=True, dir_okay=False, path_type=Path),
                             help="The server's YAML config file.")
