"""Export the store as ml-experiments-schema JSON documents, and import them back.

One document per entity, named by its id: `datasets/` (DatasetMetadata),
`models/` (ModelMetadata), `training_runs/` (TrainingRun), `predictions/`
(PredictionMetadata) and `evaluations/` (Evaluation). Documents are sorted,
indented JSON written atomically, so exporting the same store twice, or
exporting, importing into a fresh store and exporting again, gives the same
bytes.

What the schema cannot say goes into each document's `annotations` (a string
map the schema allows everywhere), under keys mlkeep reads back on import:
`mlkeep.*` for fields (a dataset's fingerprint, a run's experiment, status,
parent and traceback, the run that produced a model...), `tag.<key>` for a
run's tags, `param.<key>` for a param whose value is the empty string (a
Parameter's value must not be empty) and `input.<dataset id>` for the
datasets a run used.

Two kinds of entity have no valid schema document, because the schema
requires a link mlkeep does not: a run that produced no model (TrainingRun
requires `forModelId`) and a model logged without `trained_on`
(ModelMetadata requires `trainedOnDatasetId`). Skipping them would lose runs
(a search's parent run, an evaluation-only run) and everything that points
at them, so they are written with the same mapping into
`mlkeep/training_runs/` and `mlkeep/models/`, outside the five schema
folders, and validated against the schema's definition with that one
requirement lifted. A reader of the schema sees only valid documents.

Content (dataset bytes, pickled models, prediction values, run artifacts) is
not exported: an imported entity is metadata whose object ids point at
content the importing store may not have, so loading it raises NotFoundError
until the objects are copied over.

Documents are checked against the schema itself when one is available (the
`schema` argument, else the `MLKEEP_SCHEMA` environment variable); mlkeep
does not ship a copy. Import always checks every field it reads, validates
every document before writing any, and writes all of them in one
transaction; entities whose id is already in the store are left alone, so
importing twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mlkeep.errors import ConflictError, InvalidInputError, NotFoundError, SchemaValidationError
from mlkeep.ids import now_ms
from mlkeep.metadata.tables import datasets, evaluations, links, metrics, models, params, predictions
from mlkeep.metadata.tables import runs as runs_table
from mlkeep.metadata.tables import tags as tags_table
from mlkeep.tracking.entities import Dataset, Evaluation, Hyperparameter, Model, Prediction, Run, RunStatus, Transform
from mlkeep.tracking.experiments import DEFAULT_EXPERIMENT, ensure_experiment
from mlkeep.tracking.lineage import add_links
from mlkeep.tracking.metrics import write_points

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)

SCHEMA_ENV = "MLKEEP_SCHEMA"
OBJECTS_PREFIX = "mlkeep://objects/"
MODELS_PREFIX = "mlkeep://models/"
EXTRA = "schema_extra"  # key, in a stored entity document, of schema fields mlkeep does not model
RUN_WITHOUT_MODEL = "mlkeep.TrainingRunWithoutModel"
MODEL_WITHOUT_DATASET = "mlkeep.ModelMetadataWithoutDataset"

# folder -> schema definition its documents must satisfy, in import order of kinds
FOLDERS: dict[str, str] = {
    "datasets": "DatasetMetadata",
    "training_runs": "TrainingRun",
    "mlkeep/training_runs": RUN_WITHOUT_MODEL,
    "models": "ModelMetadata",
    "mlkeep/models": MODEL_WITHOUT_DATASET,
    "predictions": "PredictionMetadata",
    "evaluations": "Evaluation",
}
COUNT_NAMES = {"mlkeep/training_runs": "runs_without_model", "mlkeep/models": "models_without_dataset"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STAT_ORDER = ("count", "nulls", "distinct", "mean", "std", "min", "max", "bytes")


@dataclass(frozen=True)
class Document:
    """One JSON document: its folder (which says its kind), its id and its body."""

    folder: str
    id: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.id}.json"


# == the schema ===============================================================================


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The schema at `path`, its leading `/* licence */` comment stripped (it is not JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the ml-experiments-schema at {path}: {exc}.") from exc
    text = re.sub(r"^\s*/\*.*?\*/", "", text, count=1, flags=re.DOTALL)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not the ml-experiments-schema (not JSON: {exc}).") from exc
    if not isinstance(schema, dict) or "TrainingRun" not in schema:
        raise InvalidInputError(f"{path} is not the ml-experiments-schema (it has no TrainingRun).")
    return schema


class SchemaChecker:
    """Validates documents against their folder's definition of the ml-experiments-schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        from jsonschema import Draft7Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT7

        uri = "urn:ml-experiments-schema"
        contents = {
            **schema,
            RUN_WITHOUT_MODEL: _lifted(schema["TrainingRun"], "forModelId"),
            MODEL_WITHOUT_DATASET: _lifted(schema["ModelMetadata"], "trainedOnDatasetId"),
        }
        registry: Registry[Any] = Registry().with_resource(uri, DRAFT7.create_resource(contents))
        self._validators = {
            folder: Draft7Validator({"$ref": f"{uri}#/{name}"}, registry=registry) for folder, name in FOLDERS.items()
        }

    @classmethod
    def find(cls, schema: str | os.PathLike[str] | None) -> SchemaChecker | None:
        """A checker for `schema`, else for `$MLKEEP_SCHEMA`, else None (mlkeep ships no copy)."""
        path = schema if schema is not None else os.environ.get(SCHEMA_ENV)
        if not path:
            log.info("no ml-experiments-schema given (argument or %s): documents are not validated", SCHEMA_ENV)
            return None
        return cls(load_schema(path))

    def check(self, doc: Document) -> None:
        """Raise SchemaValidationError naming the document and the first failing path."""
        from jsonschema.exceptions import best_match

        error = best_match(self._validators[doc.folder].iter_errors(doc.body))
        if error is not None:
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            raise SchemaValidationError(f"{doc.path}: {where}: {error.message}")


