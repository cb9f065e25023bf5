"""Runs: start, params, tags, metrics (batched), end, and metric history with downsampling."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query

from mlkeep.server.services import entities, metrics, runs
from mlkeep.server.app import CTX, JSON
from mlkeep.server.schemas import EndIn, MetricBatch, MetricHistory, RunIds, RunIn, Values
from mlkeep.tracking.entities import Run

router = APIRouter(tags=["runs"])


@router.post("/runs", response_model=Run, status_code=201)
def start_run(body: RunIn, ctx: CTX) -> Any:
    """Start a RUNNING run (its experiment is made if new); `environment` is the client's."""
    return runs.start_run(ctx.store, ctx.principal, body.experiment, body.name, parent_run_id=body.parent_run_id,
                             tags=body.tags, environment=body.environment)


@router.get("/runs/{run_id}", response_model=Run)
def get_run(run_id: str, ctx: CTX) -> Any:
    """The run with params, tags, latest metrics and environment."""
    return JSON(runs.get_run(ctx.store, ctx.principal, run_id))


@router.post("/runs/get", response_model=list[Run])
def get_runs(body: RunIds, ctx: CTX) -> Any:
    """Several runs at once, in the order asked (unknown ids skipped)."""
    return JSON(runs.get_runs(ctx.store, ctx.principal, body.ids))


@router.post("/runs/{run_id}/params", status_code=204)
def log_params(run_id: str, body: Values, ctx: CTX) -> None:
    """Record params; 409 PARAM_CONFLICT when one had another value (then nothing is kept)."""
    runs.log_params(ctx.store, ctx.principal, run_id, body.values)


@router.post("/runs/{run_id}/tags", status_code=204)
def set_tags(run_id: str, body: Values, ctx: CTX) -> None:
    runs.set_tags(ctx.store, ctx.principal, run_id, body.values)


@router.post("/runs/{run_id}/metrics", status_code=204)
def log_metrics(run_id: str, body: MetricBatch, ctx: CTX) -> None:
    """Append a batch of points in one transaction; every point is checked before any is kept."""
    runs.log_metrics(ctx.store, ctx.principal, run_id, body.points)


@router.post("/runs/{run_id}/end", response_model=Run)
def end_run(run_id: str, body: EndIn, ctx: CTX) -> Any:
    """Mark the run FINISHED, FAILED (with `failure`) or KILLED; a no-op on an ended run."""
    return runs.end_run(ctx.store, ctx.principal, run_id, body.status, body.failure)


@router.get("/runs/{run_id}/metrics/{key:path}/history", response_model=MetricHistory)
def metric_history(
    run_id: str,
    key: str,
    ctx: CTX,
    max_points: Annotated[int, Query(ge=0, le=100_000, description="0: every point; else at most this many.")] = 0,
    min_step: Optional[float] = None,
    max_step: Optional[float] = None,
) -> Any:
    """The series by step, downsampled by the server (first/min/max/last per bucket) to `max_points`."""
    return JSON(metrics.metric_history(ctx.store, ctx.principal, run_id, key, max_points=max_points,
                                       min_step=min_step, max_step=max_step))


@router.get("/runs/{run_id}/entities")
def run_entities(run_id: str, ctx: CTX) -> Any:
    """Datasets the run used, and the models, predictions and evaluations it logged."""
    return entities.run_entities(ctx.store, ctx.principal, run_id)
