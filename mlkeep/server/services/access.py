"""Who may act on what: the run-level checks behind every route, and what a scoped token sees.

A token scoped to one experiment sees that experiment's runs and the
entities they logged or used, nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from mlkeep.access import Principal
from mlkeep.errors import NotFoundError, PermissionDeniedError, RunStateError
from mlkeep.tracking.entities import RunStatus

if TYPE_CHECKING:
    from mlkeep.store import Store


def experiment_of_run(store: Store, run_id: str) -> tuple[str, str]:
    """(experiment id, status) of a run; `NotFoundError` if there is none."""
    from mlkeep.metadata.tables import runs

    with store.db.connect() as conn:
        row = conn.execute(select(runs.c.experiment_id, runs.c.status).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")
    return row.experiment_id, row.status


def check_run(store: Store, principal: Principal, run_id: str, role: str = "read") -> str:
    """The run's status, after checking the principal may act on it with `role`."""
    principal.require(role)
    experiment_id, status = experiment_of_run(store, run_id)
    principal.require_experiment(experiment_id)
    return status


def writable_run(store: Store, principal: Principal, run_id: str) -> None:
    """Check a write to the run is allowed and the run still RUNNING (`RunStateError` otherwise)."""
    if check_run(store, principal, run_id, "write") != RunStatus.RUNNING:
        raise RunStateError(f"Run {run_id} has ended; start a new run to log more.")


def visible_run_of(store: Store, principal: Principal, run_id: str | None) -> None:
    """A scoped token sees an entity only when a run of its experiment logged it."""
    if principal.experiment_id is None:
        return
    if run_id is None:
        raise PermissionDeniedError("This token is scoped to an experiment; this entity belongs to none.")
    principal.require_experiment(experiment_of_run(store, run_id)[0])


def sees(store: Store, principal: Principal, run_id: str | None) -> bool:
    """Whether the principal sees what run `run_id` logged (`visible_run_of` as a test)."""
    try:
        visible_run_of(store, principal, run_id)
    except (PermissionDeniedError, NotFoundError):
        return False
    return True


def dataset_visible(store: Store, principal: Principal, dataset_id: str) -> bool:
    """A scoped token sees a dataset that a run of its experiment used or made."""
    if principal.experiment_id is None:
        return True
    graph = store.lineage(dataset_id, "down", depth=2)
    return any(sees(store, principal, n.id) for n in graph.of_kind("run"))