def _lifted(definition: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {**definition, "required": [r for r in definition.get("required", []) if r != name]}


# == export ===================================================================================


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
        _write_atomically(root / doc.path, render(doc.body))
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


def render(body: Mapping[str, Any]) -> bytes:
    """The bytes of a document: sorted keys, two-space indent, so equal documents are equal files."""
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # not mkstemp: its 0600 ignores the umask
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


# == import ===================================================================================


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


def read_documents(folder: str | os.PathLike[str]) -> list[Document]:
    """The documents under `folder`, by kind then file name; unreadable JSON raises SchemaValidationError."""
    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"{root} is not a folder of exported documents.")
    docs = []
    for sub in FOLDERS:
        for path in sorted((root / sub).glob("*.json")):
            rel = f"{sub}/{path.name}"
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SchemaValidationError(f"{rel}: not a JSON document ({exc}).") from exc
            if not isinstance(body, dict):
                raise SchemaValidationError(f"{rel}: /: a document must be a JSON object.")
            docs.append(Document(sub, _document_id(rel, body, path.stem), body))
    return docs


def _document_id(rel: str, body: Mapping[str, Any], stem: str) -> str:
    """The `id` field, else the file name (the schema makes ids optional); must be a safe file name."""
    doc_id = body.get("id", stem)
    if not isinstance(doc_id, str) or not _SAFE_ID.match(doc_id):
        raise SchemaValidationError(f"{rel}: /id: {doc_id!r} is not an id mlkeep can keep (1-64 of A-Z a-z 0-9 . _ -).")
    return doc_id


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
        _insert_dataset(conn, dataset, document)
    for model, extra in fresh.models:
        _insert_model(conn, model, extra)
    for prediction, extra in fresh.predictions:
        _insert_prediction(conn, prediction, extra)
    for evaluation, extra in fresh.evaluations:
        _insert_evaluation(conn, evaluation, extra)
    for record in fresh.runs:
        _link(conn, [(ds, "dataset", record.run.id, "run", rel) for ds, rel in record.inputs])
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


def _link(conn: Connection, edges: Iterable[tuple[str | None, str, str | None, str, str]]) -> None:
    """`add_links` for edges whose optional end may be None (no link then)."""
    add_links(conn, [(s, sk, d, dk, r) for s, sk, d, dk, r in edges if s is not None and d is not None])


def _insert_run(conn: Connection, record: _RunRecord) -> None:
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


def _insert_dataset(conn: Connection, dataset: Dataset, document: dict[str, Any]) -> None:
    conn.execute(datasets.insert(), [{
        "id": dataset.id, "name": dataset.name, "fingerprint": dataset.fingerprint, "version": dataset.version,
        "location": dataset.location, "derived_from_id": dataset.derived_from_id,
        "creation_time": dataset.creation_time, "document": json.dumps(document, sort_keys=True),
    }])
    _link(conn, [(dataset.derived_from_id, "dataset", dataset.id, "dataset", "derived_from")])


def _insert_model(conn: Connection, model: Model, extra: dict[str, Any]) -> None:
    document = {k: v for k, v in model.to_dict().items() if k not in _MODEL_COLUMNS}
    conn.execute(models.insert(), [{
        **{c: getattr(model, c) for c in _MODEL_COLUMNS}, "document": json.dumps({**document, **extra}, sort_keys=True),
    }])
    _link(conn, [
        (model.run_id, "run", model.id, "model", "produced"),
        (model.trained_on_dataset_id, "dataset", model.id, "model", "trained_on"),
    ])


def _insert_prediction(conn: Connection, p: Prediction, extra: dict[str, Any]) -> None:
    document = {"num_rows": p.num_rows, "columns": p.columns, **extra}
    conn.execute(predictions.insert(), [{
        "id": p.id, "name": p.name, "run_id": p.run_id, "model_id": p.model_id, "dataset_id": p.dataset_id,
        "creation_time": p.creation_time, "object": p.object, "document": json.dumps(document, sort_keys=True),
    }])
    _link(conn, [
        (p.model_id, "model", p.id, "prediction", "computed_by"),
        (p.dataset_id, "dataset", p.id, "prediction", "computed_on"),
        (p.run_id, "run", p.id, "prediction", "produced"),
    ])


def _insert_evaluation(conn: Connection, e: Evaluation, extra: dict[str, Any]) -> None:
    document = {"scores": e.scores, "confusion_matrix": e.confusion_matrix, "class_labels": e.class_labels, **extra}
    conn.execute(evaluations.insert(), [{
        "id": e.id, "name": e.name, "run_id": e.run_id, "model_id": e.model_id, "dataset_id": e.dataset_id,
        "prediction_id": e.prediction_id, "creation_time": e.creation_time,
        "document": json.dumps(document, sort_keys=True),
    }])
    _link(conn, [
        (e.model_id, "model", e.id, "evaluation", "computed_by"),
        (e.dataset_id, "dataset", e.id, "evaluation", "computed_on"),
        (e.prediction_id, "prediction", e.id, "evaluation", "evaluates"),
        (e.run_id, "run", e.id, "evaluation", "produced"),
    ])
