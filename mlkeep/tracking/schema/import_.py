"""Import: parse documents into a plan, check it whole, then write it in the caller's one transaction."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mlkeep.errors import ConflictError, NotFoundError, SchemaValidationError
from mlkeep.ids import now_ms
from mlkeep.metadata.tables import datasets, evaluations, models, params, predictions
from mlkeep.metadata.tables import runs as runs_table
from mlkeep.metadata.tables import tags as tags_table
from mlkeep.tracking.datasets import insert_dataset
from mlkeep.tracking.entities import Dataset, Evaluation, Hyperparameter, Model, Prediction, Run, RunStatus, Transform
from mlkeep.tracking.experiments import DEFAULT_EXPERIMENT, ensure_experiment
from mlkeep.tracking.lineage import add_links
from mlkeep.tracking.metrics import write_points
from mlkeep.tracking.models import insert_model
from mlkeep.tracking.predictions import insert_evaluation, insert_prediction
from mlkeep.tracking.schema.documents import (
    EXTRA,
    MODELS_PREFIX,
    OBJECTS_PREFIX,
    Document,
    SchemaChecker,
    read_documents,
)

if TYPE_CHECKING:
    from mlkeep.store import Store


class _Invalid(Exception):
    """A field of a document mlkeep cannot read; becomes SchemaValidationError with the file name."""


@dataclass
class _RunRecord:
    run: Run
    points: list[tuple[str, float, int, int]] = field(default_factory=list)
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (dataset id, relation)
    for_model: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """Everything to write, parsed and checked before the transaction starts."""

    datasets: list[tuple[Dataset, dict[str, Any]]] = field(default_factory=list)
    runs: list[_RunRecord] = field(default_factory=list)
    models: list[tuple[Model, dict[str, Any]]] = field(default_factory=list)
    predictions: list[tuple[Prediction, dict[str, Any]]] = field(default_factory=list)
    evaluations: list[tuple[Evaluation, dict[str, Any]]] = field(default_factory=list)


def import_documents(
    store: Store, folder: str | os.PathLike[str], *, schema: str | os.PathLike[str] | None = None
) -> dict[str, int]:
    """Read documents written by `export_documents` (or another tool of the schema) into `store`.

    Returns per kind how many entities were added, plus `already_present`
    (ids the store had: left alone). Every document is read and checked
    first and all are written in one transaction, so a bad document raises
    SchemaValidationError (a link to an unknown id NotFoundError, a dataset
    whose content is already stored under another id ConflictError) and
    nothing is imported.
    """
    checker = SchemaChecker.find(schema)
    docs = read_documents(folder)
    if checker is not None:
        for doc in docs:
            checker.check(doc)
    plan = _plan(docs)
    with store.db.begin() as conn:
        return _apply(conn, plan)


def _plan(docs: list[Document]) -> _Plan:
    plan = _Plan()
    seen: dict[tuple[str, str], str] = {}
    parsers: dict[str, Callable[[Document, _Plan], None]] = {
        "datasets": _parse_dataset, "training_runs": _parse_run, "mlkeep/training_runs": _parse_run,
        "models": _parse_model, "mlkeep/models": _parse_model,
        "predictions": _parse_prediction, "evaluations": _parse_evaluation,
    }
    for doc in docs:
        key = (doc.folder.rsplit("/", 1)[-1], doc.id)
        if key in seen:
            raise SchemaValidationError(f"{doc.path}: /id: {doc.id!r} is also the id of {seen[key]}.")
        seen[key] = doc.path
        try:
            _check_shapes(doc.body)
            parsers[doc.folder](doc, plan)
        except _Invalid as exc:
            raise SchemaValidationError(f"{doc.path}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise SchemaValidationError(f"{doc.path}: unreadable field ({type(exc).__name__}: {exc}).") from None
    return plan


# Lists mlkeep reads, with the string fields each item must have: checked even without the
# schema at hand, so a hand-edited document fails with its path rather than being half-read.
_ITEM_STRINGS: dict[str, tuple[str, ...]] = {
    "schema": ("name", "typing"), "input": ("name", "typing"), "hyperparameters": ("name", "value", "typing"),
    "dataStatistics": ("name", "value", "typing"), "histograms": ("column",), "transforms": ("id", "name"),
    "scores": ("metric", "value", "typing"),
}


def _check_shapes(body: Mapping[str, Any]) -> None:
    for key, names in _ITEM_STRINGS.items():
        for i, item in enumerate(_get(body, key, list) or []):
            _check_item(item, f"/{key}/{i}", names)
    for i, item in enumerate(_get(body, "scoresOverTime", list) or []):
        _check_item(item, f"/scoresOverTime/{i}", ())
        _check_item(item.get("score"), f"/scoresOverTime/{i}/score", _ITEM_STRINGS["scores"])
        if not isinstance(item.get("timestamp"), int) or isinstance(item.get("timestamp"), bool):
            raise _Invalid(f"/scoresOverTime/{i}/timestamp: {item.get('timestamp')!r} is not of type 'integer'")


def _check_item(item: Any, where: str, names: tuple[str, ...]) -> None:
    if not isinstance(item, dict):
        raise _Invalid(f"{where}: {item!r} is not of type 'object'")
    for name in names:
        if not isinstance(item.get(name), str):
            raise _Invalid(f"{where}/{name}: {item.get(name)!r} is not of type 'string'")


# -- reading fields ----------------------------------------------------------------------------------


def _get(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
    if key not in body:
        if required:
            raise _Invalid(f"/: {key!r} is a required property")
        return None
    value = body[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _Invalid(f"/{key}: {value!r} is not of the expected type")
    return value


def _text(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value: str | None = _get(body, key, str, required=required)
    if value is not None and not value:
        raise _Invalid(f"/{key}: should be non-empty")
    return value


def _time(body: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    value: int | None = _get(body, key, int, required=required)
    if value is not None and value < 0:
        raise _Invalid(f"/{key}: {value} is less than the minimum of 0")
    return value


def _annotations(body: Mapping[str, Any]) -> dict[str, str]:
    notes = _get(body, "annotations", dict) or {}
    bad = [k for k, v in notes.items() if not isinstance(v, str)]
    if bad:
        raise _Invalid(f"/annotations/{bad[0]}: {notes[bad[0]]!r} is not of type 'string'")
    return dict(notes)


def _typed_columns(body: Mapping[str, Any], key: str) -> list[dict[str, str]]:
    return [{"name": str(c["name"]), "typing": str(c["typing"])} for c in _get(body, key, list) or []]


def _extra(body: Mapping[str, Any], known: set[str], notes: Mapping[str, str]) -> dict[str, Any]:
    """Schema fields and annotations mlkeep does not model, kept so they are exported again."""
    extra: dict[str, Any] = {}
    fields = {k: v for k, v in body.items() if k not in known}
    others = {k: v for k, v in notes.items() if not k.startswith("mlkeep.")}
    if fields:
        extra["fields"] = fields
    if others:
        extra["annotations"] = others
    return {EXTRA: extra} if extra else {}


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _int(notes: Mapping[str, str], key: str, default: int = 0) -> int:
    try:
        return int(notes[key]) if key in notes else default
    except ValueError:
        raise _Invalid(f"/annotations/{key}: {notes[key]!r} is not an integer") from None


def _typed_value(text: str, typing: str) -> Any:
    if typing in ("LONG", "INT"):
        return int(text)
    if typing in ("DOUBLE", "FLOAT"):
        return float(text)
    if typing == "BOOLEAN":
        return text == "true"
    return _number(text)


def _number(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


# -- datasets --------------------------------------------------------------------------------------

_DATASET_FIELDS = {"id", "name", "creationTime", "location", "version", "derivedFromDatasetId", "schema",
                   "dataStatistics", "histograms", "annotations"}


def _parse_dataset(doc: Document, plan: _Plan) -> None:
    b, notes = doc.body, _annotations(doc.body)
    fingerprint = notes.get("mlkeep.fingerprint") or hashlib.sha256(f"imported:{doc.id}".encode()).hexdigest()
    dataset = Dataset(
        id=doc.id, name=_text(b, "name", required=True) or "", fingerprint=fingerprint,
        version=_text(b, "version") or "1", location=_text(b, "location", required=True) or "",
        creation_time=_or(_time(b, "creationTime"), now_ms()), derived_from_id=_text(b, "derivedFromDatasetId"),
        num_rows=_int(notes, "mlkeep.numRows"), columns=_typed_columns(b, "schema"),
        statistics=_read_statistics(_get(b, "dataStatistics", list) or []),
        histograms=_read_histograms(_get(b, "histograms", list) or []), targets=notes.get("mlkeep.targets"),
    )
    document = {
        "kind": notes.get("mlkeep.kind"), "format": notes.get("mlkeep.format"), "object": notes.get("mlkeep.object"),
        "num_rows": dataset.num_rows, "columns": dataset.columns, "statistics": dataset.statistics,
        "histograms": dataset.histograms, "targets": dataset.targets, **_extra(b, _DATASET_FIELDS, notes),
    }
    plan.datasets.append((dataset, document))


def _read_statistics(items: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in items:
        column = "\x1f".join(str(c) for c in s.get("columns", []))
        out.setdefault(column, {})[str(s["name"])] = _typed_value(str(s["value"]), str(s["typing"]))
    return out


def _read_histograms(items: list[Mapping[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for h in items:
        counts = [_number(str(v)) for v in h["bucketValues"]]
        labels = [str(label) for label in h.get("bucketLabels", [])]
        if h.get("name") == "bins" and labels:
            bounds = [label[1:-1].split(", ") for label in labels]
            out[str(h["column"])] = {"edges": [float(b[0]) for b in bounds] + [float(bounds[-1][1])], "counts": counts}
        else:
            out[str(h["column"])] = {"labels": labels, "counts": counts}
    return out


# -- runs ------------------------------------------------------------------------------------------------


def _parse_run(doc: Document, plan: _Plan) -> None:
    b, notes = doc.body, _annotations(doc.body)
    created = _time(b, "creationTime", required=True)
    model_id = _text(b, "forModelId", required=doc.folder == "training_runs")
    status = notes.get("mlkeep.status", RunStatus.FINISHED)
    if status not in RunStatus.ALL:
        raise _Invalid(f"/annotations/mlkeep.status: {status!r} is not one of {', '.join(RunStatus.ALL)}")
    params_ = {str(p["name"]): str(p["value"]) for p in _get(b, "hyperparameters", list) or []}
    params_.update({k[6:]: "" for k in notes if k.startswith("param.")})
    env = _get(b, "environment", dict) or {}
    run = Run(
        id=doc.id, experiment_id="", experiment=notes.get("mlkeep.experiment", DEFAULT_EXPERIMENT),
        name=_text(b, "name") or f"run-{doc.id[:8]}", status=status,
        start_time=_or(_time(b, "startTime"), created or 0), end_time=_time(b, "endTime"),
        parent_run_id=notes.get("mlkeep.parentRunId"), creator=_text(b, "creator"), failure=notes.get("mlkeep.failure"),
        params=params_, tags={k[4:]: v for k, v in notes.items() if k.startswith("tag.")},
        environment={str(k): str(v) for k, v in env.items()},
    )
    others = [m for m in notes.get("mlkeep.otherModelIds", "").split(",") if m]
    plan.runs.append(_RunRecord(
        run=run, points=[_point(s) for s in _get(b, "scoresOverTime", list) or []],
        inputs=[(k[6:], rel) for k, v in notes.items() if k.startswith("input.") for rel in v.split(",") if rel],
        for_model=([model_id] if model_id else []) + others,
    ))


def _point(s: Mapping[str, Any]) -> tuple[str, float, int, int]:
    score = s["score"]
    return str(score["metric"]), float(score["value"]), int(s.get("epoch", 0)), int(s["timestamp"])


# -- models ---------------------------------------------------------------------------------------------

_MODEL_FIELDS = {"id", "name", "creationTime", "learningAlgorithm", "trainedOnDatasetId", "fromFramework",
                 "fromFrameworkVersion", "hyperparameters", "transforms", "input", "annotations"}


def _parse_model(doc: Document, plan: _Plan) -> None:
    b, notes = doc.body, _annotations(doc.body)
    empty = [tuple(e) for e in json.loads(notes.get("mlkeep.emptyParameters", "[]"))]
    known = _MODEL_FIELDS | ({"location"} if b.get("location") == MODELS_PREFIX + doc.id else set())
    model = Model(
        id=doc.id, name=_text(b, "name", required=True) or "",
        learning_algorithm=_text(b, "learningAlgorithm", required=True) or "",
        creation_time=_time(b, "creationTime", required=True) or 0, run_id=notes.get("mlkeep.runId"),
        trained_on_dataset_id=_text(b, "trainedOnDatasetId", required=doc.folder == "models"),
        framework=_text(b, "fromFramework"), framework_version=_text(b, "fromFrameworkVersion"),
        object=notes.get("mlkeep.object"),
        hyperparameters=[_read_parameter(p) for p in _get(b, "hyperparameters", list) or []]
        + [Hyperparameter(name=n, value="", typing="STRING") for scope, n in empty if scope == ""],
        transforms=[_read_transform(t, empty) for t in _get(b, "transforms", list) or []],
        input=_typed_columns(b, "input"), flavor=notes.get("mlkeep.flavor"),
    )
    plan.models.append((model, _extra(b, known, notes)))


def _read_parameter(p: Mapping[str, Any]) -> Hyperparameter:
    non_default = p.get("nonDefault")
    return Hyperparameter(
        name=str(p["name"]), value=str(p["value"]), typing=str(p["typing"]),
        non_default=bool(non_default) if non_default is not None else None,
        tracked_by_user=bool(p.get("trackedByUser", False)),
    )


def _read_transform(t: Mapping[str, Any], empty: list[tuple[Any, ...]]) -> Transform:
    tid = str(t["id"])
    parameters = {str(p["name"]): str(p["value"]) for p in t.get("parameters", [])}
    parameters.update({n: "" for scope, n in empty if scope == tid})
    return Transform(
        id=tid, name=str(t["name"]), framework=t.get("fromFramework"), framework_version=t.get("fromFrameworkVersion"),
        parameters=parameters, input_transforms=[str(i) for i in t.get("inputTransforms", [])],
        input=_typed_columns(t, "input"), output=_typed_columns(t, "output"),
    )


# -- predictions and evaluations ------------------------------------------------------------------------

_PREDICTION_FIELDS = {"id", "name", "creationTime", "computedByModelId", "computedOnDatasetId", "schema", "annotations"}
_EVALUATION_FIELDS = {"id", "name", "creationTime", "computedByModelId", "computedOnDatasetId", "forPredictionId",
                      "scores", "confusionMatrix", "annotations"}


def _parse_prediction(doc: Document, plan: _Plan) -> None:
    b, notes = doc.body, _annotations(doc.body)
    oid = notes.get("mlkeep.object")
    known = _PREDICTION_FIELDS | ({"location"} if oid and b.get("location") == OBJECTS_PREFIX + oid else set())
    prediction = Prediction(
        id=doc.id, model_id=_text(b, "computedByModelId", required=True) or "",
        dataset_id=_text(b, "computedOnDatasetId", required=True) or "",
        creation_time=_time(b, "creationTime", required=True) or 0, name=_text(b, "name"),
        run_id=notes.get("mlkeep.runId"), object=oid, num_rows=_int(notes, "mlkeep.numRows"),
        columns=_typed_columns(b, "schema"),
    )
    plan.predictions.append((prediction, _extra(b, known, notes)))


def _parse_evaluation(doc: Document, plan: _Plan) -> None:
    b, notes = doc.body, _annotations(doc.body)
    matrix, labels = _read_confusion(_get(b, "confusionMatrix", dict))
    evaluation = Evaluation(
        id=doc.id, model_id=_text(b, "computedByModelId", required=True) or "",
        dataset_id=_text(b, "computedOnDatasetId", required=True) or "",
        creation_time=_time(b, "creationTime", required=True) or 0, name=_text(b, "name"),
        run_id=notes.get("mlkeep.runId"), prediction_id=_text(b, "forPredictionId"),
        scores={str(s["metric"]): float(s["value"]) for s in _get(b, "scores", list) or []},
        confusion_matrix=matrix, class_labels=labels,
    )
    plan.evaluations.append((evaluation, _extra(b, _EVALUATION_FIELDS, notes)))


def _read_confusion(cm: Mapping[str, Any] | None) -> tuple[list[list[int]] | None, list[str] | None]:
    """Column-major values back to rows of columns; the count must be numberOfClasses squared."""
    if cm is None:
        return None, None
    n, values = int(cm["numberOfClasses"]), [int(v) for v in cm["values"]]
    if n < 1 or len(values) != n * n:
        raise _Invalid(f"/confusionMatrix/values: {len(values)} values for {n} classes (need {n * n})")
    labels = [str(label) for label in cm["classLabels"]] if "classLabels" in cm else None
    return [[values[j * n + i] for j in range(n)] for i in range(n)], labels


# -- writing ------------------------------------------------------------------------------------------


def _apply(conn: Connection, plan: _Plan) -> dict[str, int]:
    """Insert what the store lacks, parents before children, in the caller's transaction."""
    present = _present(conn, plan)
    fresh = _fresh(plan, present)
    _link_models_to_runs(fresh)
    _check_references(conn, plan)
    _check_fingerprints(conn, fresh.datasets)
    for record in _parents_first(fresh.runs, lambda r: r.run.id, lambda r: r.run.parent_run_id):
        _insert_run(conn, record)
    for dataset, document in _parents_first(fresh.datasets, lambda d: d[0].id, lambda d: d[0].derived_from_id):
        insert_dataset(conn, dataset, document)
    for model, extra in fresh.models:
        insert_model(conn, model, extra)
    for prediction, extra in fresh.predictions:
        insert_prediction(conn, prediction, extra)
    for evaluation, extra in fresh.evaluations:
        insert_evaluation(conn, evaluation, extra)
    for record in fresh.runs:
        add_links(conn, [(ds, "dataset", record.run.id, "run", rel) for ds, rel in record.inputs])
    counts = {"datasets": len(fresh.datasets), "models": len(fresh.models), "training_runs": len(fresh.runs),
              "predictions": len(fresh.predictions), "evaluations": len(fresh.evaluations)}
    counts["already_present"] = sum(len(ids) for ids in present.values())
    return counts


