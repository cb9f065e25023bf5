"""Predictions (values stored as Parquet) and Evaluations (scores, confusion matrix)."""

from __future__ import annotations

import io
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.tables import evaluations, predictions
from mlkeep.objects import ObjectStore
from mlkeep.tracking import datasets as datasets_
from mlkeep.tracking.describe import typing_of
from mlkeep.tracking.entities import Dataset, Evaluation, Model, Prediction
from mlkeep.tracking.lineage import add_links
from mlkeep.tracking.models import get_model


def log_predictions(
    db: Database,
    objects: ObjectStore,
    model: Model | str,
    dataset: Dataset | str | Any,
    values: Any,
    *,
    name: str | None = None,
    run_id: str | None = None,
) -> Prediction:
    """Store `values` (one row per row of `dataset`) computed by `model`, linked to both."""
    model_id = _model_id(db, model)
    ds = datasets_.resolve(db, objects, dataset, run_id=run_id)
    frame = _as_frame(values)
    if ds.num_rows and len(frame) != ds.num_rows:
        raise InvalidInputError(
            f"{len(frame)} predictions were given for dataset {ds.id} of {ds.num_rows} rows; give one per row."
        )
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    prediction = Prediction(
        id=new_id(), model_id=model_id, dataset_id=ds.id, creation_time=now_ms(), name=name, run_id=run_id,
        object=objects.put_bytes(buf.getvalue()), num_rows=len(frame),
        columns=[{"name": c, "typing": typing_of(frame[c].dtype)} for c in frame.columns],
    )
    with db.begin() as conn:
        insert_prediction(conn, prediction)
    return prediction


def insert_prediction(conn: Connection, p: Prediction, extra: Mapping[str, Any] | None = None) -> None:
    """Insert a Prediction row and its lineage links in the caller's transaction, keeping its id.

    `extra` adds keys to the stored document (import keeps there the schema
    fields mlkeep does not model, so they are exported again).
    """
    document = {"num_rows": p.num_rows, "columns": p.columns, **(extra or {})}
    conn.execute(
        predictions.insert(),
        [{"id": p.id, "name": p.name, "run_id": p.run_id, "model_id": p.model_id, "dataset_id": p.dataset_id,
          "creation_time": p.creation_time, "object": p.object, "document": json.dumps(document, sort_keys=True)}],
    )
    add_links(conn, [
        (p.model_id, "model", p.id, "prediction", "computed_by"),
        (p.dataset_id, "dataset", p.id, "prediction", "computed_on"),
        (p.run_id, "run", p.id, "prediction", "produced"),
    ])


def log_evaluation(
    db: Database,
    objects: ObjectStore,
    model: Model | str,
    dataset: Dataset | str | Any,
    scores: Mapping[str, float],
    *,
    confusion_matrix: Any = None,
    class_labels: list[Any] | None = None,
    prediction: Prediction | str | None = None,
    name: str | None = None,
    run_id: str | None = None,
) -> Evaluation:
    """Record `scores` of `model` on `dataset`, with an optional square confusion matrix."""
    model_id = _model_id(db, model)
    checked = {_score_name(k): _score(k, v) for k, v in scores.items()}
    matrix = _matrix(confusion_matrix, class_labels)
    prediction_id = prediction.id if isinstance(prediction, Prediction) else prediction
    if prediction_id is not None:
        get_prediction(db, prediction_id)
    ds = datasets_.resolve(db, objects, dataset, run_id=run_id)
    evaluation = Evaluation(
        id=new_id(), model_id=model_id, dataset_id=ds.id, creation_time=now_ms(), name=name, run_id=run_id,
        prediction_id=prediction_id, scores=checked, confusion_matrix=matrix,
        class_labels=[str(c) for c in class_labels] if class_labels is not None else None,
    )
    with db.begin() as conn:
        insert_evaluation(conn, evaluation)
    return evaluation


