"""Storage of calls and transcripts: SQLAlchemy 2 models plus packaged Alembic migrations.

``Store.open(url)`` (SQLite file by default, PostgreSQL by URL) migrates the database to head;
see docs/storage.md for adding tables.
"""

from voice.store.store import CallNotFoundError, CallSummary, Store, default_url

__all__ = ["CallNotFoundError", "CallSummary", "Store", "default_url"]
