"""Lineage: what went into an entity, what came out of it."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query

from mlkeep.server.services import lineage as graphs
from mlkeep.server.app import CTX

router = APIRouter(tags=["lineage"])


@router.get("/lineage/{entity_id}")
def lineage(
    entity_id: str,
    ctx: CTX,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
    depth: Annotated[Optional[int], Query(ge=0, le=1000)] = None,
) -> Any:
    """The graph `direction` of an entity: nodes (id, kind, name), links and each node's depth."""
    return graphs.lineage(ctx.store, ctx.principal, entity_id, direction, depth)


@router.get("/lineage/{entity_id}/neighbourhood")
def neighbourhood(entity_id: str, ctx: CTX, depth: Annotated[int, Query(ge=1, le=10)] = 2) -> Any:
    """Both directions at once, for the lineage graph view (upstream depths negative)."""
    return graphs.neighbourhood(ctx.store, ctx.principal, entity_id, depth)