def insert_evaluation(conn: Connection, e: Evaluation, extra: Mapping[str, Any] | None = None) -> None:
    """Insert an Evaluation row and its lineage links in the caller's transaction, keeping its id.

    `extra` adds keys to the stored document, as for `insert_prediction`.
    """
    document = {"scores": e.scores, "confusion_matrix": e.confusion_matrix, "class_labels": e.class_labels,
                **(extra or {})}
    conn.execute(
        evaluations.insert(),
        [{"id": e.id, "name": e.name, "run_id": e.run_id, "model_id": e.model_id, "dataset_id": e.dataset_id,
          "prediction_id": e.prediction_id, "creation_time": e.creation_time,
          "document": json.dumps(document, sort_keys=True)}],
    )
    add_links(conn, [
        (e.model_id, "model", e.id, "evaluation", "computed_by"),
        (e.dataset_id, "dataset", e.id, "evaluation", "computed_on"),
        (e.prediction_id, "prediction", e.id, "evaluation", "evaluates"),
        (e.run_id, "run", e.id, "evaluation", "produced"),
    ])


def get_prediction(db: Database, prediction_id: str) -> Prediction:
    with db.connect() as conn:
        row = conn.execute(select(predictions).where(predictions.c.id == prediction_id)).first()
    if row is None:
        raise NotFoundError(f"No prediction with id {prediction_id!r}.")
    doc = json.loads(row.document)
    return Prediction(id=row.id, model_id=row.model_id, dataset_id=row.dataset_id, creation_time=row.creation_time,
                      name=row.name, run_id=row.run_id, object=row.object, num_rows=doc.get("num_rows", 0),
                      columns=doc.get("columns", []))


def list_predictions(db: Database) -> list[Prediction]:
    with db.connect() as conn:
        ids = conn.execute(select(predictions.c.id).order_by(predictions.c.creation_time)).scalars().all()
    return [get_prediction(db, i) for i in ids]


def load_predictions(db: Database, objects: ObjectStore, prediction_id: str) -> Any:
    import pandas as pd

    p = get_prediction(db, prediction_id)
    if p.object is None:
        raise NotFoundError(f"Prediction {prediction_id} was recorded without its values (imported metadata).")
    return pd.read_parquet(io.BytesIO(objects.get_bytes(p.object)))


def get_evaluation(db: Database, evaluation_id: str) -> Evaluation:
    with db.connect() as conn:
        row = conn.execute(select(evaluations).where(evaluations.c.id == evaluation_id)).first()
    if row is None:
        raise NotFoundError(f"No evaluation with id {evaluation_id!r}.")
    doc = json.loads(row.document)
    return Evaluation(id=row.id, model_id=row.model_id, dataset_id=row.dataset_id, creation_time=row.creation_time,
                      name=row.name, run_id=row.run_id, prediction_id=row.prediction_id, scores=doc["scores"],
                      confusion_matrix=doc.get("confusion_matrix"), class_labels=doc.get("class_labels"))


def list_evaluations(db: Database) -> list[Evaluation]:
    with db.connect() as conn:
        ids = conn.execute(select(evaluations.c.id).order_by(evaluations.c.creation_time)).scalars().all()
    return [get_evaluation(db, i) for i in ids]


def _model_id(db: Database, model: Model | str) -> str:
    if isinstance(model, Model):
        return model.id
    if isinstance(model, str):
        return get_model(db, model).id
    raise InvalidInputError(f"Give the logged Model (or its id) that computed these, not a {type(model).__name__}.")


def _as_frame(values: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        return values.rename(columns=str)
    if isinstance(values, pd.Series):
        return values.to_frame(name=str(values.name or "prediction"))
    array = np.asarray(values)
    if array.ndim == 1:
        return pd.DataFrame({"prediction": array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"prediction_{i}" for i in range(array.shape[1])])
    raise InvalidInputError(f"Predictions must be one value or one row per example, not shape {array.shape}.")


def _score_name(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"A score name must be a non-empty string, not {key!r}.")
    return key


def _score(key: str, value: Any) -> float:
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise InvalidInputError(f"Score {key!r} must be a real number, not {value!r}.")
    return float(value)


def _matrix(matrix: Any, labels: list[Any] | None) -> list[list[int]] | None:
    if matrix is None:
        return None
    import numpy as np

    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.dtype.kind not in "iu" or (m < 0).any():
        raise InvalidInputError("A confusion matrix must be a square matrix of non-negative integer counts.")
    if labels is not None and len(labels) != m.shape[0]:
        raise InvalidInputError(f"{len(labels)} class labels were given for a {m.shape[0]}-class confusion matrix.")
    return [[int(v) for v in row] for row in m]