_TABLES = {"datasets": datasets, "runs": runs_table, "models": models, "predictions": predictions,
           "evaluations": evaluations}


def _ids(plan: _Plan) -> dict[str, list[str]]:
    return {
        "datasets": [d.id for d, _ in plan.datasets], "runs": [r.run.id for r in plan.runs],
        "models": [m.id for m, _ in plan.models], "predictions": [p.id for p, _ in plan.predictions],
        "evaluations": [e.id for e, _ in plan.evaluations],
    }


def _present(conn: Connection, plan: _Plan) -> dict[str, set[str]]:
    """Per table, the ids of the plan the store already has (left alone: import is idempotent)."""
    out: dict[str, set[str]] = {}
    for name, ids in _ids(plan).items():
        table = _TABLES[name]
        out[name] = set(conn.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars()) if ids else set()
    return out


def _fresh(plan: _Plan, present: Mapping[str, set[str]]) -> _Plan:
    return _Plan(
        datasets=[d for d in plan.datasets if d[0].id not in present["datasets"]],
        runs=[r for r in plan.runs if r.run.id not in present["runs"]],
        models=[m for m in plan.models if m[0].id not in present["models"]],
        predictions=[p for p in plan.predictions if p[0].id not in present["predictions"]],
        evaluations=[e for e in plan.evaluations if e[0].id not in present["evaluations"]],
    )


