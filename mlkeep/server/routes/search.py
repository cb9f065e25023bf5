"""Search runs with the filter language, sorted and paged by the server."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query

from mlkeep.server.services import search
from mlkeep.server.app import CTX, JSON
from mlkeep.server.schemas import MAX_INDEX, RunPage, SearchIn

router = APIRouter(tags=["search"])


@router.get("/search/runs", response_model=RunPage)
def search_runs(
    ctx: CTX,
    filter: str = "",
    order_by: Annotated[Optional[list[str]], Query(description="e.g. `metrics.acc DESC`; repeatable.")] = None,
    page_size: Annotated[int, Query(ge=1, le=search.MAX_PAGE)] = 50,
    page_token: Optional[str] = None,
    experiments: Annotated[Optional[list[str]], Query()] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INDEX, description="Where to start when no page_token is given.")] = 0,
    total: Annotated[bool, Query(description="Also count every matching run (one more query).")] = True,
) -> Any:
    """A page of runs matching `filter` (400 FILTER_SYNTAX with `position` for a malformed one)."""
    runs, token, count = search.search_page(ctx.store, ctx.principal, filter, order_by, page_size, page_token,
                                            experiments, offset, total)
    return JSON({"runs": runs, "next_page_token": token, "total": count})


@router.post("/search/runs", response_model=RunPage)
def search_runs_post(body: SearchIn, ctx: CTX) -> Any:
    """As GET, for filters too long for a URL."""
    runs, token, count = search.search_page(ctx.store, ctx.principal, body.filter, body.order_by, body.page_size,
                                            body.page_token, body.experiments, body.offset, body.total)
    return JSON({"runs": runs, "next_page_token": token, "total": count})
