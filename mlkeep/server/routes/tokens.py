"""Tokens: admins create, list and revoke them (the secret is shown once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mlkeep.access import Token
from mlkeep.server.services import tokens
from mlkeep.server.app import CTX
from mlkeep.server.schemas import NewToken, TokenIn

router = APIRouter(tags=["tokens"])


@router.get("/tokens", response_model=list[Token])
def list_tokens(ctx: CTX) -> Any:
    return tokens.list_tokens(ctx.store, ctx.principal)


@router.post("/tokens", response_model=NewToken, status_code=201)
def create_token(body: TokenIn, ctx: CTX) -> Any:
    token, secret = tokens.create_token(ctx.store, ctx.principal, body.role, body.experiment, body.description)
    return {"token": token.to_dict(), "secret": secret}


@router.delete("/tokens/{token_id}", response_model=Token)
def revoke_token(token_id: str, ctx: CTX) -> Any:
    return tokens.revoke_token(ctx.store, ctx.principal, token_id)
