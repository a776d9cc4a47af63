"""Alembic environment: runs on the connection that ``voice.store.migrate`` hands over.

There is no alembic.ini: the caller builds the Config in code and passes an open connection in
``config.attributes["connection"]``, so migrations run inside the caller's transaction (and, on
PostgreSQL, under its advisory lock).
"""

from __future__ import annotations

from alembic import context

from voice.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "nextline migrations need an open connection: use voice.store.migrate.upgrade(engine) "
        "or `python -m voice.store`, not the bare alembic command"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
