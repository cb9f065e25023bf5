"""Runs: creation, state, params and tags, read back as `Run` entities."""

from __future__ import annotations

import functools
import getpass
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, bindparam, select

from mlkeep.errors import InvalidInputError, NotFoundError, ParamConflictError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import experiments, latest_metrics, params, runs, tags
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.tracking.entities import LifecycleStage, MetricSummary, Run, RunStatus
from mlkeep.tracking.experiments import ensure_experiment
from mlkeep.tracking.values import check_key, param_value

if TYPE_CHECKING:
    from mlkeep.tracking.metrics import MetricBuffer

# The statements of a run's life, compiled once per dialect (see `Prepared`):
# creating, logging params and ending a run are three short transactions.
_RUN_COLUMNS = ("id", "experiment_id", "name", "status", "start_time", "parent_run_id", "creator", "environment")


def _insert_run(dialect: str) -> tuple[Executable, Sequence[str]]:
    return runs.insert().values({c: bindparam(c) for c in _RUN_COLUMNS}), _RUN_COLUMNS


def _end_run(dialect: str) -> tuple[Executable, Sequence[str]]:
    stmt = (
        runs.update()
        .where(runs.c.id == bindparam("b_id"))
        .values(status=bindparam("b_status"), end_time=bindparam("b_end_time"), failure=bindparam("b_failure"))
    )
    return stmt, ("b_status", "b_end_time", "b_failure", "b_id")



def _run_exists(dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(runs.c.id).where(runs.c.id == bindparam("id")), ("id",)


def _insert_params(dialect: str) -> tuple[Executable, Sequence[str]]:
    names = ("run_id", "key", "value")
    stmt = insert_for_dialect(dialect)(params).values({n: bindparam(n) for n in names})
    return stmt.on_conflict_do_nothing(index_elements=["run_id", "key"]), names


def _params_of_run(dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(params.c.key, params.c.value).where(params.c.run_id == bindparam("run_id")), ("run_id",)


def _upsert_tags(dialect: str) -> tuple[Executable, Sequence[str]]:
    names = ("run_id", "key", "value")
    stmt = insert_for_dialect(dialect)(tags).values({n: bindparam(n) for n in names})
    return stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}), names


def create_run(
    db: Database,
    experiment: str,
    name: str | None = None,
    *,
    parent_run_id: str | None = None,
    tags_: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    run_id: str | None = None,
    start_time: int | None = None,
    creator: str | None = None,
) -> str:
    """Insert a RUNNING run (and its experiment if new); return its id.

    `run_id`, `start_time` and `creator` keep what another tracker recorded
    (an import); by default a fresh id, now, and the current user.
    `RunStateError` when the experiment is deleted.
    """
    if run_id is not None and (not isinstance(run_id, str) or not _RUN_ID.match(run_id)):
        raise InvalidInputError(f"A run id is 1 to 64 letters, digits, '-' or '_', not {run_id!r}.")
    run_id = run_id or new_id()
    env = json.dumps(dict(environment or {}), sort_keys=True)
    tag_rows = _tag_rows(run_id, tags_) if tags_ else []
    with db.begin() as conn:
        exp_id = ensure_experiment(conn, experiment, live=True)
        if parent_run_id is not None:
            _require_run(conn, parent_run_id)
        started = now_ms() if start_time is None else int(start_time)
        row = (run_id, exp_id, name or f"run-{run_id[:8]}", RunStatus.RUNNING, started, parent_run_id,
               creator or _user(), env)
        prepared(conn.dialect, _insert_run).execute(conn, row).close()
        if tag_rows:
            prepared(conn.dialect, _upsert_tags).executemany(conn, tag_rows)
    return run_id


