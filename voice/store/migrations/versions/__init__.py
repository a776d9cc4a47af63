"""Alembic revisions, one file per schema change, named ``NNNN_<what>.py`` (see docs/storage.md)."""
