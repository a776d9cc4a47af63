"""Alembic migrations of the nextline database, run by ``voice.store.migrate`` (no alembic.ini)."""
