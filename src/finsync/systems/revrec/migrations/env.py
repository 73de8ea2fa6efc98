"""Alembic environment of the embedded revenue engine (its own version table)."""

from __future__ import annotations

from alembic import context

from finsync.systems.revrec.migrate import VERSION_TABLE
from finsync.systems.revrec.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE,
                  include_name=lambda name, kind, _parent: kind != "table"
                  or str(name).startswith("revrec_"),
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
