"""Pages of `search_runs`: the page token is an opaque offset the server hands out."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlkeep.access import LOCAL, Principal
from mlkeep.errors import InvalidInputError
from mlkeep.tracking.counting import count_runs
from mlkeep.tracking.entities import Run

if TYPE_CHECKING:
    from mlkeep.store import Store

MAX_PAGE = 1000


def search_page(store: Store, principal: Principal, filter: str = "", order_by: str | Sequence[str] | None = None,
                page_size: int = 50, page_token: str | None = None, experiments: Sequence[str] | None = None,
                offset: int = 0, total: bool = False) -> tuple[list[Run], str | None, int | None]:
    """One page of `search_runs` (from the token's place, else from `offset`), the next page's token, and,
    when `total` is asked for, how many runs match in all (one COUNT query unless this is the last page;
    else None)."""
    principal.require("read")
    if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE:
        raise InvalidInputError(f"page_size must be between 1 and {MAX_PAGE}, not {page_size!r}.")
    offset = _offset(page_token) if page_token else offset
    if principal.experiment_id is not None:
        for e in experiments or ():
            principal.require_experiment(store.get_experiment(e).id)
        experiments = [principal.experiment_id]
    found = store.search_runs(filter, order_by=order_by or None, limit=page_size + 1, offset=offset,
                              experiments=experiments or None)
    page, more = found[:page_size], len(found) > page_size
    count = None
    if total:  # the last page needs no count: the runs before it and its own are all there are
        count = offset + len(page) if page and not more else count_runs(store.db, filter,
                                                                          experiments=experiments or None)
    return page, _token(offset + page_size) if more else None, count


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError("page_token is not a token this server gave out.") from None
    if not 0 <= offset < 2**62:
        raise InvalidInputError("page_token is not a token this server gave out.")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def warm_up(store: Store, page_size: int = 50) -> None:
    """Pay before serving what the first runs-table request would: building the filter parser's tables
    (0.1-0.3 s), the first database connection, compiling the page and count queries of a filtered page,
    and the statements that load a page of `page_size` runs.

    Searches for a run id no run has (`mlkeep.warm_up` is not a valid one) and loads runs no store holds,
    so the database answers from the runs' primary key at once, whatever the store holds.
    """
    search_page(store, LOCAL, "attributes.run_id = 'mlkeep.warm_up' and metrics.`mlkeep.warm_up` > 0",
                ["metrics.`mlkeep.warm_up` DESC"], 1, total=True)
    store.get_runs([f"mlkeep.warm_up.{i}" for i in range(page_size + 1)])
