"""Tokens: only an unscoped admin manages them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlkeep import access
from mlkeep.access import Principal, Token

if TYPE_CHECKING:
    from mlkeep.store import Store


def _admin(principal: Principal) -> None:
    principal.require("admin")
    principal.require_unscoped("tokens")


def create_token(store: Store, principal: Principal, role: str, experiment: str | None,
                 description: str | None) -> tuple[Token, str]:
    """A new token and its secret (shown once)."""
    _admin(principal)
    return access.create_token(store, role, experiment=experiment, description=description)


def list_tokens(store: Store, principal: Principal) -> list[Token]:
    _admin(principal)
    return access.list_tokens(store)


def revoke_token(store: Store, principal: Principal, token_id: str) -> Token:
    _admin(principal)
    return access.revoke_token(store, token_id)
