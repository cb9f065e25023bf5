"""A list of ids (a page of runs, a search's experiments) as one SQL parameter: one compiled statement for any length.

An `IN (?, ?, ...)` list is a new statement for every length (or a padded
family of them) and a bound parameter per id; SQLite instead reads the ids
from one JSON array (`json_each`), PostgreSQL from one array (`= ANY`). Either
way the database looks each id up in the table's index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, String, any_, bindparam, cast, column, func, select

from mlkeep.metadata.database import Build, prepared

__all__ = ["among", "fetch", "ids_value"]


def among(col: Any, dialect: str) -> ColumnElement[bool]:
    """`col` is one of the ids bound to the parameter `ids` (an `ids_value`)."""
    if dialect == "sqlite":
        return col.in_(select(column("value")).select_from(func.json_each(bindparam("ids"))))  # type: ignore[no-any-return]
    return col == any_(cast(bindparam("ids"), ARRAY(String)))  # type: ignore[no-any-return]


def ids_value(dialect: str, ids: Sequence[str]) -> Any:
    """The ids as the parameter `among` reads: JSON text for SQLite, a list (an array) elsewhere."""
    return json.dumps(list(ids)) if dialect == "sqlite" else list(ids)


def fetch(conn: Connection, build: Build, ids: Any) -> list[tuple[Any, ...]]:
    """The rows of `build`'s statement, whose one parameter `among` reads, for `ids` (an `ids_value`)."""
    cur = prepared(conn.dialect, build).execute(conn, (ids,))
    try:
        return list(cur.fetchall())
    finally:
        cur.close()
