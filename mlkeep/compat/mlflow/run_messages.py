"""MLflow Run messages for a page of runs, built straight from rows: a search answer costs what its page holds.

Each table a message draws on (runs, params, tags, latest metrics, input
datasets, logged models) is read once for the whole page, on one connection,
by a statement compiled once per dialect (`id_lists`). No `Run` entity is made
on the way: a page of 500 runs that way paid for 500 entities, their
environments, and SQLAlchemy's work on a dozen statements, several times what
the database took to answer.

On SQLite the database writes most of the messages too (`search_answer`): its
JSON functions make each run's info, params and tags as JSON text in C, and
Python only joins the pieces; building and encoding those dicts cost more
than the rest of a search together. Of a metric, SQLite writes all but the
value, which Python writes (`repr`, as `json` does): SQLite renders a double
with 15 digits, and its printf's 17 are not always the double either, while
a metric must read back exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Executable, select, text

from mlkeep.compat.mlflow import datasets, logged_models
from mlkeep.compat.mlflow.messages import ARTIFACTS_SCHEME, RUNS_ROOT, number, run_info_of
from mlkeep.metadata.database import Database
from mlkeep.metadata.id_lists import among, fetch, ids_value
from mlkeep.metadata.tables import latest_metrics, params, runs, tags

__all__ = ["run_messages", "search_answer"]


def search_answer(db: Database, run_ids: Sequence[str], next_page_token: str | None) -> bytes:
    """A SearchRuns response (the page's Run messages, as `run_messages` makes them) as JSON bytes."""
    extra = {"next_page_token": next_page_token} if next_page_token else {}
    if db.dialect != "sqlite" or not run_ids:
        return _dumps({"runs": run_messages(db, run_ids), **extra})
    with db.connect() as conn:
        ids = ids_value(conn.dialect.name, run_ids)
        inputs, outputs = datasets.inputs_of_runs(conn, ids), logged_models.of_runs(conn, ids)
        metrics = _metric_texts(conn, ids)
        rows = {row[0]: row for row in fetch(conn, _runs_json, ids)}
    pieces = []
    for run_id in run_ids:
        row = rows.get(run_id)
        if row is None:
            continue
        _, info, params_, tags_ = row
        of_run = metrics.get(run_id)
        data = ",".join(f'"{name}":{found}' for name, found in (
            ("metrics", f"[{','.join(of_run)}]" if of_run else "[]"), ("params", params_), ("tags", tags_))
            if found != "[]")
        dataset_inputs, model_outputs = inputs.get(run_id), outputs.get(run_id)
        rest = _dumps({"inputs": {"dataset_inputs": dataset_inputs} if dataset_inputs else {},
                       "outputs": {"model_outputs": [{"model_id": m, "step": 0} for m in model_outputs]}
                       if model_outputs else {}}).decode() if dataset_inputs or model_outputs else _NO_IO
        pieces.append(f'{{"info":{info},"data":{{{data}}},{rest[1:-1]}}}')
    tail = _dumps(extra).decode()[1:-1]
    return f'{{"runs":[{",".join(pieces)}]{"," + tail if tail else ""}}}'.encode()


def _dumps(message: Any) -> bytes:
    """JSON as starlette's JSONResponse writes it."""
    return _ENCODER.encode(message).encode()


# One encoder for every piece: `json.dumps` with options makes a new one per call, which costs more than
# encoding a run's few metrics.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


_NO_IO = '{"inputs":{},"outputs":{}}'


def run_messages(db: Database, run_ids: Sequence[str], *, new: bool = False) -> list[dict[str, Any]]:
    """The Run messages of these runs, in their order (an id of no run is skipped). `new` runs, just made,
    have no metrics, datasets or logged models yet: only their info, params and tags are read.

    Empty lists are left out, as protobuf's JSON leaves them out: a page is smaller to send and parse.
    """
    if not run_ids:
        return []
    with db.connect() as conn:
        ids = ids_value(conn.dialect.name, run_ids)
        metrics = {} if new else _metric_lists(conn, ids)
        params, tags = _pairs(fetch(conn, _params, ids)), _pairs(fetch(conn, _tags, ids))
        inputs: dict[str, list[dict[str, Any]]] = {} if new else datasets.inputs_of_runs(conn, ids)
        outputs: dict[str, list[str]] = {} if new else logged_models.of_runs(conn, ids)
        rows = {row[0]: row for row in fetch(conn, _runs, ids)}
    out = []
    for run_id in run_ids:
        row = rows.get(run_id)
        if row is None:
            continue
        data = {}
        for name, of_run in (("metrics", metrics.get(run_id)), ("params", params.get(run_id)),
                             ("tags", tags.get(run_id))):
            if of_run:
                data[name] = of_run
        dataset_inputs, model_outputs = inputs.get(run_id), outputs.get(run_id)
        out.append({
            "info": run_info_of(*row), "data": data,
            "inputs": {"dataset_inputs": dataset_inputs} if dataset_inputs else {},
            "outputs": {"model_outputs": [{"model_id": m, "step": 0} for m in model_outputs]} if model_outputs else {},
        })
    return out


_INF = math.inf


def _metric_lists(conn: Connection, ids: Any) -> dict[str, list[dict[str, Any]]]:
    """Each run's latest metrics as Metric messages."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run_id, key, value, step, timestamp in fetch(conn, _metrics, ids):
        # NaN is stored as NULL; a finite value is sent as it is, the infinities by `number`.
        entry = {"key": key, "value": "NaN" if value is None else value if -_INF < value < _INF else number(value),
                 "timestamp": timestamp, "step": step}
        found = out.get(run_id)
        if found is None:
            out[run_id] = [entry]
        else:
            found.append(entry)
    return out


def _metric_texts(conn: Connection, ids: Any) -> dict[str, list[str]]:
    """Each run's latest metrics as Metric messages in JSON text (SQLite): the database writes all but the value,
    which Python writes as `json` would (the shortest text that reads back as the same double)."""
    out: dict[str, list[str]] = {}
    for run_id, head, value in fetch(conn, _metrics_json, ids):
        # NaN is stored as NULL; a finite value is written as it is, the infinities by `number`.
        shown = '"NaN"' if value is None else repr(value) if -_INF < value < _INF else _ENCODER.encode(number(value))
        found = out.get(run_id)
        if found is None:
            out[run_id] = [f"{head}{shown}}}"]
        else:
            found.append(f"{head}{shown}}}")
    return out


def _pairs(rows: Sequence[tuple[str, str, str]]) -> dict[str, list[dict[str, str]]]:
    """(run id, key, value) rows as each run's list of {"key", "value"} messages."""
    out: dict[str, list[dict[str, str]]] = {}
    for run_id, key, value in rows:
        found = out.get(run_id)
        if found is None:
            out[run_id] = [{"key": key, "value": value}]
        else:
            found.append({"key": key, "value": value})
    return out


# Statement builders, module-level as `prepared` keys its cache by them.
def _runs(dialect: str) -> tuple[Executable, Sequence[str]]:
    r = runs.c
    return (select(r.id, r.name, r.experiment_id, r.creator, r.status, r.start_time, r.end_time,
                   r.lifecycle_stage).where(among(r.id, dialect)), ["ids"])


def _runs_json(dialect: str) -> tuple[Executable, Sequence[str]]:
    """Per run: its id, then its RunInfo, params and tags as JSON text (SQLite only)."""
    info = """'run_id', r.id, 'run_uuid', r.id, 'run_name', r.name, 'experiment_id', r.experiment_id,
        'user_id', coalesce(r.creator, ''), 'status', r.status, 'start_time', r.start_time,
        'artifact_uri', '%s' || r.id, 'lifecycle_stage', r.lifecycle_stage""" % f"{ARTIFACTS_SCHEME}{RUNS_ROOT}/"
    sql = f"""SELECT r.id,
        CASE WHEN r.end_time IS NULL THEN json_object({info}) ELSE json_object({info}, 'end_time', r.end_time) END,
        (SELECT json_group_array(json_object('key', p.key, 'value', p.value)) FROM params p WHERE p.run_id = r.id),
        (SELECT json_group_array(json_object('key', t.key, 'value', t.value)) FROM tags t WHERE t.run_id = r.id)
        FROM runs r WHERE r.id IN (SELECT value FROM json_each(:ids))"""
    return text(sql), ["ids"]


def _metrics(dialect: str) -> tuple[Executable, Sequence[str]]:
    m = latest_metrics.c
    return select(m.run_id, m.key, m.value, m.step, m.timestamp).where(among(m.run_id, dialect)), ["ids"]


def _metrics_json(dialect: str) -> tuple[Executable, Sequence[str]]:
    """Per latest metric: its run id, then its Metric message as JSON text up to the value (SQLite only)."""
    sql = """SELECT m.run_id, '{"key":' || json_quote(m.key) || ',"timestamp":' || m.timestamp
        || ',"step":' || m.step || ',"value":', m.value
        FROM latest_metrics m WHERE m.run_id IN (SELECT value FROM json_each(:ids))"""
    return text(sql), ["ids"]


def _params(dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(params.c.run_id, params.c.key, params.c.value).where(among(params.c.run_id, dialect)), ["ids"]


def _tags(dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(tags.c.run_id, tags.c.key, tags.c.value).where(among(tags.c.run_id, dialect)), ["ids"]