def end_run(
    db: Database,
    run_id: str,
    status: str = RunStatus.FINISHED,
    failure: str | None = None,
    *,
    metrics: MetricBuffer | None = None,
    end_time: int | None = None,
) -> None:
    """Mark a run terminated with `status`, keeping `failure` (a traceback) when it failed.

    With `metrics` (the run's buffer) the last values are written and the run
    marked ended in one transaction, and the buffer is closed. `end_time`
    keeps another tracker's record (default: now).
    """
    if status not in RunStatus.ALL:
        raise InvalidInputError(f"Run status must be one of {', '.join(RunStatus.ALL)}, not {status!r}.")
    ended = now_ms() if end_time is None else int(end_time)

    def mark(conn: Connection) -> None:
        cur = prepared(conn.dialect, _end_run).execute(conn, (status, ended, failure, run_id))
        found = cur.rowcount
        cur.close()
        if found == 0:
            raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")

    if metrics is not None:
        metrics.close(then=mark)
        return
    with db.begin() as conn:
        mark(conn)


def log_params(db: Database, run_id: str, values: Mapping[str, Any]) -> None:
    """Record params; re-logging the same value is a no-op, another value is an error.

    One transaction: the run is checked, new keys inserted, and only when some
    key was there already are the stored values compared (a conflict rolls
    everything back, so nothing of this call is kept).
    """
    new = {check_key("param", k): param_value(v) for k, v in values.items()}
    if not new:
        require_run(db, run_id)
        return
    rows = [(run_id, k, v) for k, v in new.items()]
    with db.begin() as conn:
        _require_run(conn, run_id)
        inserted = prepared(conn.dialect, _insert_params).executemany(conn, rows)
        if inserted != len(rows):  # some keys existed (or the driver cannot tell): compare
            cur = prepared(conn.dialect, _params_of_run).execute(conn, (run_id,))
            have = dict(cur.fetchall())
            cur.close()
            for key, value in new.items():
                if have.get(key, value) != value:
                    raise ParamConflictError(
                        f"Param {key!r} of run {run_id} is already {have[key]!r}; it cannot become {value!r}. "
                        "Params are inputs and never change: start a new run, or log the new value as a tag."
                    )


def set_tags(db: Database, run_id: str, values: Mapping[str, Any]) -> None:
    """Set (or overwrite) tags of a run."""
    rows = _tag_rows(run_id, values)
    with db.begin() as conn:
        _require_run(conn, run_id)
        if rows:
            prepared(conn.dialect, _upsert_tags).executemany(conn, rows)


def delete_tag(db: Database, run_id: str, key: str) -> None:
    """Remove tag `key` of a run; `NotFoundError` if the run or the tag does not exist."""
    with db.begin() as conn:
        _require_run(conn, run_id)
        if conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key == key)).rowcount == 0:
            raise NotFoundError(f"Run {run_id} has no tag {key!r}.")


