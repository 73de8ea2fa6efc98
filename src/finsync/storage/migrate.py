"""Alembic migrations, run from code (`finsync db upgrade`), no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect

from finsync import migration

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    migration.upgrade(engine, MIGRATIONS, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return None if row is None else str(row[0])
