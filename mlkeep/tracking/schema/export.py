"""Export: every entity of a store as an ml-experiments-schema document (the mapping is the package docstring)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mlkeep.metadata.tables import datasets, evaluations, links, metrics, models, predictions
from mlkeep.metadata.tables import runs as runs_table
from mlkeep.tracking.entities import Hyperparameter, Model, Run, Transform
from mlkeep.tracking.schema.documents import (
    COUNT_NAMES,
    EXTRA,
    FOLDERS,
    MODELS_PREFIX,
    OBJECTS_PREFIX,
    Document,
    SchemaChecker,
    render,
    write_atomically,
)

if TYPE_CHECKING:
    from mlkeep.store import Store

_STAT_ORDER = ("count", "nulls", "distinct", "mean", "std", "min", "max", "bytes")


def export_documents(
    store: Store, folder: str | os.PathLike[str], *, schema: str | os.PathLike[str] | None = None
) -> dict[str, int]:
    """Write every entity of `store` as a document under `folder`; returns counts per folder kind.

    Every document is built and validated (when a schema is available)
    before any is written, so a store that cannot be exported leaves
    `folder` untouched; raises SchemaValidationError naming the document.
    """
    checker = SchemaChecker.find(schema)
    docs = collect_documents(store)
    if checker is not None:
        for doc in docs:
            checker.check(doc)
    root = Path(folder)
    for doc in docs:
        write_atomically(root / doc.path, render(doc.body))
        _remove_moved(root, doc)
    return _counts(docs)


def _remove_moved(root: Path, doc: Document) -> None:
    """Drop this entity's document from an earlier export into the other folder of its kind.

    A RUNNING run exported before it logged its first model went to
    `mlkeep/training_runs/`; left there, the folder would hold the run twice.
    """
    twins = {"training_runs": "mlkeep/training_runs", "models": "mlkeep/models"}
    twins.update({v: k for k, v in twins.items()})
    if doc.folder in twins:
        (root / twins[doc.folder] / f"{doc.id}.json").unlink(missing_ok=True)


def collect_documents(store: Store) -> list[Document]:
    """Every entity of the store as a document, in import order."""
    with store.db.connect() as conn:
        produced = _models_by_run(conn)
        docs = [*_dataset_documents(conn)]
        docs += _run_documents(store, conn, produced)
        docs += _model_documents(conn)
        docs += _prediction_documents(conn)
        docs += _evaluation_documents(conn)
    return docs


def _counts(docs: Iterable[Document]) -> dict[str, int]:
    out = {COUNT_NAMES.get(f, f): 0 for f in FOLDERS}
    for doc in docs:
        out[COUNT_NAMES.get(doc.folder, doc.folder)] += 1
    return out


def _models_by_run(conn: Connection) -> dict[str, list[str]]:
    rows = conn.execute(
        select(models.c.id, models.c.run_id).where(models.c.run_id.is_not(None))
        .order_by(models.c.creation_time, models.c.id)
    ).all()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r.run_id, []).append(r.id)
    return out


def _base(entity_id: str, name: str | None, creation_time: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": entity_id}
    if name:
        body["name"] = name
    if creation_time is not None:
        body["creationTime"] = creation_time
    return body


def _finish(body: dict[str, Any], annotations: dict[str, str], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge back schema fields and annotations mlkeep kept but does not model (from imported documents)."""
    extra = extra or {}
    annotations = {**extra.get("annotations", {}), **annotations}
    if annotations:
        body["annotations"] = annotations
    body.update(extra.get("fields", {}))
    return body


