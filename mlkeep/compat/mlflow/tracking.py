"""The MLflow tracking calls that take more than one mlkeep call: ids and run writes.

Experiment "0" is MLflow's default experiment: here it is mlkeep's
`Default`. Runs keep MLflow's tags as they are (`mlflow.runName`,
`mlflow.user`, `mlflow.source.*`), and the parent named by `mlflow.parentRunId`
becomes the run's parent. Metrics re-sent by `log_model` with a `model_id`
(MLflow links a run's metrics to the model) are recorded on the model, not
appended again to the run's history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.compat.mlflow.messages import NOTE_TAG
from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.ids import now_ms
from mlkeep.metadata.tables import metrics as metrics_table
from mlkeep.tracking import experiments, runs
from mlkeep.tracking.entities import Experiment, RunStatus
from mlkeep.tracking.experiments import DEFAULT_EXPERIMENT
from mlkeep.tracking.metrics import write_points
from mlkeep.tracking.values import check_key, metric_value

if TYPE_CHECKING:
    from mlkeep.store import Store

DEFAULT_EXPERIMENT_ID = "0"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
# MLflow's statuses; SCHEDULED is a run not started yet, which mlkeep counts as RUNNING.
STATUSES = {"RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.RUNNING, "FINISHED": RunStatus.FINISHED,
            "FAILED": RunStatus.FAILED, "KILLED": RunStatus.KILLED}


def experiment(store: Store, experiment_id: str) -> Experiment:
    """The experiment with this id; "0" is the default experiment (made on first use)."""
    if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
        return store.create_experiment(DEFAULT_EXPERIMENT)
    return store.get_experiment(str(experiment_id))


def experiment_id(store: Store, experiment_id: str) -> str:
    """The mlkeep id MLflow's experiment id stands for, without reading the experiment: "0" is the default
    experiment (made on first use), any other id is itself. For calls whose own query checks it (a search
    restricted to unknown experiments raises `NotFoundError`), reading it first would cost a round trip."""
    if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
        return experiment(store, experiment_id).id
    return str(experiment_id)


def pairs(items: Sequence[Mapping[str, Any]] | None, what: str) -> dict[str, str]:
    """`[{"key": k, "value": v}]` as a dict (a value may be absent, as protobuf drops empty strings)."""
    out = {}
    for item in items or []:
        if not isinstance(item, Mapping) or "key" not in item:
            raise InvalidInputError(f"Each {what} needs a key, not {item!r}.")
        out[str(item["key"])] = str(item.get("value", ""))
    return out


def create_experiment(store: Store, name: str, tags: Sequence[Mapping[str, Any]] | None) -> Experiment:
    """CreateExperiment: a new experiment (an existing name is a conflict), its tags set in the same transaction."""
    values = pairs(tags, "tag")
    note = values.pop(NOTE_TAG, None)
    return experiments.create_experiment(store.db, name, note, exist_ok=False, tags=values)


def set_experiment_tag(store: Store, experiment_id: str, key: str, value: str) -> None:
    """SetExperimentTag; MLflow's note tag is the experiment's description."""
    exp = experiment(store, experiment_id)
    if key == NOTE_TAG:
        experiments.describe_experiment(store.db, exp.id, value)
    else:
        experiments.set_experiment_tags(store.db, exp.id, {key: value})


def delete_experiment_tag(store: Store, experiment_id: str, key: str) -> None:
    """DeleteExperimentTag; `NotFoundError` if the experiment has no such tag, as in MLflow."""
    exp = experiment(store, experiment_id)
    if key != NOTE_TAG:
        experiments.delete_experiment_tag(store.db, exp.id, key)
    elif exp.description is None:
        raise NotFoundError(f"Experiment {exp.name!r} has no tag {key!r}.")
    else:
        experiments.describe_experiment(store.db, exp.id, None)


def create_run(store: Store, body: Mapping[str, Any]) -> str:
    """Create a run from a CreateRun request; returns its id."""
    exp = experiment(store, body.get("experiment_id") or DEFAULT_EXPERIMENT_ID)
    tags = pairs(body.get("tags"), "tag")
    name = body.get("run_name") or tags.get(RUN_NAME_TAG) or None
    if name is not None:
        tags.setdefault(RUN_NAME_TAG, name)
    start = body.get("start_time")
    return runs.create_run(
        store.db, exp.name, name, parent_run_id=tags.get(PARENT_TAG) or None, tags_=tags,
        start_time=None if start in (None, "", 0, "0") else int(start), creator=body.get("user_id") or None,
    )


def update_run(store: Store, run_id: str, status: str | None, end_time: Any, run_name: str | None) -> None:
    """UpdateRun: a new name, and/or a terminal status (which ends the run at `end_time` or now)."""
    if run_name:
        runs.rename_run(store.db, run_id, run_name)
        runs.set_tags(store.db, run_id, {RUN_NAME_TAG: run_name})
    if status:
        mapped = STATUSES.get(str(status).upper())
        if mapped is None:
            raise InvalidInputError(f"Run status must be one of {', '.join(STATUSES)}, not {status!r}.")
        if mapped != RunStatus.RUNNING:
            end = None if end_time in (None, "", 0, "0") else int(end_time)
            runs.end_run(store.db, run_id, mapped, end_time=end)
    elif not run_name:
        runs.require_run(store.db, run_id)


def metric_points(items: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, float, int, int]]:
    """Metric messages as (key, value, step, timestamp), all checked before any is written.

    A log_batch is a thousand points of a few keys: each key is checked once, and JSON's own
    numbers (float, int) skip the general check, which costs more than the rest of the point.
    """
    points = []
    keys: dict[str, str] = {}
    now = None
    for m in items or []:
        name = m.get("key")
        key = keys.get(name) if type(name) is str else None
        if key is None:
            key = check_key("metric", name)
            keys[key] = key
        raw = m.get("value", 0.0)
        kind = type(raw)
        if kind is float or kind is int:
            value = float(raw)
        elif kind is str and raw in _NON_FINITE:
            value = float(raw)
        else:
            value = metric_value(key, raw)
        if math.isinf(value):  # NaN is allowed, as MLflow allows it
            raise InvalidInputError(f"Metric {key!r} must be finite or NaN, not {raw!r}.")
        timestamp = m.get("timestamp")
        if timestamp is None or timestamp == "":
            now = now_ms() if now is None else now
            timestamp = now
        points.append((key, value, int(m.get("step") or 0), int(timestamp)))
    return points


_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})  # protobuf JSON's spelling of the special doubles


def log_batch(store: Store, run_id: str, metrics: Sequence[Mapping[str, Any]] | None,
              params: Sequence[Mapping[str, Any]] | None, tags: Sequence[Mapping[str, Any]] | None) -> None:
    """LogBatch: params (a changed value is refused, as MLflow does), tags, then metrics in one transaction.

    A metric naming a `model_id` is also linked to that logged model; `log_model` re-sends points the
    run already has for that, and those are not appended twice (MLflow keeps one row per identical point).
    """
    from mlkeep.compat.mlflow import logged_models

    points = metric_points(metrics)
    linked = [(m["model_id"], p) for m, p in zip(metrics or [], points) if m.get("model_id")]
    if params:
        runs.log_params(store.db, run_id, pairs(params, "param"))
    if tags:
        runs.set_tags(store.db, run_id, pairs(tags, "tag"))
    with store.db.begin() as conn:
        runs.require_run_in(conn, run_id)
        if linked:
            have = _existing(conn, run_id, {p[0] for _, p in linked})
            points = [p for p in points if (p[0], None if p[1] != p[1] else p[1], p[2], p[3]) not in have]
        if points:
            write_points(conn, run_id, points)
    for model_id in dict.fromkeys(m for m, _ in linked):
        logged_models.link_metrics(store, str(model_id), [p for m, p in linked if m == model_id])


def _existing(conn: Any, run_id: str, keys: set[str]) -> set[tuple[str, float | None, int, int]]:
    """The (key, value or None for NaN, step, timestamp) points the run has for these keys."""
    rows = conn.execute(select(metrics_table.c.key, metrics_table.c.value, metrics_table.c.step,
                               metrics_table.c.timestamp)
                        .where(metrics_table.c.run_id == run_id, metrics_table.c.key.in_(sorted(keys)))).all()
    return {(k, v, s, t) for k, v, s, t in rows}
