"""The tax engine schema's migrations, apart from the hub's (own version table)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from finsync import migration

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "tax_alembic_version"


def upgrade(engine: Engine, revision: str = "head") -> None:
    migration.upgrade(engine, MIGRATIONS, revision)
