"""Experiments: named groups of runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Executable, bindparam, select

from mlkeep.errors import ConflictError, InvalidInputError, NotFoundError, RunStateError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import experiments
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.tracking.entities import Experiment, LifecycleStage

DEFAULT_EXPERIMENT = "Default"


def _id_by_name(dialect: str) -> tuple[Executable, Sequence[str]]:
    stmt = select(experiments.c.id, experiments.c.lifecycle_stage).where(experiments.c.name == bindparam("name"))
    return stmt, ("name",)


def _insert_experiment(dialect: str) -> tuple[Executable, Sequence[str]]:
    names = ("id", "name", "creation_time")
    stmt = insert_for_dialect(dialect)(experiments).values({n: bindparam(n) for n in names})
    return stmt.on_conflict_do_nothing(index_elements=["name"]), names


def ensure_experiment(conn: Connection, name: str, *, live: bool = False) -> str:
    """The id of experiment `name`, creating it if needed (safe under concurrency).

    With `live`, a deleted experiment is refused (`RunStateError`): new runs go to live experiments only.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("An experiment name must be a non-empty string.")
    found = _find(conn, name)
    if found is None:
        prepared(conn.dialect, _insert_experiment).execute(conn, (new_id(), name, now_ms())).close()
        found = _find(conn, name)
        assert found is not None  # inserted just now, or by a concurrent writer
    exp_id, stage = found
    if live and stage == LifecycleStage.DELETED:
        raise RunStateError(f"Experiment {name!r} is deleted; restore it (`restore_experiment`) to add runs.")
    return exp_id


def _find(conn: Connection, name: str) -> tuple[str, str] | None:
    cur = prepared(conn.dialect, _id_by_name).execute(conn, (name,))
    row = cur.fetchone()
    cur.close()
    return None if row is None else (str(row[0]), str(row[1]))


def create_experiment(
    db: Database, name: str, description: str | None = None, *, exist_ok: bool = True
) -> Experiment:
    """Create (or return the existing) experiment called `name`.

    With `exist_ok=False` an existing one (live or deleted) is a `ConflictError`, as MLflow's create is.
    """
    with db.begin() as conn:
        if not exist_ok and isinstance(name, str) and _find(conn, name) is not None:
            raise ConflictError(f"Experiment {name!r} already exists (perhaps deleted: restore it).")
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


def list_experiments(db: Database, view: str = LifecycleStage.ACTIVE) -> list[Experiment]:
    """Experiments by creation time: `view` is "active" (default), "deleted" or "all"."""
    query = select(experiments).order_by(experiments.c.creation_time)
    if view != "all":
        if view not in LifecycleStage.ALL:
            raise InvalidInputError(f"view must be 'active', 'deleted' or 'all', not {view!r}.")
        query = query.where(experiments.c.lifecycle_stage == view)
    with db.connect() as conn:
        rows = conn.execute(query).all()
    return [Experiment(**r._asdict()) for r in rows]


def rename_experiment(db: Database, name_or_id: str, new_name: str) -> Experiment:
    """Give an experiment another name; `ConflictError` if that name is taken."""
    if not isinstance(new_name, str) or not new_name.strip():
        raise InvalidInputError("An experiment name must be a non-empty string.")
    exp = get_experiment(db, name_or_id)
    with db.begin() as conn:
        if new_name != exp.name and _find(conn, new_name) is not None:
            raise ConflictError(f"An experiment named {new_name!r} already exists.")
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(name=new_name))
    return get_experiment(db, exp.id)


def delete_experiment(db: Database, name_or_id: str) -> None:
    """Mark an experiment deleted: hidden from listings, runs kept, restorable; new runs refused."""
    _set_stage(db, name_or_id, LifecycleStage.DELETED)


def restore_experiment(db: Database, name_or_id: str) -> None:
    """Bring a deleted experiment back (restoring a live one changes nothing)."""
    _set_stage(db, name_or_id, LifecycleStage.ACTIVE)


def _set_stage(db: Database, name_or_id: str, stage: str) -> None:
    exp = get_experiment(db, name_or_id)
    if stage == LifecycleStage.DELETED and exp.name == DEFAULT_EXPERIMENT:
        raise InvalidInputError(f"The {DEFAULT_EXPERIMENT!r} experiment cannot be deleted.")
    with db.begin() as conn:
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(lifecycle_stage=stage))