def _columns(columns: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [{"name": str(c["name"]), "typing": str(c["typing"])} for c in columns]


def _put(annotations: dict[str, str], key: str, value: Any) -> None:
    if value is not None:
        annotations[key] = str(value)


# -- datasets ------------------------------------------------------------------------------------


def _dataset_documents(conn: Connection) -> Iterator[Document]:
    for row in conn.execute(select(datasets).order_by(datasets.c.creation_time, datasets.c.id)):
        yield Document("datasets", row.id, _dataset_body(row, json.loads(row.document)))


def _dataset_body(row: Any, doc: dict[str, Any]) -> dict[str, Any]:
    body = _base(row.id, row.name, row.creation_time)
    body.update(location=row.location, version=row.version)
    if row.derived_from_id:
        body["derivedFromDatasetId"] = row.derived_from_id
    columns = doc.get("columns") or []
    if columns:
        body["schema"] = _columns(columns)
    order = [c["name"] for c in columns]
    stats = doc.get("statistics") or {}
    if stats:
        body["dataStatistics"] = [s for col in _ordered(stats, order) for s in _statistics(col, stats[col])]
    hists = doc.get("histograms") or {}
    histograms = [h for col in _ordered(hists, order) if (h := _histogram(col, hists[col])) is not None]
    if histograms:
        body["histograms"] = histograms
    annotations = {"mlkeep.fingerprint": row.fingerprint}
    for key, name in (("num_rows", "numRows"), ("targets", "targets"), ("kind", "kind"), ("format", "format"),
                      ("object", "object")):
        _put(annotations, f"mlkeep.{name}", doc.get(key))
    return _finish(body, annotations, doc.get(EXTRA))


def _ordered(by_column: Mapping[str, Any], order: list[str]) -> list[str]:
    """Columns in schema order, then any others sorted: stable whatever order the dict came in."""
    known = [c for c in order if c in by_column]
    return known + sorted(c for c in by_column if c not in set(order))


def _statistics(column: str, stats: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    rank = {name: i for i, name in enumerate(_STAT_ORDER)}
    for name in sorted(stats, key=lambda n: (rank.get(n, len(rank)), n)):
        text, typing = _typed_text(stats[name])
        yield {"name": name, "columns": column.split("\x1f") if column else [], "value": text, "typing": typing}


def _typed_text(value: Any) -> tuple[str, str]:
    """A statistic's value as the schema's (string, TypeHint); `_typed_value` reverses it."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "BOOLEAN"
    if isinstance(value, int):
        return str(value), "LONG"
    if isinstance(value, float):
        return repr(value), "DOUBLE"
    return str(value), "STRING"


def _histogram(column: str, hist: Mapping[str, Any]) -> dict[str, Any] | None:
    counts = [str(c) for c in hist.get("counts", [])]
    edges = hist.get("edges")
    if edges and len(edges) == len(counts) + 1:
        labels = [f"[{float(lo)!r}, {float(hi)!r})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        labels[-1] = labels[-1][:-1] + "]"  # numpy's last bin includes its right edge
        return {"column": column, "name": "bins", "typing": "LONG", "bucketValues": counts, "bucketLabels": labels}
    if "labels" in hist:
        return {"column": column, "name": "top values", "typing": "LONG", "bucketValues": counts,
                "bucketLabels": [str(label) for label in hist["labels"]]}
    return None


# -- runs --------------------------------------------------------------------------------------------


def _run_documents(store: Store, conn: Connection, produced: Mapping[str, list[str]]) -> Iterator[Document]:
    from mlkeep.tracking.runs import get_runs

    ids = list(conn.execute(select(runs_table.c.id).order_by(runs_table.c.start_time, runs_table.c.id)).scalars())
    inputs = _run_inputs(conn)
    for run in get_runs(store.db, ids):
        made = produced.get(run.id, [])
        body = _run_body(run, made, _history(conn, run.id), inputs.get(run.id, {}))
        yield Document("training_runs" if made else "mlkeep/training_runs", run.id, body)


def _run_inputs(conn: Connection) -> dict[str, dict[str, list[str]]]:
    """run id -> dataset id -> relations, from the lineage links into runs."""
    out: dict[str, dict[str, list[str]]] = {}
    query = select(links).where(links.c.dst_kind == "run", links.c.src_kind == "dataset")
    for r in conn.execute(query.order_by(links.c.dst_id, links.c.src_id, links.c.relation)):
        out.setdefault(r.dst_id, {}).setdefault(r.src_id, []).append(r.relation)
    return out


def _history(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    query = (
        select(metrics.c.key, metrics.c.value, metrics.c.step, metrics.c.timestamp)
        .where(metrics.c.run_id == run_id)
        .order_by(metrics.c.key, metrics.c.step, metrics.c.timestamp, metrics.c.seq)
    )
    return [
        {"epoch": r.step, "timestamp": r.timestamp,
         "score": {"metric": r.key, "value": repr(float("nan") if r.value is None else float(r.value)),
                   "typing": "DOUBLE"}}
        for r in conn.execute(query)
    ]


def _run_body(
    run: Run, made: list[str], history: list[dict[str, Any]], inputs: Mapping[str, list[str]]
) -> dict[str, Any]:
    body = _base(run.id, run.name, run.start_time)
    body["startTime"] = run.start_time
    if run.end_time is not None:
        body["endTime"] = run.end_time
    if made:
        body["forModelId"] = made[0]
    if run.creator:
        body["creator"] = run.creator
    hyper = [
        {"name": k, "value": v, "typing": "STRING", "trackedByUser": True} for k, v in sorted(run.params.items()) if v
    ]
    if hyper:
        body["hyperparameters"] = hyper
    if history:
        body["scoresOverTime"] = history
    if run.environment:
        body["environment"] = dict(run.environment)
    return _finish(body, _run_annotations(run, made, inputs), None)


def _run_annotations(run: Run, made: list[str], inputs: Mapping[str, list[str]]) -> dict[str, str]:
    notes = {"mlkeep.experiment": run.experiment, "mlkeep.status": run.status}
    _put(notes, "mlkeep.parentRunId", run.parent_run_id)
    _put(notes, "mlkeep.failure", run.failure)
    if len(made) > 1:
        notes["mlkeep.otherModelIds"] = ",".join(made[1:])
    notes.update({f"param.{k}": "" for k, v in run.params.items() if not v})
    notes.update({f"tag.{k}": v for k, v in run.tags.items()})
    notes.update({f"input.{ds}": ",".join(rels) for ds, rels in inputs.items()})
    return notes


# -- models -------------------------------------------------------------------------------------------

_MODEL_COLUMNS = ("id", "name", "run_id", "trained_on_dataset_id", "learning_algorithm", "creation_time", "object")


def _model_documents(conn: Connection) -> Iterator[Document]:
    for row in conn.execute(select(models).order_by(models.c.creation_time, models.c.id)):
        doc = json.loads(row.document)
        model = Model.from_dict({**doc, **{c: getattr(row, c) for c in _MODEL_COLUMNS}})
        folder = "models" if model.trained_on_dataset_id else "mlkeep/models"
        yield Document(folder, model.id, _model_body(model, doc.get(EXTRA)))


def _model_body(model: Model, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    body = _base(model.id, model.name, model.creation_time)
    body.update(learningAlgorithm=model.learning_algorithm, location=MODELS_PREFIX + model.id)
    if model.trained_on_dataset_id:
        body["trainedOnDatasetId"] = model.trained_on_dataset_id
    _framework(body, model.framework, model.framework_version)
    empty: list[list[str]] = []
    hyper = [_parameter(h, "", empty) for h in model.hyperparameters]
    if any(hyper):
        body["hyperparameters"] = [h for h in hyper if h]
    if model.transforms:
        body["transforms"] = [_transform(t, empty) for t in model.transforms]
    if model.input:
        body["input"] = _columns(model.input)
    notes: dict[str, str] = {}
    for key, value in (("runId", model.run_id), ("object", model.object), ("flavor", model.flavor)):
        _put(notes, f"mlkeep.{key}", value)
    if empty:
        notes["mlkeep.emptyParameters"] = json.dumps(empty)
    return _finish(body, notes, extra)


def _framework(body: dict[str, Any], framework: str | None, version: str | None) -> None:
    if framework:
        body["fromFramework"] = framework
    if version:
        body["fromFrameworkVersion"] = version


def _parameter(h: Hyperparameter, scope: str, empty: list[list[str]]) -> dict[str, Any] | None:
    """A schema Parameter; an empty value (the schema forbids it) is listed in `empty` instead."""
    if h.value == "":
        empty.append([scope, h.name])
        return None
    out: dict[str, Any] = {"name": h.name, "value": h.value, "typing": h.typing, "trackedByUser": h.tracked_by_user}
    if h.non_default is not None:
        out["nonDefault"] = h.non_default
    return out


def _transform(t: Transform, empty: list[list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "name": t.name, "inputTransforms": list(t.input_transforms)}
    _framework(out, t.framework, t.framework_version)
    params = [_parameter(Hyperparameter(name=k, value=str(v), typing="STRING"), t.id, empty)
              for k, v in sorted(t.parameters.items())]
    out["parameters"] = [{k: v for k, v in p.items() if k != "trackedByUser"} for p in params if p]
    out["input"], out["output"] = _columns(t.input), _columns(t.output)
    return out


# -- predictions and evaluations --------------------------------------------------------------------


def _prediction_documents(conn: Connection) -> Iterator[Document]:
    for row in conn.execute(select(predictions).order_by(predictions.c.creation_time, predictions.c.id)):
        doc = json.loads(row.document)
        body = _base(row.id, row.name, row.creation_time)
        body.update(computedByModelId=row.model_id, computedOnDatasetId=row.dataset_id)
        if row.object:
            body["location"] = OBJECTS_PREFIX + row.object
        if doc.get("columns"):
            body["schema"] = _columns(doc["columns"])
        notes: dict[str, str] = {}
        for key, value in (("runId", row.run_id), ("object", row.object), ("numRows", doc.get("num_rows"))):
            _put(notes, f"mlkeep.{key}", value)
        yield Document("predictions", row.id, _finish(body, notes, doc.get(EXTRA)))


def _evaluation_documents(conn: Connection) -> Iterator[Document]:
    for row in conn.execute(select(evaluations).order_by(evaluations.c.creation_time, evaluations.c.id)):
        doc = json.loads(row.document)
        body = _base(row.id, row.name, row.creation_time)
        body.update(computedByModelId=row.model_id, computedOnDatasetId=row.dataset_id)
        if row.prediction_id:
            body["forPredictionId"] = row.prediction_id
        scores = doc.get("scores") or {}
        body["scores"] = [{"metric": k, "value": repr(float(v)), "typing": "DOUBLE"} for k, v in sorted(scores.items())]
        if doc.get("confusion_matrix"):
            body["confusionMatrix"] = _confusion(doc["confusion_matrix"], doc.get("class_labels"))
        notes: dict[str, str] = {}
        _put(notes, "mlkeep.runId", row.run_id)
        yield Document("evaluations", row.id, _finish(body, notes, doc.get(EXTRA)))


def _confusion(matrix: list[list[int]], labels: list[str] | None) -> dict[str, Any]:
    """mlkeep keeps rows (true class) of columns (predicted); the schema wants column-major values."""
    n = len(matrix)
    out: dict[str, Any] = {"numberOfClasses": n, "values": [int(matrix[i][j]) for j in range(n) for i in range(n)]}
    if labels is not None:
        out["classLabels"] = [str(label) for label in labels]
    return out