def _link_models_to_runs(plan: _Plan) -> None:
    """A model without `mlkeep.runId` (another tool's document) belongs to the run whose forModelId names it."""
    owner = {m: r.run.id for r in plan.runs for m in r.for_model}
    plan.models[:] = [(replace(m, run_id=m.run_id or owner.get(m.id)), extra) for m, extra in plan.models]


def _check_references(conn: Connection, plan: _Plan) -> None:
    """Every id a document links to must be in the folder or the store; else NotFoundError, nothing written."""
    ids = {name: set(found) for name, found in _ids(plan).items()}
    refs: list[tuple[str, str | None, str, str]] = []  # (table, id, document, field)
    refs += [("datasets", d.derived_from_id, f"datasets/{d.id}", "derivedFromDatasetId") for d, _ in plan.datasets]
    refs += [("runs", r.run.parent_run_id, f"training_runs/{r.run.id}", "mlkeep.parentRunId") for r in plan.runs]
    for m, _ in plan.models:
        refs += [("datasets", m.trained_on_dataset_id, f"models/{m.id}", "trainedOnDatasetId"),
                 ("runs", m.run_id, f"models/{m.id}", "mlkeep.runId")]
    for p, _ in plan.predictions:
        refs += [("models", p.model_id, f"predictions/{p.id}", "computedByModelId"),
                 ("datasets", p.dataset_id, f"predictions/{p.id}", "computedOnDatasetId"),
                 ("runs", p.run_id, f"predictions/{p.id}", "mlkeep.runId")]
    for e, _ in plan.evaluations:
        refs += [("models", e.model_id, f"evaluations/{e.id}", "computedByModelId"),
                 ("datasets", e.dataset_id, f"evaluations/{e.id}", "computedOnDatasetId"),
                 ("predictions", e.prediction_id, f"evaluations/{e.id}", "forPredictionId"),
                 ("runs", e.run_id, f"evaluations/{e.id}", "mlkeep.runId")]
    for table, ref, where, name in refs:
        if ref is None or ref in ids[table]:
            continue
        if conn.execute(select(_TABLES[table].c.id).where(_TABLES[table].c.id == ref)).first() is None:
            raise NotFoundError(f"{where}.json: {name} {ref!r} names no {table[:-1]} in the folder or the store.")
        ids[table].add(ref)


