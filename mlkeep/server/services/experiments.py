"""Experiments: a scoped token sees only its own and creates none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlkeep.access import Principal
from mlkeep.tracking.entities import Experiment

if TYPE_CHECKING:
    from mlkeep.store import Store


def list_experiments(store: Store, principal: Principal) -> list[Experiment]:
    principal.require("read")
    return [e for e in store.list_experiments() if principal.experiment_id in (None, e.id)]


def get_experiment(store: Store, principal: Principal, name_or_id: str) -> Experiment:
    principal.require("read")
    e = store.get_experiment(name_or_id)
    principal.require_experiment(e.id)
    return e


def create_experiment(store: Store, principal: Principal, name: str, description: str | None) -> Experiment:
    principal.require("write")
    principal.require_unscoped("other experiments")
    return store.create_experiment(name, description)
