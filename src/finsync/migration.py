"""Alembic, run from code, for each schema finsync keeps: the hub's and each embedded
system's. Every schema has its own migrations folder and version table, and looks only at
its own tables, so they share one database without touching each other."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Upgrade one schema. On SQLite, foreign keys are off while it runs: a batch migration
    rebuilds a table (copy, drop, rename), and the drop must not trip over the rows that
    point at it; the check runs once the rebuilt table is in place."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _pragma(conn, "foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("a migration left rows pointing at nothing")
        finally:
            if sqlite:
                _pragma(conn, "foreign_keys=ON")


def _pragma(conn: Connection, setting: str) -> None:
    # On the driver's connection: through SQLAlchemy it would open a transaction first.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {setting}")
    finally:
        cursor.close()


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
