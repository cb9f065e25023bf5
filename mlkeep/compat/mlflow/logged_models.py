"""MLflow 3 LoggedModels as mlkeep Models.

A LoggedModel is recorded as an mlkeep Model (id `m-...`, `run_id` its
source run) so it is in lineage and in `mlkeep models`; what only MLflow
knows (status, tags, params, model type, linked metrics) is kept in the
Model's stored document under "mlflow". Its files (MLmodel, the pickled
model, environment files) are ordinary artifacts of the source run, under
`models/MODEL_ID/`. When a model is finalized READY and its MLmodel names a
scikit-learn pickle, the Model's serialized form is that pickle, so
`store.load_model(id)` and the registry load it without MLflow.

mlkeep keeps files per run: a LoggedModel needs a source run (`log_model`
inside `mlflow.start_run()`, or autologging); one without is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, literal_column, select

from mlkeep.metadata.id_lists import among, fetch, ids_value
from mlkeep.compat.mlflow.messages import ARTIFACTS_SCHEME, RUNS_ROOT, key_values, model_folder, number
from mlkeep.errors import InvalidInputError, NotFoundError, UnsupportedError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata.tables import artifacts, models
from mlkeep.tracking.entities import Model
from mlkeep.tracking.models import insert_model

if TYPE_CHECKING:
    from mlkeep.store import Store

ID_PREFIX = "m-"
PENDING, READY, FAILED = "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"
STATUSES = {PENDING, READY, FAILED}
ALGORITHM = "mlflow"
_SEARCH_CLAUSE = re.compile(r"^\s*(?P<field>name|source_run_id)\s*=\s*(?P<q>['\"])(?P<value>.*?)(?P=q)\s*$", re.I)
_SKLEARN_PICKLE = re.compile(r"^\s{2}sklearn:\s*$(?P<body>(?:\n\s{4}.*)*)", re.M)


def create(store: Store, body: Mapping[str, Any]) -> dict[str, Any]:
    """CreateLoggedModel: a PENDING model of the source run; returns its LoggedModel message."""
    from mlkeep.compat.mlflow.tracking import experiment, pairs

    run_id = body.get("source_run_id")
    if not run_id:
        raise UnsupportedError(
            "mlkeep keeps a model's files with the run that logged it: log the model inside a run "
            "(`with mlflow.start_run(): mlflow.sklearn.log_model(...)`)."
        )
    run = store.get_run(str(run_id))
    exp = experiment(store, body.get("experiment_id") or run.experiment_id)
    model_id = ID_PREFIX + new_id()
    now = now_ms()
    name = str(body.get("name") or "model")
    state: dict[str, Any] = {
        "experiment_id": exp.id, "status": PENDING, "model_type": body.get("model_type") or "",
        "tags": pairs(body.get("tags"), "tag"), "params": pairs(body.get("params"), "param"),
        "metrics": [], "last_updated": now,
    }
    entity = Model(id=model_id, name=name, learning_algorithm=ALGORITHM, creation_time=now, run_id=run.id)
    with store.db.begin() as conn:
        insert_model(conn, entity, extra={"mlflow": state})
    return get(store, model_id)


def get(store: Store, model_id: str) -> dict[str, Any]:
    """The LoggedModel message of `model_id`; `NotFoundError` if MLflow logged no such model."""
    row, doc = _read(store, model_id)
    state = doc["mlflow"]
    info = {
        "model_id": row.id, "experiment_id": state["experiment_id"], "name": row.name,
        "creation_timestamp_ms": row.creation_time, "last_updated_timestamp_ms": state["last_updated"],
        "artifact_uri": artifact_location(row.run_id, row.id), "status": state["status"],
        "model_type": state["model_type"], "source_run_id": row.run_id, "tags": key_values(state["tags"]),
    }
    data = {"params": key_values(state["params"]), "metrics": state["metrics"]}
    return {"info": info, "data": data}


def resolve(store: Store, ref: str) -> Model:
    """The mlkeep Model of an MLflow model reference: a LoggedModel id (`m-...`, `models:/m-...`), a
    `runs:/RUN_ID/NAME` URI (the newest model of that name the run logged) or a registry URI
    (`models:/NAME/VERSION`, `models:/NAME@ALIAS`). `NotFoundError` if it names nothing."""
    from mlkeep.tracking.models import get_model

    text = str(ref or "")
    if text.startswith("runs:/"):
        run_id, _, name = text[len("runs:/"):].partition("/")
        with store.db.connect() as conn:
            found = conn.execute(select(models.c.id).where(models.c.run_id == run_id, models.c.name == name.strip("/"),
                                                           models.c.id.startswith(ID_PREFIX))
                                 .order_by(models.c.creation_time.desc())).scalar()
        if found is None:
            raise NotFoundError(f"Run {run_id!r} logged no model named {name!r}.")
        return get_model(store.db, found)
    model_id = text.removeprefix("models:/")
    if model_id.startswith(ID_PREFIX):
        return get_model(store.db, model_id)
    return get_model(store.db, store.registry.resolve(text).model_id)


def artifact_location(run_id: str, model_id: str) -> str:
    return f"{ARTIFACTS_SCHEME}{RUNS_ROOT}/{run_id}/{model_folder(model_id)}"


def finalize(store: Store, model_id: str, status: str) -> dict[str, Any]:
    """FinalizeLoggedModel: READY or UPLOAD_FAILED; a READY scikit-learn model becomes loadable by mlkeep."""
    if status not in STATUSES:
        raise InvalidInputError(f"A logged model's status is one of {', '.join(sorted(STATUSES))}, not {status!r}.")
    row, _ = _read(store, model_id)
    pickled = _sklearn_pickle(store, row.run_id, model_id) if status == READY else None

    def change(state: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        state["status"] = status
        if pickled is not None:
            doc["flavor"] = "sklearn"
            doc["framework"] = "sklearn"
        return {"object": pickled, "learning_algorithm": "mlflow.sklearn"} if pickled else {}

    _update(store, model_id, change)
    return get(store, model_id)


def set_tags(store: Store, model_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
    _update(store, model_id, lambda state, doc: state["tags"].update(tags))
    return get(store, model_id)


def delete_tag(store: Store, model_id: str, key: str) -> None:
    def drop(state: dict[str, Any], doc: dict[str, Any]) -> None:
        if key not in state["tags"]:
            raise NotFoundError(f"Logged model {model_id} has no tag {key!r}.")
        del state["tags"][key]

    _update(store, model_id, drop)


def log_params(store: Store, model_id: str, params: Mapping[str, str]) -> None:
    _update(store, model_id, lambda state, doc: state["params"].update(params))


def link_metrics(store: Store, model_id: str, points: Sequence[tuple[str, float, int, int]]) -> None:
    """Record (key, value, step, timestamp) points MLflow links to a model."""
    entries = [{"key": k, "value": number(v), "step": s, "timestamp": t, "model_id": model_id}
               for k, v, s, t in points]
    _update(store, model_id, lambda state, doc: state["metrics"].extend(entries))


def search(store: Store, experiment_ids: Sequence[str], filter_string: str | None = None) -> list[dict[str, Any]]:
    """The LoggedModels of these experiments (all when none are named) matching `name = '...'` and/or
    `source_run_id = '...'` (AND), newest first."""
    from mlkeep.compat.mlflow.tracking import experiment

    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", (filter_string or "").strip(), flags=re.I):
        if clause:
            m = _SEARCH_CLAUSE.match(clause)
            if m is None:
                raise UnsupportedError("mlkeep's MLflow API filters logged models by name = and source_run_id =, "
                                       f"not {clause!r}.")
            wanted[m["field"].lower()] = m["value"]
    experiment_set = {experiment(store, e).id for e in experiment_ids}
    query = select(models.c.id, models.c.document).where(models.c.id.startswith(ID_PREFIX))
    if "name" in wanted:
        query = query.where(models.c.name == wanted["name"])
    if "source_run_id" in wanted:
        query = query.where(models.c.run_id == wanted["source_run_id"])
    with store.db.connect() as conn:
        rows = conn.execute(query.order_by(models.c.creation_time.desc())).all()
    return [get(store, i) for i, doc in rows
            if not experiment_set or json.loads(doc).get("mlflow", {}).get("experiment_id") in experiment_set]


def of_run(store: Store, run_id: str) -> list[str]:
    """Ids of the LoggedModels a run produced."""
    with store.db.connect() as conn:
        return of_runs(conn, ids_value(conn.dialect.name, [run_id])).get(run_id, [])


def _of_runs(dialect: str) -> tuple[Executable, Sequence[str]]:
    """The logged models of a page of runs (a statement builder for `id_lists.fetch`)."""
    return (select(models.c.run_id, models.c.id)
            .where(among(models.c.run_id, dialect), models.c.id.like(literal_column(f"'{ID_PREFIX}%'")))
            .order_by(models.c.creation_time, models.c.id)), ["ids"]


def of_runs(conn: Connection, ids: Any) -> dict[str, list[str]]:
    """Ids of the LoggedModels each of the runs `ids` (an `id_lists.ids_value`) produced (runs without any are
    absent), oldest first, in one query."""
    out: dict[str, list[str]] = {}
    for run_id, model_id in fetch(conn, _of_runs, ids):
        out.setdefault(run_id, []).append(model_id)
    return out


def _read(store: Store, model_id: str) -> tuple[Any, dict[str, Any]]:
    with store.db.connect() as conn:
        row = conn.execute(select(models).where(models.c.id == model_id)).first()
    doc = json.loads(row.document) if row is not None else {}
    if row is None or "mlflow" not in doc:
        raise NotFoundError(f"No logged model with id {model_id!r}.")
    return row, doc


def _update(store: Store, model_id: str, change: Callable[[dict[str, Any], dict[str, Any]], Any]) -> None:
    """Read-modify-write of the model's MLflow state in one transaction; `change` may return column values."""
    with store.db.begin() as conn:
        row = conn.execute(select(models.c.document).where(models.c.id == model_id)).first()
        doc = json.loads(row.document) if row is not None else {}
        if "mlflow" not in doc:
            raise NotFoundError(f"No logged model with id {model_id!r}.")
        columns = change(doc["mlflow"], doc) or {}
        doc["mlflow"]["last_updated"] = now_ms()
        conn.execute(models.update().where(models.c.id == model_id)
                     .values(document=json.dumps(doc, sort_keys=True), **columns))


def _sklearn_pickle(store: Store, run_id: str, model_id: str) -> str | None:
    """The object id of the model's pickle when its MLmodel is scikit-learn's with (cloud)pickle, else None."""
    folder = model_folder(model_id)
    with store.db.connect() as conn:
        files = dict(conn.execute(select(artifacts.c.path, artifacts.c.object)
                                  .where(artifacts.c.run_id == run_id,
                                         artifacts.c.path.startswith(folder + "/", autoescape=True))).all())
    mlmodel = files.get(f"{folder}/MLmodel")
    if mlmodel is None:
        return None
    match = _SKLEARN_PICKLE.search(store.objects.get_bytes(mlmodel).decode("utf-8", "replace"))
    if match is None:
        return None
    fields = dict(re.findall(r"^\s{4}(\w+):\s*(\S+)\s*$", match["body"], re.M))
    if fields.get("serialization_format", "cloudpickle") not in ("cloudpickle", "pickle"):
        return None
    return files.get(f"{folder}/{fields.get('pickled_model', 'model.pkl')}")

