"""INSERT ... ON CONFLICT for the two engines we support.

Both SQLite and PostgreSQL speak the same `ON CONFLICT DO UPDATE` and
SQLAlchemy exposes it per dialect; this picks the right one so callers stay
portable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table


def insert_for(conn: Connection) -> Callable[[Table], Any]:
    """The dialect's `insert` that has `on_conflict_do_update/nothing`."""
    return insert_for_dialect(conn.dialect.name)


def insert_for_dialect(name: str) -> Callable[[Table], Any]:
    """`insert_for` by dialect name, for statements compiled ahead of a connection."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert

    return insert


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, silently skipping those whose primary key exists."""
    if rows:
        conn.execute(insert_for(conn)(table).on_conflict_do_nothing(), list(rows))
