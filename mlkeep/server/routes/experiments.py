"""Experiments: named groups of runs."""

from __future__ import annotations

from fastapi import APIRouter

from mlkeep.server.services import experiments
from mlkeep.server.app import CTX
from mlkeep.server.schemas import ExperimentIn, Values
from mlkeep.tracking.entities import Experiment

router = APIRouter(tags=["experiments"])


@router.get("/experiments", response_model=list[Experiment])
def list_experiments(ctx: CTX) -> list[Experiment]:
    """Every experiment the token may see."""
    return experiments.list_experiments(ctx.store, ctx.principal)


@router.post("/experiments", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentIn, ctx: CTX) -> Experiment:
    """Create an experiment, with tags if given (409 if the name is taken)."""
    return experiments.create_experiment(ctx.store, ctx.principal, body.name, body.description, body.tags)


@router.get("/experiments/{name_or_id}", response_model=Experiment)
def get_experiment(name_or_id: str, ctx: CTX) -> Experiment:
    return experiments.get_experiment(ctx.store, ctx.principal, name_or_id)


@router.patch("/experiments/{name_or_id}/tags", response_model=Experiment)
def set_experiment_tags(name_or_id: str, body: Values, ctx: CTX) -> Experiment:
    """Set (or overwrite) tags of an experiment; answers the experiment with all its tags."""
    return experiments.set_experiment_tags(ctx.store, ctx.principal, name_or_id, body.values)


@router.delete("/experiments/{name_or_id}/tags/{key:path}", status_code=204)
def delete_experiment_tag(name_or_id: str, key: str, ctx: CTX) -> None:
    """Remove one tag (404 if the experiment has no such tag)."""
    experiments.delete_experiment_tag(ctx.store, ctx.principal, name_or_id, key)
