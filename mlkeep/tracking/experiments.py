"""Experiments: named groups of runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, Executable, Row, bindparam, select

from mlkeep.errors import ConflictError, InvalidInputError, NotFoundError, RunStateError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import experiment_tags, experiments
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.tracking.entities import Experiment, LifecycleStage
from mlkeep.tracking.values import check_key

DEFAULT_EXPERIMENT = "Default"


def _id_by_name(dialect: str) -> tuple[Executable, Sequence[str]]:
    stmt = select(experiments.c.id, experiments.c.lifecycle_stage).where(experiments.c.name == bindparam("name"))
    return stmt, ("name",)


def _by_name_or_id(dialect: str) -> tuple[Executable, Sequence[str]]:
    key: BindParameter[str] = bindparam("key")
    return select(*experiments.c).where((experiments.c.name == key) | (experiments.c.id == key)), ("key",)


def _tags_of(dialect: str) -> tuple[Executable, Sequence[str]]:
    stmt = select(experiment_tags.c.key, experiment_tags.c.value).where(
        experiment_tags.c.experiment_id == bindparam("experiment_id")).order_by(experiment_tags.c.key)
    return stmt, ("experiment_id",)


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
    db: Database, name: str, description: str | None = None, *, exist_ok: bool = True,
    tags: Mapping[str, Any] | None = None,
) -> Experiment:
    """Create (or return the existing) experiment called `name`, with `tags` set on it (one transaction).

    With `exist_ok=False` an existing one (live or deleted) is a `ConflictError`, as MLflow's create is.
    """
    rows = _tag_rows(tags or {})
    with db.begin() as conn:
        if not exist_ok and isinstance(name, str) and _find(conn, name) is not None:
            raise ConflictError(f"Experiment {name!r} already exists (perhaps deleted: restore it).")
        exp_id = ensure_experiment(conn, name)
        if description is not None:
            conn.execute(experiments.update().where(experiments.c.id == exp_id).values(description=description))
        _upsert_tags(conn, exp_id, rows)
    return get_experiment(db, name)


def get_experiment(db: Database, name_or_id: str) -> Experiment:
    """The experiment with this name or id, with its tags; `NotFoundError` if none."""
    with db.connect() as conn:  # prepared: MLflow's client resolves an experiment on every create_run
        cur = prepared(conn.dialect, _by_name_or_id).execute(conn, (name_or_id,))
        row = cur.fetchone()
        cur.close()
        if row is None:
            raise NotFoundError(
                f"No experiment named or with id {name_or_id!r}. List them with `mlkeep experiments`.")
        cur = prepared(conn.dialect, _tags_of).execute(conn, (row[0],))
        tags = dict(cur.fetchall())
        cur.close()
    return Experiment(**dict(zip(experiments.c.keys(), row)), tags=tags)


def list_experiments(db: Database, view: str = LifecycleStage.ACTIVE) -> list[Experiment]:
    """Experiments by creation time: `view` is "active" (default), "deleted" or "all"."""
    query = select(experiments).order_by(experiments.c.creation_time)
    if view != "all":
        if view not in LifecycleStage.ALL:
            raise InvalidInputError(f"view must be 'active', 'deleted' or 'all', not {view!r}.")
        query = query.where(experiments.c.lifecycle_stage == view)
    with db.connect() as conn:
        return _with_tags(conn, conn.execute(query).all())


def describe_experiment(db: Database, name_or_id: str, description: str | None) -> Experiment:
    """Replace an experiment's description (None removes it); returns it updated."""
    exp = get_experiment(db, name_or_id)
    with db.begin() as conn:
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(description=description))
    return get_experiment(db, exp.id)


def set_experiment_tags(db: Database, name_or_id: str, values: Mapping[str, Any]) -> Experiment:
    """Set (or overwrite) tags of an experiment, live or deleted, in one transaction; returns it updated."""
    rows = _tag_rows(values)
    exp = get_experiment(db, name_or_id)
    with db.begin() as conn:
        _upsert_tags(conn, exp.id, rows)
    return get_experiment(db, exp.id)


def delete_experiment_tag(db: Database, name_or_id: str, key: str) -> None:
    """Remove tag `key` of an experiment; `NotFoundError` if the experiment or the tag does not exist."""
    exp = get_experiment(db, name_or_id)
    with db.begin() as conn:
        gone = conn.execute(experiment_tags.delete().where(experiment_tags.c.experiment_id == exp.id,
                                                           experiment_tags.c.key == key)).rowcount
    if gone == 0:
        raise NotFoundError(f"Experiment {exp.name!r} has no tag {key!r}.")


def _tag_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Tags checked before anything is written (keys as run tags' are; values as strings)."""
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"Experiment tags must be a mapping of names to values, not {values!r}.")
    return [(check_key("tag", k), str(v)) for k, v in values.items()]


def _upsert_tags(conn: Connection, experiment_id: str, rows: Sequence[tuple[str, str]]) -> None:
    if not rows:
        return
    stmt = insert_for_dialect(conn.dialect.name)(experiment_tags)
    stmt = stmt.on_conflict_do_update(index_elements=["experiment_id", "key"], set_={"value": stmt.excluded.value})
    conn.execute(stmt, [{"experiment_id": experiment_id, "key": k, "value": v} for k, v in rows])


def _with_tags(conn: Connection, rows: Iterable[Row[Any]]) -> list[Experiment]:
    """Experiments from their rows, each with its tags (read in one query for all of them)."""
    rows = list(rows)
    found: dict[str, dict[str, str]] = {str(r.id): {} for r in rows}
    if found:
        query = select(experiment_tags.c.experiment_id, experiment_tags.c.key, experiment_tags.c.value)
        if len(found) < 500:  # a few: by id; many: every tag (a store has few experiments)
            query = query.where(experiment_tags.c.experiment_id.in_(list(found)))
        for exp_id, key, value in conn.execute(query.order_by(experiment_tags.c.key)):
            if exp_id in found:
                found[exp_id][key] = value
    return [Experiment(**r._asdict(), tags=found[str(r.id)]) for r in rows]


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
