"""Access control for the server: bearer tokens, roles, and experiment scopes.

A token is shown once, when it is created; the store keeps only its SHA-256,
so a stolen database gives away no token. A role says what a token may do:

    read    read everything in its scope
    write   read, and log (runs, params, metrics, artifacts, entities)
    admin   write, and manage tokens

A token scoped to an experiment sees that experiment's runs and what they
logged, nothing else (no other runs, no repositories, no tokens).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from mlkeep.errors import AuthenticationError, InvalidInputError, MlkeepError, NotFoundError, PermissionDeniedError
from mlkeep.ids import new_id, now_ms
from mlkeep.tracking.entities import Entity

if TYPE_CHECKING:
    from mlkeep.store import Store

ROLES = ("read", "write", "admin")
PREFIX = "mlk_"


@dataclass(frozen=True)
class Token(Entity):
    """A token as stored: never the secret itself."""

    id: str
    role: str
    creation_time: int
    experiment_id: str | None = None
    experiment: str | None = None
    description: str | None = None
    revoked_time: int | None = None


@dataclass(frozen=True)
class Principal(Entity):
    """Who is asking: a role and an optional experiment scope. `LOCAL` when auth is off."""

    role: str
    experiment_id: str | None = None
    token_id: str | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        """`PermissionDeniedError` unless this principal's role is `role` or above."""
        if not self.can(role):
            raise PermissionDeniedError(f"This token has role {self.role!r}; the request needs {role!r}.")

    def require_experiment(self, experiment_id: str) -> None:
        """`PermissionDeniedError` when scoped to another experiment."""
        if self.experiment_id is not None and experiment_id != self.experiment_id:
            raise PermissionDeniedError("This token is scoped to another experiment.")

    def require_unscoped(self, what: str) -> None:
        if self.experiment_id is not None:
            raise PermissionDeniedError(f"A token scoped to one experiment cannot reach {what}.")


LOCAL = Principal(role="admin")


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(store: Store, role: str, *, experiment: str | None = None,
                 description: str | None = None) -> tuple[Token, str]:
    """A new token and its secret (shown once; only its hash is stored).

    `InvalidInputError` for an unknown role, `NotFoundError` for an unknown experiment.
    """
    from mlkeep.metadata.tables import tokens

    if role not in ROLES:
        raise InvalidInputError(f"A token's role is one of {', '.join(ROLES)}, not {role!r}.")
    exp = store.get_experiment(experiment) if experiment is not None else None
    secret = PREFIX + secrets.token_urlsafe(32)
    token = Token(id=new_id(), role=role, creation_time=now_ms(), experiment_id=exp.id if exp else None,
                  experiment=exp.name if exp else None, description=description)
    with store.db.begin() as conn:
        conn.execute(tokens.insert(), [{
            "id": token.id, "hash": hash_token(secret), "role": role, "experiment_id": token.experiment_id,
            "description": description, "creation_time": token.creation_time, "revoked_time": None,
        }])
    return token, secret


def list_tokens(store: Store) -> list[Token]:
    """Every token ever created (revoked ones have `revoked_time`), oldest first."""
    from mlkeep.metadata.tables import experiments, tokens

    query = (select(tokens, experiments.c.name.label("experiment"))
             .outerjoin(experiments, experiments.c.id == tokens.c.experiment_id).order_by(tokens.c.creation_time))
    with store.db.connect() as conn:
        return [_token(r) for r in conn.execute(query).all()]


def revoke_token(store: Store, token_id: str) -> Token:
    """Revoke a token now (idempotent); `NotFoundError` for an unknown id or id prefix."""
    from mlkeep.metadata.tables import tokens

    with store.db.begin() as conn:
        ids = conn.execute(select(tokens.c.id).where(tokens.c.id.startswith(token_id)).limit(2)).scalars().all()
        if len(ids) != 1 or not token_id:
            raise NotFoundError(f"No single token has id {token_id!r}. List them with `mlkeep token list`.")
        conn.execute(tokens.update().where(tokens.c.id == ids[0], tokens.c.revoked_time.is_(None))
                     .values(revoked_time=now_ms()))
    return next(t for t in list_tokens(store) if t.id == ids[0])


def verify_token(store: Store, secret: str | None) -> Principal:
    """The principal a bearer secret stands for; `AuthenticationError` if none, unknown or revoked."""
    from mlkeep.metadata.tables import tokens

    if not secret:
        raise AuthenticationError("This server requires a token: send `Authorization: Bearer <token>`.")
    with store.db.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.hash == hash_token(secret))).first()
    if row is None or row.revoked_time is not None:
        raise AuthenticationError("The token is unknown or revoked.")
    return Principal(role=row.role, experiment_id=row.experiment_id, token_id=row.id)


def _token(row: object) -> Token:
    data = dict(row._mapping)  # type: ignore[attr-defined]
    data.pop("hash", None)
    return Token.from_dict(data)
