"""Datasets, models, predictions and evaluations: logged through a run, read by id."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mlkeep.server.services import entities
from mlkeep.server.app import CTX, JSON
from mlkeep.server.routes.artifacts import _file
from mlkeep.server.schemas import DatasetIn, EvaluationIn, ModelIn, PredictionsIn
from mlkeep.tracking.entities import Dataset, Evaluation, Model, Prediction

router = APIRouter(tags=["entities"])


@router.post("/runs/{run_id}/datasets", response_model=Dataset, status_code=201)
def log_dataset(run_id: str, body: DatasetIn, ctx: CTX) -> Any:
    """Record a dataset described by the client (content uploaded to /objects) and link it to the run.

    With `dataset_id` instead, link that existing dataset to the run."""
    if body.dataset_id is not None:
        return JSON(entities.link_dataset(ctx.store, ctx.principal, run_id, body.dataset_id, body.context),
                    status_code=201)
    return JSON(entities.record_dataset(ctx.store, ctx.principal, run_id, body.description, body.object,
                                       name=body.name, derived_from=body.derived_from, context=body.context),
                status_code=201)


@router.post("/runs/{run_id}/models", response_model=Model, status_code=201)
def log_model(run_id: str, body: ModelIn, ctx: CTX) -> Any:
    """Record a model described by the client; its serialized form was uploaded to /objects."""
    return JSON(entities.record_model(ctx.store, ctx.principal, run_id, body.model), status_code=201)


@router.post("/runs/{run_id}/predictions", response_model=Prediction, status_code=201)
def log_predictions(run_id: str, body: PredictionsIn, ctx: CTX) -> Any:
    """Record predictions uploaded as a Parquet blob, computed by a model on a dataset."""
    return JSON(entities.log_predictions(ctx.store, ctx.principal, run_id, body.model_id, body.dataset_id,
                                        body.object, body.name), status_code=201)


@router.post("/runs/{run_id}/evaluations", response_model=Evaluation, status_code=201)
def log_evaluation(run_id: str, body: EvaluationIn, ctx: CTX) -> Any:
    """Record scores (and a confusion matrix) of a model on a dataset."""
    return JSON(entities.log_evaluation(
        ctx.store, ctx.principal, run_id, body.model_id, body.dataset_id, body.scores,
        confusion_matrix=body.confusion_matrix, class_labels=body.class_labels, prediction_id=body.prediction_id,
        name=body.name), status_code=201)


@router.get("/datasets", response_model=list[Dataset])
def list_datasets(ctx: CTX, name: Optional[str] = None) -> Any:
    return JSON(entities.list_datasets(ctx.store, ctx.principal, name))


@router.get("/datasets/{dataset_id}", response_model=Dataset)
def get_dataset(dataset_id: str, ctx: CTX) -> Any:
    """A dataset with its schema, statistics and histograms."""
    return JSON(entities.get_dataset(ctx.store, ctx.principal, dataset_id))


@router.get("/models", response_model=list[Model])
def list_models(ctx: CTX, run_id: Optional[str] = None) -> Any:
    return JSON(entities.list_models(ctx.store, ctx.principal, run_id))


@router.get("/models/{model_id}", response_model=Model)
def get_model(model_id: str, ctx: CTX) -> Any:
    return JSON(entities.get_model(ctx.store, ctx.principal, model_id))


@router.get("/models/{model_id}/object", response_class=FileResponse)
def model_object(model_id: str, ctx: CTX) -> FileResponse:
    """The model's serialized bytes (pickle or torch.save; load only from a server you trust)."""
    file, flavor = entities.model_object(ctx.store, ctx.principal, model_id)
    response = _file(file, f"{model_id}.{flavor}", False)
    response.headers["X-Mlkeep-Flavor"] = flavor
    return response


@router.get("/predictions/{prediction_id}", response_model=Prediction)
def get_prediction(prediction_id: str, ctx: CTX) -> Any:
    return JSON(entities.get_prediction(ctx.store, ctx.principal, prediction_id))


@router.get("/predictions/{prediction_id}/values", response_class=FileResponse)
def prediction_values(prediction_id: str, ctx: CTX) -> FileResponse:
    """The predicted values as a Parquet file."""
    file = entities.prediction_values(ctx.store, ctx.principal, prediction_id)
    return _file(file, f"{prediction_id}.parquet", False)


@router.get("/evaluations/{evaluation_id}", response_model=Evaluation)
def get_evaluation(evaluation_id: str, ctx: CTX) -> Any:
    return JSON(entities.get_evaluation(ctx.store, ctx.principal, evaluation_id))
