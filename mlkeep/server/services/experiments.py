"""Experiments: a scoped token sees only its own and creates none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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


def create_experiment(store: Store, principal: Principal, name: str, description: str | None,
                      tags: Mapping[str, Any] | None = None) -> Experiment:
    principal.require("write")
    principal.require_unscoped("other experiments")
    return store.create_experiment(name, description, tags=tags)


def set_experiment_tags(store: Store, principal: Principal, name_or_id: str, tags: Mapping[str, Any]) -> Experiment:
    """A scoped token may tag its own experiment only."""
    principal.require("write")
    principal.require_experiment(store.get_experiment(name_or_id).id)
    return store.set_experiment_tags(name_or_id, tags)


def delete_experiment_tag(store: Store, principal: Principal, name_or_id: str, key: str) -> None:
    principal.require("write")
    principal.require_experiment(store.get_experiment(name_or_id).id)
    store.delete_experiment_tag(name_or_id, key)