def rename_run(db: Database, run_id: str, name: str) -> None:
    """Give a run another name (names are labels; the id stays)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise InvalidInputError(f"A run name is a non-empty string of at most 250 characters, not {name!r}.")
    with db.begin() as conn:
        if conn.execute(runs.update().where(runs.c.id == run_id).values(name=name)).rowcount == 0:
            raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")


def delete_run(db: Database, run_id: str) -> None:
    """Mark a run deleted: hidden from search, kept whole, restorable with `restore_run`."""
    _set_stage(db, run_id, LifecycleStage.DELETED)


def restore_run(db: Database, run_id: str) -> None:
    """Bring a deleted run back (restoring an active run changes nothing)."""
    _set_stage(db, run_id, LifecycleStage.ACTIVE)


def _set_stage(db: Database, run_id: str, stage: str) -> None:
    with db.begin() as conn:
        if conn.execute(runs.update().where(runs.c.id == run_id).values(lifecycle_stage=stage)).rowcount == 0:
            raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")


def get_run(db: Database, run_id: str) -> Run:
    """The run with its params, tags and latest metrics; `NotFoundError` if unknown."""
    found = get_runs(db, [run_id])
    if not found:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")
    return found[0]


def get_runs(db: Database, run_ids: Sequence[str]) -> list[Run]:
    """Runs in the order of `run_ids` (unknown ids skipped), each fully loaded in 4 queries per 256 runs."""
    if not run_ids:
        return []
    ids = list(dict.fromkeys(run_ids))
    by_id: dict[str, Run] = {}
    with db.connect() as conn:
        for i in range(0, len(ids), _MAX_IDS):
            by_id.update(_load_runs(conn, ids[i : i + _MAX_IDS]))
    return [by_id[i] for i in ids if i in by_id]


# Reading runs back is what every search result costs, so the four queries are
# compiled once per dialect and size: `id IN (?, ?, ...)` with the id list
# padded to the next power of two, up to `_MAX_IDS` per query.
_MAX_IDS = 256
_RUN_FIELDS = ("id", "experiment_id", "name", "status", "start_time", "end_time", "parent_run_id", "creator",
               "failure", "environment", "lifecycle_stage")


@functools.lru_cache(maxsize=None)
def _by_ids(what: str, n: int) -> Callable[[str], tuple[Executable, Sequence[str]]]:
    """A statement builder (a stable cache key for `prepared`) for `what` of `n` run ids."""

    def build(dialect: str) -> tuple[Executable, Sequence[str]]:
        names = [f"id{k}" for k in range(n)]
        binds: list[Any] = [bindparam(name) for name in names]
        if what == "runs":
            cols = [runs.c[f] for f in _RUN_FIELDS]
            stmt = (
                select(*cols, experiments.c.name)
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id.in_(binds))
            )
        elif what == "metrics":
            c = latest_metrics.c
            stmt = select(c.run_id, c.key, c.value, c.step, c.timestamp, c.min_value, c.max_value, c.count).where(
                c.run_id.in_(binds)
            )
        else:
            table = params if what == "params" else tags
            stmt = select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(binds))
        return stmt, names

    return build


def _fetch(conn: Connection, what: str, ids: list[str]) -> list[tuple[Any, ...]]:
    n = 1
    while n < len(ids):
        n *= 2
    cur = prepared(conn.dialect, _by_ids(what, n)).execute(conn, ids + [ids[0]] * (n - len(ids)))
    try:
        return list(cur.fetchall())
    finally:
        cur.close()


def _load_runs(conn: Connection, ids: list[str]) -> dict[str, Run]:
    p = _grouped(_fetch(conn, "params", ids))
    t = _grouped(_fetch(conn, "tags", ids))
    m: dict[str, dict[str, MetricSummary]] = {}
    nan = math.nan
    for run_id, key, value, step, timestamp, lo, hi, count in _fetch(conn, "metrics", ids):
        m.setdefault(run_id, {})[key] = MetricSummary(
            key=key, value=nan if value is None else value, step=step, timestamp=timestamp,
            min=nan if lo is None else lo, max=nan if hi is None else hi, count=count,
        )
    environments: dict[str, dict[str, str]] = {}  # runs of one process share theirs: parse it once
    out = {}
    for row in _fetch(conn, "runs", ids):
        (run_id, experiment_id, name, status, start_time, end_time, parent_run_id, creator, failure, env,
         stage, experiment) = row
        env = env or "{}"
        if env not in environments:
            environments[env] = json.loads(env)
        out[run_id] = Run(
            id=run_id, experiment_id=experiment_id, experiment=experiment, name=name, status=status,
            start_time=start_time, end_time=end_time, parent_run_id=parent_run_id, creator=creator,
            failure=failure, params=p.get(run_id, {}), tags=t.get(run_id, {}), metrics=m.get(run_id, {}),
            environment=dict(environments[env]), lifecycle_stage=stage,
        )
    return out


def child_runs(db: Database, run_id: str) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(select(runs.c.id).where(runs.c.parent_run_id == run_id)).scalars())


def require_run(db: Database, run_id: str) -> None:
    with db.connect() as conn:
        _require_run(conn, run_id)


def require_run_in(conn: Connection, run_id: str) -> None:
    """`NotFoundError` unless the run exists, checked in the caller's transaction."""
    _require_run(conn, run_id)


def _require_run(conn: Connection, run_id: str) -> None:
    cur = prepared(conn.dialect, _run_exists).execute(conn, (run_id,))
    found = cur.fetchone()
    cur.close()
    if found is None:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")


def _tag_rows(run_id: str, values: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [(run_id, check_key("tag", k), str(v)) for k, v in values.items()]


def _grouped(rows: Iterable[tuple[Any, ...]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for run_id, key, value in rows:
        d = out.get(run_id)
        if d is None:
            d = out[run_id] = {}
        d[key] = value
    return out


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


@functools.lru_cache(maxsize=1)
def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None
