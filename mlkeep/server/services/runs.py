"""Run writes by id: remote writers hold only the run's id, so each write checks the run as `ActiveRun` would."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError
from mlkeep.server.services.access import check_run, writable_run
from mlkeep.tracking.entities import Run, RunStatus

if TYPE_CHECKING:
    from mlkeep.store import Store


def start_run(store: Store, principal: Principal, experiment: str, name: str | None, *,
              parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
              environment: Mapping[str, str] | None = None) -> Run:
    """Create a RUNNING run with the client's environment; a scoped token only in its experiment."""
    from mlkeep.tracking import runs

    principal.require("write")
    if principal.experiment_id is not None:
        principal.require_experiment(store.get_experiment(experiment).id)
    if parent_run_id is not None:
        check_run(store, principal, parent_run_id)
    run_id = runs.create_run(store.db, experiment, name, parent_run_id=parent_run_id, tags_=tags,
                             environment=environment)
    return store.get_run(run_id)


def log_params(store: Store, principal: Principal, run_id: str, params: Mapping[str, Any]) -> None:
    from mlkeep.tracking import runs

    writable_run(store, principal, run_id)
    runs.log_params(store.db, run_id, params)


def set_tags(store: Store, principal: Principal, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlkeep.tracking import runs

    writable_run(store, principal, run_id)
    runs.set_tags(store.db, run_id, tags)


def log_metrics(store: Store, principal: Principal, run_id: str,
                points: Sequence[tuple[str, float | None, int, int]]) -> int:
    """Append a batch of (key, value or None for NaN, step, timestamp) in one transaction; all checked first."""
    from mlkeep.tracking.metrics import write_points
    from mlkeep.tracking.values import check_key, metric_value

    checked = []
    for key, value, step, timestamp in points:
        check_key("metric", key)
        v = math.nan if value is None else metric_value(key, value)
        if math.isinf(v):
            raise InvalidInputError(f"Metric {key!r} must be finite or NaN, not {value!r}.")
        checked.append((key, v, int(step), int(timestamp)))
    writable_run(store, principal, run_id)
    with store.db.begin() as conn:
        write_points(conn, run_id, checked)
    return len(checked)


def end_run(store: Store, principal: Principal, run_id: str, status: str, failure: str | None) -> Run:
    """End a run (ending an ended run is a no-op, as locally)."""
    from mlkeep.tracking import runs

    if check_run(store, principal, run_id, "write") == RunStatus.RUNNING:
        runs.end_run(store.db, run_id, status, failure)
    return store.get_run(run_id)


def get_run(store: Store, principal: Principal, run_id: str) -> Run:
    check_run(store, principal, run_id)
    return store.get_run(run_id)


def get_runs(store: Store, principal: Principal, run_ids: Sequence[str]) -> list[Run]:
    """The runs asked for that exist and the principal sees, in the order asked."""
    found = store.get_runs(run_ids)
    return [r for r in found if principal.experiment_id in (None, r.experiment_id)]
