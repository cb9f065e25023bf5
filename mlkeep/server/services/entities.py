"""Datasets, models, predictions and evaluations: logged through a run by id, read by id.

The server never unpickles client data: clients describe and serialize
locally and upload the bytes the store keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from mlkeep.server.services.access import check_run, dataset_visible, sees, visible_run_of, writable_run
from mlkeep.server.services.files import object_file
from mlkeep.tracking.entities import Dataset, Evaluation, Model, Prediction

if TYPE_CHECKING:
    from mlkeep.store import Store


def record_dataset(store: Store, principal: Principal, run_id: str, description: Mapping[str, Any],
                   oid: str | None, *,
                   name: str | None = None, derived_from: str | None = None, context: str = "input") -> Dataset:
    """Record a dataset the client described (its content already uploaded as `oid`) and link it to the run."""
    from mlkeep.tracking import datasets
    from mlkeep.tracking.describe import Description
    from mlkeep.tracking.lineage import add_links

    writable_run(store, principal, run_id)
    if oid is None or not store.objects.exists(oid):
        raise NotFoundError(f"Object {oid} was not uploaded; upload the dataset's content first.")
    fields = {k: description[k] for k in ("fingerprint", "kind", "num_rows", "columns", "statistics",
                                           "histograms", "format", "targets") if k in description}
    source = description.get("path")
    try:
        desc = Description(**fields, payload=None, path=Path(source) if source else None)
    except TypeError as exc:
        raise InvalidInputError(f"Not a dataset description: {exc}") from None
    dataset = datasets._record(store.db, desc, oid, name, derived_from)  # noqa: SLF001 - no public twin yet
    with store.db.begin() as conn:
        add_links(conn, [(dataset.id, "dataset", run_id, "run", context)])
    return dataset


def link_dataset(store: Store, principal: Principal, run_id: str, dataset_id: str, context: str = "input") -> Dataset:
    """Link an existing dataset to the run (as logging a `Dataset` entity does locally)."""
    from mlkeep.tracking.lineage import add_links

    writable_run(store, principal, run_id)
    dataset = get_dataset(store, principal, dataset_id)
    with store.db.begin() as conn:
        add_links(conn, [(dataset.id, "dataset", run_id, "run", context)])
    return dataset


def record_model(store: Store, principal: Principal, run_id: str, model: Mapping[str, Any]) -> Model:
    """Record a model the client described and serialized (its blob uploaded first); never unpickled here."""
    from mlkeep.tracking import models

    writable_run(store, principal, run_id)
    entity = Model.from_dict({**model, "run_id": run_id})
    if entity.object is None or not store.objects.exists(entity.object):
        raise NotFoundError("The model's serialized object was not uploaded; upload it first.")
    if entity.trained_on_dataset_id is not None:
        store.get_dataset(entity.trained_on_dataset_id)
    with store.db.begin() as conn:
        models.insert_model(conn, entity)
    return store.get_model(entity.id)


def log_predictions(store: Store, principal: Principal, run_id: str, model_id: str, dataset_id: str, oid: str,
                    name: str | None = None) -> Prediction:
    """Log predictions uploaded as a Parquet blob (read with pyarrow: no code runs)."""
    import io

    import pandas as pd

    from mlkeep.tracking import predictions

    writable_run(store, principal, run_id)
    try:
        frame = pd.read_parquet(io.BytesIO(store.objects.get_bytes(oid)))
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"The uploaded predictions are not a Parquet table: {exc}") from None
    return predictions.log_predictions(store.db, store.objects, model_id, store.get_dataset(dataset_id), frame,
                                       name=name, run_id=run_id)


def log_evaluation(store: Store, principal: Principal, run_id: str, model_id: str, dataset_id: str,
                   scores: Mapping[str, float], *, confusion_matrix: Any = None, class_labels: Any = None,
                   prediction_id: str | None = None, name: str | None = None) -> Evaluation:
    from mlkeep.tracking import predictions

    writable_run(store, principal, run_id)
    return predictions.log_evaluation(
        store.db, store.objects, model_id, store.get_dataset(dataset_id), scores, confusion_matrix=confusion_matrix,
        class_labels=class_labels, prediction=prediction_id, name=name, run_id=run_id)


def get_model(store: Store, principal: Principal, model_id: str) -> Model:
    principal.require("read")
    model = store.get_model(model_id)
    visible_run_of(store, principal, model.run_id)
    return model


def list_models(store: Store, principal: Principal, run_id: str | None = None) -> list[Model]:
    principal.require("read")
    if run_id is not None:
        check_run(store, principal, run_id)
    found = store.list_models(run_id)
    return found if principal.experiment_id is None else [m for m in found if sees(store, principal, m.run_id)]


def get_dataset(store: Store, principal: Principal, dataset_id: str) -> Dataset:
    principal.require("read")
    dataset = store.get_dataset(dataset_id)
    if not dataset_visible(store, principal, dataset_id):
        raise PermissionDeniedError("This token is scoped to an experiment that never used this dataset.")
    return dataset


def list_datasets(store: Store, principal: Principal, name: str | None = None) -> list[Dataset]:
    principal.require("read")
    return [d for d in store.list_datasets(name) if dataset_visible(store, principal, d.id)]


def get_prediction(store: Store, principal: Principal, prediction_id: str) -> Prediction:
    principal.require("read")
    p = store.get_prediction(prediction_id)
    visible_run_of(store, principal, p.run_id)
    return p


def prediction_values(store: Store, principal: Principal, prediction_id: str) -> Path:
    """A verified temporary copy of the predictions' Parquet blob (the caller deletes its folder)."""
    p = get_prediction(store, principal, prediction_id)
    if p.object is None:
        raise NotFoundError(f"Prediction {prediction_id} was recorded without its values (imported metadata).")
    return object_file(store, p.object)


def get_evaluation(store: Store, principal: Principal, evaluation_id: str) -> Evaluation:
    principal.require("read")
    e = store.get_evaluation(evaluation_id)
    visible_run_of(store, principal, e.run_id)
    return e


def model_object(store: Store, principal: Principal, model_id: str) -> tuple[Path, str]:
    """A verified temporary copy of the model's serialized blob, and its flavor."""
    model = get_model(store, principal, model_id)
    if model.object is None:
        raise NotFoundError(f"Model {model_id} was recorded without its serialized form.")
    return object_file(store, model.object), model.flavor or "pickle"


def run_entities(store: Store, principal: Principal, run_id: str) -> dict[str, list[Any]]:
    """What a run used and made: datasets (with statistics), models, predictions, evaluations."""
    check_run(store, principal, run_id)
    up = store.lineage(run_id, "up", depth=1)
    down = store.lineage(run_id, "down", depth=1)
    return {
        "datasets": [store.get_dataset(n.id) for n in up.of_kind("dataset")],
        "models": store.list_models(run_id),
        "predictions": [store.get_prediction(n.id) for n in down.of_kind("prediction")],
        "evaluations": [store.get_evaluation(n.id) for n in down.of_kind("evaluation")],
    }
