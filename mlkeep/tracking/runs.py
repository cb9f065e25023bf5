"""Runs: creation, state, params and tags, read back as `Run` entities."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from mlkeep.errors import InvalidInputError, NotFoundError, ParamConflictError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.tables import experiments, latest_metrics, params, runs, tags
from mlkeep.metadata.upsert import insert_for
from mlkeep.tracking.entities import MetricSummary, Run, RunStatus
from mlkeep.tracking.experiments import ensure_experiment
from mlkeep.tracking.values import check_key, from_sql, param_value

def create_run(
    db: Database,
    experiment: str,
    name: str | None = None,
    *,
    parent_run_id: str | None = None,
    tags_: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """Insert a RUNNING run (and its experiment if new); return its id."""
    run_id = new_id()
    with db.begin() as conn:
        exp_id = ensure_experiment(conn, experiment)
        if parent_run_id is not None:
            _require_run(conn, parent_run_id)
        conn.execute(
            runs.insert(),
            [
                {
                    "id": run_id,
                    "experiment_id": exp_id,
                    "name": name or f"run-{run_id[:8]}",
                    "status": RunStatus.RUNNING,
                    "start_time": now_ms(),
                    "parent_run_id": parent_run_id,
                    "creator": _user(),
                    "environment": json.dumps(dict(environment or {}), sort_keys=True),
                }
            ],
        )
        if tags_:
            _set_tags(conn, run_id, tags_)
    return run_id


def end_run(db: Database, run_id: str, status: str = RunStatus.FINISHED, failure: str | None = None) -> None:
    """Mark a run terminated with `status`, keeping `failure` (a traceback) when it failed."""
    if status not in RunStatus.ALL:
        raise InvalidInputError(f"Run status must be one of {', '.join(RunStatus.ALL)}, not {status!r}.")
    with db.begin() as conn:
        _require_run(conn, run_id)
        conn.execute(
            runs.update().where(runs.c.id == run_id).values(status=status, end_time=now_ms(), failure=failure)
        )


def log_params(db: Database, run_id: str, values: Mapping[str, Any]) -> None:
    """Record params; re-logging the same value is a no-op, another value is an error."""
    new = {check_key("param", k): param_value(v) for k, v in values.items()}
    with db.begin() as conn:
        _require_run(conn, run_id)
        have = dict(
            conn.execute(
                select(params.c.key, params.c.value).where(params.c.run_id == run_id, params.c.key.in_(list(new)))
            ).all()
        )
        for key, value in new.items():
            if key in have and have[key] != value:
                raise ParamConflictError(
                    f"Param {key!r} of run {run_id} is already {have[key]!r}; it cannot become {value!r}. "
                    "Params are inputs and never change: start a new run, or log the new value as a tag."
                )
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in new.items() if k not in have]
        if rows:
            conn.execute(params.insert(), rows)


def set_tags(db: Database, run_id: str, values: Mapping[str, Any]) -> None:
    """Set (or overwrite) tags of a run."""
    with db.begin() as conn:
        _require_run(conn, run_id)
        _set_tags(conn, run_id, values)


def delete_tag(db: Database, run_id: str, key: str) -> None:
    with db.begin() as conn:
        _require_run(conn, run_id)
        conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key == key))


def get_run(db: Database, run_id: str) -> Run:
    """The run with its params, tags and latest metrics; `NotFoundError` if unknown."""
    found = get_runs(db, [run_id])
    if not found:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")
    return found[0]


def get_runs(db: Database, run_ids: Sequence[str]) -> list[Run]:
    """Runs in the order of `run_ids` (unknown ids skipped), each fully loaded in 4 queries total."""
    if not run_ids:
        return []
    ids = list(dict.fromkeys(run_ids))
    with db.connect() as conn:
        rows = conn.execute(
            select(runs, experiments.c.name.label("experiment"))
            .join(experiments, experiments.c.id == runs.c.experiment_id)
            .where(runs.c.id.in_(ids))
        ).all()
        p = _grouped(conn.execute(select(params).where(params.c.run_id.in_(ids))).all())
        t = _grouped(conn.execute(select(tags).where(tags.c.run_id.in_(ids))).all())
        m: dict[str, dict[str, MetricSummary]] = {}
        for r in conn.execute(select(latest_metrics).where(latest_metrics.c.run_id.in_(ids))).all():
            m.setdefault(r.run_id, {})[r.key] = MetricSummary(
                key=r.key, value=from_sql(r.value), step=r.step, timestamp=r.timestamp,
                min=from_sql(r.min_value), max=from_sql(r.max_value), count=r.count,
            )
    by_id = {}
    for r in rows:
        d = r._asdict()
        d["environment"] = json.loads(d["environment"] or "{}")
        by_id[r.id] = Run(**d, params=p.get(r.id, {}), tags=t.get(r.id, {}), metrics=m.get(r.id, {}))
    return [by_id[i] for i in ids if i in by_id]


def child_runs(db: Database, run_id: str) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(select(runs.c.id).where(runs.c.parent_run_id == run_id)).scalars())


def require_run(db: Database, run_id: str) -> None:
    with db.connect() as conn:
        _require_run(conn, run_id)


def _require_run(conn: Connection, run_id: str) -> None:
    if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")


def _set_tags(conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    rows = [{"run_id": run_id, "key": check_key("tag", k), "value": str(v)} for k, v in values.items()]
    if rows:
        stmt = insert_for(conn)(tags)
        conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}), rows)


def _grouped(rows: Iterable[Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r.run_id, {})[r.key] = r.value
    return out


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None