def _check_fingerprints(conn: Connection, fresh: list[tuple[Dataset, dict[str, Any]]]) -> None:
    """The same content under another id cannot be imported: ids are kept, and content is one Dataset."""
    by_print = {d.fingerprint: d.id for d, _ in fresh}
    if len(by_print) < len(fresh):
        raise ConflictError("Two imported datasets have the same mlkeep.fingerprint; keep one of them.")
    if not by_print:
        return
    rows = conn.execute(select(datasets.c.id, datasets.c.fingerprint).where(datasets.c.fingerprint.in_(list(by_print))))
    for row in rows:
        raise ConflictError(
            f"datasets/{by_print[row.fingerprint]}.json describes the same content as dataset {row.id} "
            "already in the store; ids are kept on import, so one content cannot take a second id."
        )


def _parents_first(items: list[Any], key: Callable[[Any], str], parent: Callable[[Any], str | None]) -> list[Any]:
    """`items` ordered so each comes after its parent (the foreign keys require it)."""
    by_id = {key(i): i for i in items}
    done: set[str] = set()
    out: list[Any] = []

    def visit(item: Any, path: set[str]) -> None:
        k = key(item)
        if k in done:
            return
        if k in path:
            raise SchemaValidationError(f"{k}: its parent links form a cycle.")
        p = parent(item)
        if p in by_id:
            visit(by_id[p], path | {k})
        done.add(k)
        out.append(item)

    for item in items:
        visit(item, set())
    return out


def _insert_run(conn: Connection, record: _RunRecord) -> None:
    """A run with its params, tags and metric points, keeping its id (runs.py has no such insert)."""
    run = record.run
    conn.execute(runs_table.insert(), [{
        "id": run.id, "experiment_id": ensure_experiment(conn, run.experiment), "name": run.name,
        "status": run.status, "start_time": run.start_time, "end_time": run.end_time,
        "parent_run_id": run.parent_run_id, "creator": run.creator, "failure": run.failure,
        "environment": json.dumps(run.environment, sort_keys=True),
    }])
    if run.params:
        conn.execute(params.insert(), [{"run_id": run.id, "key": k, "value": v} for k, v in run.params.items()])
    if run.tags:
        conn.execute(tags_table.insert(), [{"run_id": run.id, "key": k, "value": v} for k, v in run.tags.items()])
    write_points(conn, run.id, record.points)
