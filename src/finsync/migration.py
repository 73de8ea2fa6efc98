"""Alembic, run from code, for each schema finsync keeps: the hub's and each embedded
system's. Every schema has its own migrations folder and version table, and looks only at
its own tables, so they share one database without touching each other."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, MetaData


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def run_environment(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of a schema's `env.py`, on the connection `upgrade` hands over."""
    connection = context.config.attributes["connection"]
    tables = set(metadata.tables)

    def ours(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in tables

    context.configure(connection=connection, target_metadata=metadata,
                      version_table=version_table, include_name=ours,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
