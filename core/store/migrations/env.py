"""Alembic environment: always given a live connection by core.store.migrate (no alembic.ini)."""
from __future__ import annotations

from alembic import context

from core.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through core.store.migrate (python main.py db upgrade), "
                       "which passes the database connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
