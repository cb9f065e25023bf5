"""The model registry over HTTP: registered models belong to no experiment, so a scoped token reaches none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlkeep.access import Principal

if TYPE_CHECKING:
    from mlkeep.lifecycle.registry import Registry
    from mlkeep.store import Store


def registry(store: Store, principal: Principal, role: str = "read") -> Registry:
    """`store.registry`, for an unscoped principal with `role` (write: register, move aliases, edit)."""
    principal.require(role)
    principal.require_unscoped("the model registry")
    return store.registry
