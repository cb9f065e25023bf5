"""Run search: a parsed filter (`mlkeep.tracking.filters`) compiled to one SQL query, sorted and paged.

The filter's tests are `mlkeep.tracking.predicates`; this module adds the
order (runs lacking a sort key last either way) and the page. Only the page of
ids comes back from the database; `get_runs` loads those runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger, ColumnElement, Connection, Dialect, Select, and_, bindparam, func, literal, not_, select,
)

from mlkeep.errors import InvalidInputError
from mlkeep.metadata import Database
from mlkeep.metadata.statistics import refresh_in_background
from mlkeep.metadata.tables import experiments as experiments_table
from mlkeep.metadata.tables import runs
from mlkeep.tracking.entities import LifecycleStage, Run
from mlkeep.tracking.filters import And, Compare, Expr, Key, OrderKey, Query, parse_filter, parse_order_by
from mlkeep.tracking.predicates import TABLES, as_number, experiment_ids, in_stage, value_test, where
from mlkeep.tracking.runs import get_runs

__all__ = ["search_run_ids", "search_runs"]


def _sort_exprs(stmt: Select[Any], i: int, key: Key, dialect: str, present: bool,
                tests: Sequence[Compare] = ()) -> tuple[Select[Any], list[Any]]:
    """What sorts by `key`, and `stmt` joined to what it needs (inner join when only runs having it are wanted;
    `tests`, the filter's comparisons of that key, then apply to the joined value)."""
    e = experiments_table
    if key.kind == "attribute" and key.name == "experiment":
        return stmt, [select(e.c.name).where(e.c.id == runs.c.experiment_id).scalar_subquery()]
    if key.kind == "attribute":
        return stmt, [runs.c[key.name]]
    t = TABLES[key.kind].alias(f"sort_{i}")
    on = and_(t.c.run_id == runs.c.id, t.c.key == key.name)
    if present:
        stmt = stmt.join(t, on).where(t.c.value.is_not(None), *(value_test(t.c.value, c, dialect) for c in tests))
    else:
        stmt = stmt.outerjoin(t, on)
    # Params and tags: numbers in numeric order first, then the other values as text.
    return stmt, [t.c.value] if key.kind == "metric" else [as_number(t.c.value, dialect), t.c.value]


def _ordered(stmt: Select[Any], keys: Sequence[OrderKey], dialect: str, first_present: bool = False,
             first_tests: Sequence[Compare] = ()) -> Select[Any]:
    """ORDER BY the keys, runs lacking a key last either way; then newest first, then id."""
    terms = []
    for i, ok in enumerate(keys):
        stmt, exprs = _sort_exprs(stmt, i, ok.key, dialect, present=first_present and i == 0,
                                  tests=first_tests if i == 0 else ())
        for x in exprs:
            term = x.desc() if ok.descending else x.asc()
            # A plain DESC on an inner-joined metric lets SQLite and PostgreSQL walk the (key, value) index.
            terms.append(term if first_present and i == 0 and ok.key.kind == "metric" else term.nulls_last())
    return stmt.order_by(*terms, runs.c.start_time.desc(), runs.c.id)


@dataclass(frozen=True)
class _Plan:
    """The statements of one search, without its page: built and compiled once per filter, order, stage and
    experiments (`_plan`), as building them costs more than the database takes to answer a search of a few runs.

    Sorted by a metric, param or tag, `ordered` reads only the runs having the first key, in index order
    (which stops after `offset + limit` runs instead of sorting every run), then, only if the page is not
    full, `lacking` the runs without it: a LEFT JOIN would force the database to join and sort every run."""

    ordered: _Compiled
    lacking: _Compiled | None = None
    n_present: _Compiled | None = None  # how many runs have the first key


class _Compiled:
    """A statement compiled once, its filter's values bound, run on the driver's cursor.

    SQLAlchemy's per-execution work (cache key, parameters, result wrapping) cost more than SQLite
    took to find a page of runs. A paged statement takes its LIMIT and OFFSET as parameters.
    """

    __slots__ = ("sql", "values", "order")

    def __init__(self, stmt: Select[Any], dialect: Dialect, *, paged: bool) -> None:
        if paged:
            stmt = stmt.limit(bindparam("page_limit", 0, type_=BigInteger)).offset(
                bindparam("page_offset", 0, type_=BigInteger))
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql = str(compiled)
        self.values: dict[str, Any] = {}
        for name, value in compiled.params.items():
            bind = compiled.binds.get(name)
            process = bind.type.bind_processor(dialect) if bind is not None else None
            self.values[name] = process(value) if process is not None else value
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None

    def column(self, conn: Connection, limit: int | None = None, offset: int = 0) -> list[Any]:
        """The first column of the rows, in the caller's transaction."""
        values = {**self.values, "page_limit": _NO_LIMIT if limit is None else limit, "page_offset": offset}
        cur = conn.connection.cursor()
        try:
            cur.execute(self.sql, values if self.order is None else tuple(values[n] for n in self.order))
            return [row[0] for row in cur.fetchall()]
        finally:
            cur.close()


_NO_LIMIT = 2**62  # LIMIT takes no "all" that both SQLite and PostgreSQL read


@functools.lru_cache(maxsize=256)
def _plan(test: Expr | None, order: tuple[OrderKey, ...], stage: str | None,
          experiment_ids: tuple[str, ...] | None, dialect: Dialect) -> _Plan:
    name = dialect.name
    base = in_stage(select(runs.c.id), stage)
    if experiment_ids is not None:
        base = base.where(runs.c.experiment_id.in_(experiment_ids))
    if not order or order[0].key.kind == "attribute":
        return _Plan(_Compiled(_ordered(_filtered(base, test, name), order, name), dialect, paged=True))
    # The filter's comparisons of the first sort key test the joined value: the database can then walk
    # that key's index in order from the first passing value, whatever statistics it has.
    on_key, rest = _split(test, order[0].key)
    ordered = _ordered(_filtered(base, rest, name), order, name, first_present=True, first_tests=on_key)
    base = _filtered(base, test, name)
    has = _has_value(order[0].key)
    return _Plan(_Compiled(ordered, dialect, paged=True),
                 _Compiled(_ordered(base.where(not_(has)), order[1:], name), dialect, paged=True),
                 _Compiled(select(func.count()).select_from(base.where(has).subquery()), dialect, paged=False))


def _filtered(stmt: Select[Any], test: Expr | None, dialect: str) -> Select[Any]:
    return stmt if test is None else stmt.where(where(test, dialect))


def _split(test: Expr | None, key: Key) -> tuple[tuple[Compare, ...], Expr | None]:
    """The filter's top-level comparisons of `key`'s value (not IS [NOT] NULL), and the rest of it.

    A run has one value per key, so such a comparison holds for the run exactly when it holds for
    the value its sort joins."""
    items = test.items if isinstance(test, And) else () if test is None else (test,)
    on_key = tuple(c for c in items if isinstance(c, Compare) and c.key == key and not c.op.startswith("IS "))
    rest = tuple(c for c in items if c not in on_key)
    return on_key, None if not rest else rest[0] if len(rest) == 1 else And(rest)


def _page(conn: Connection, plan: _Plan, limit: int | None, offset: int) -> list[str]:
    """The ids of one page."""
    ids = plan.ordered.column(conn, limit, offset)
    if plan.lacking is not None and (limit is None or len(ids) < limit):
        skip = 0
        if offset and not ids:  # the page starts among the runs lacking the key: skip past those having it
            skip = max(0, offset - plan.n_present.column(conn)[0])  # type: ignore[union-attr]
        rest = None if limit is None else limit - len(ids)
        ids += plan.lacking.column(conn, rest, skip)
    return ids


def _has_value(key: Key) -> ColumnElement[bool]:
    t = TABLES[key.kind]
    row = select(literal(1)).where(t.c.run_id == runs.c.id, t.c.key == key.name, t.c.value.is_not(None))
    return row.correlate(runs).exists()


def search_runs(
    db: Database,
    filter: str = "",  # noqa: A002 - the name users know from MLflow
    *,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    experiments: Sequence[str] | None = None,
    stage: str | None = LifecycleStage.ACTIVE,
) -> list[Run]:
    """Runs matching `filter`, sorted, skipping `offset` and limited; the database returns only the page of ids.

    Deleted runs are hidden, as in MLflow: `stage="deleted"` finds only them, `stage=None` every run.

    `order_by` items look like "metrics.acc DESC"; the filter may instead end with
    `ORDER BY ... LIMIT n` (giving both orders is an error; with two limits the smaller wins).
    `experiments` restricts to experiments named or with these ids. Raises `FilterSyntaxError`
    for a malformed filter, `InvalidInputError` for a bad limit or order, `NotFoundError` for an
    unknown experiment.
    """
    found = search_run_ids(db, filter, order_by=order_by, limit=limit, offset=offset, experiments=experiments,
                           stage=stage)
    return get_runs(db, found)


def search_run_ids(
    db: Database,
    filter: str = "",  # noqa: A002 - the name users know from MLflow
    *,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    experiments: Sequence[str] | None = None,
    stage: str | None = LifecycleStage.ACTIVE,
) -> list[str]:
    """The ids of the runs `search_runs` finds, in its order: for callers that read runs their own way."""
    query = parse_filter(filter or "")
    order = _order_keys(query, order_by)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a whole number from 0, not {offset!r}.")
    # A LIMIT in the filter caps the whole result, of which this call reads from `offset` on.
    limit = _limit(None if query.limit is None else max(query.limit - offset, 0), limit)
    if limit == 0:
        return []
    refresh_in_background(db)
    with db.connect() as conn:
        ids = None if experiments is None else tuple(experiment_ids(conn, experiments))
        return _page(conn, _plan(query.where, order, stage, ids, db.engine.dialect), limit, offset)


def _order_keys(query: Query, order_by: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    items = [order_by] if isinstance(order_by, str) else list(order_by or [])
    given = tuple(k for item in items for k in parse_order_by(item))
    if given and query.order_by:
        raise InvalidInputError("Give the order either in the filter (ORDER BY ...) or as order_by, not both.")
    return given or query.order_by


def _limit(in_filter: int | None, given: int | None) -> int | None:
    if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 1):
        raise InvalidInputError(f"limit must be a positive integer, not {given!r}.")
    return min((n for n in (in_filter, given) if n is not None), default=None)
