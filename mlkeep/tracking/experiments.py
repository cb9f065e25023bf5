"""Experiments: named groups of runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Executable, bindparam, select

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import experiments
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.tracking.entities import Experiment

DEFAULT_EXPERIMENT = "Default"


def _id_by_name(dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(experiments.c.id).where(experiments.c.name == bindparam("name")), ("name",)


def _insert_experiment(dialect: str) -> tuple[Executable, Sequence[str]]:
    names = ("id", "name", "creation_time")
    stmt = insert_for_dialect(dialect)(experiments).values({n: bindparam(n) for n in names})
    return stmt.on_conflict_do_nothing(index_elements=["name"]), names


def ensure_experiment(conn: Connection, name: str) -> str:
    """The id of experiment `name`, creating it if needed (safe under concurrency)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("An experiment name must be a non-empty string.")
    found = _find(conn, name)
    if found is not None:
        return found
    prepared(conn.dialect, _insert_experiment).execute(conn, (new_id(), name, now_ms())).close()
    found = _find(conn, name)
    assert found is not None  # inserted just now, or by a concurrent writer
    return found


def _find(conn: Connection, name: str) -> str | None:
    cur = prepared(conn.dialect, _id_by_name).execute(conn, (name,))
    row = cur.fetchone()
    cur.close()
    return None if row is None else str(row[0])


def create_experiment(db: Database, name: str, description: str | None = None) -> Experiment:
    """Create (or return the existing) experiment called `name`."""
    with db.begin() as conn:
        exp_id = ensure_experiment(conn, name)
        if description is not None:
            conn.execute(experiments.update().where(experiments.c.id == exp_id).values(description=description))
    return get_experiment(db, name)


def get_experiment(db: Database, name_or_id: str) -> Experiment:
    """The experiment with this name or id; `NotFoundError` if none."""
    with db.connect() as conn:
        row = conn.execute(
            select(experiments).where((experiments.c.name == name_or_id) | (experiments.c.id == name_or_id))
        ).first()
    if row is None:
        raise NotFoundError(f"No experiment named or with id {name_or_id!r}. List them with `mlkeep experiments`.")
    return Experiment(**row._asdict())


def list_experiments(db: Database) -> list[Experiment]:
    with db.connect() as conn:
        rows = conn.execute(select(experiments).order_by(experiments.c.creation_time)).all()
    return [Experiment(**r._asdict()) for r in rows]
