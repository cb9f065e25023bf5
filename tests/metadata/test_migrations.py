"""The Alembic migrations and tables.py must describe the same schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from mlkeep.metadata import Database
from mlkeep.metadata.database import HEAD_REVISION
from mlkeep.metadata.tables import metadata


def test_migrations_match_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert db.revision() == HEAD_REVISION


def test_ensure_schema_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.ensure_schema()
    db.ensure_schema()
    assert "runs" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
