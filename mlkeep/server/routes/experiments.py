"""Experiments: named groups of runs."""

from __future__ import annotations

from fastapi import APIRouter

from mlkeep.server.services import experiments
from mlkeep.server.app import CTX
from mlkeep.server.schemas import ExperimentIn
from mlkeep.tracking.entities import Experiment

router = APIRouter(tags=["experiments"])


@router.get("/experiments", response_model=list[Experiment])
def list_experiments(ctx: CTX) -> list[Experiment]:
    """Every experiment the token may see."""
    return experiments.list_experiments(ctx.store, ctx.principal)


@router.post("/experiments", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentIn, ctx: CTX) -> Experiment:
    """Create an experiment (409 if the name is taken)."""
    return experiments.create_experiment(ctx.store, ctx.principal, body.name, body.description)


@router.get("/experiments/{name_or_id}", response_model=Experiment)
def get_experiment(name_or_id: str, ctx: CTX) -> Experiment:
    return experiments.get_experiment(ctx.store, ctx.principal, name_or_id)
