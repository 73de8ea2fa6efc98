"""Alembic environment: runs on the connection `finsync.storage.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from finsync.storage.db import make_engine
from finsync.storage.schema import metadata


def _ours(name: str | None, kind: str, _parent: object) -> bool:
    """Only the hub's tables: the embedded systems keep theirs under their own migrations."""
    return kind != "table" or name in metadata.tables


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, include_name=_ours,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with make_engine(str(context.config.get_main_option("sqlalchemy.url"))).begin() as conn:
        _run(conn)
