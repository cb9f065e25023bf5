"""How many runs a search matches: one COUNT over the same compiled filter as `search_runs`.

A runs table says "1,234 runs" above its first page; counting must not load
runs, sort them or page through them, so it reuses the search compiler's
tests (`mlkeep.tracking.predicates`) and asks the database for the count alone.

Unlike a page, a count visits every match, so each comparison ANDed at the
top of the filter becomes `runs.id IN (runs whose metric/param/tag passes)`,
which the database answers from the (key, value) index, instead of a test
per run: the same runs (for the IN's column is never NULL), found from the
rare side.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, select

from mlkeep.metadata import Database
from mlkeep.metadata.tables import runs
from mlkeep.tracking.entities import LifecycleStage
from mlkeep.tracking.filters import And, Compare, Expr, parse_filter
from mlkeep.tracking.predicates import TABLES, experiment_ids, in_stage, value_test, where

__all__ = ["count_runs"]


def count_runs(db: Database, filter: str = "", *,  # noqa: A002 - the name `search_runs` uses
               experiments: Sequence[str] | None = None, stage: str | None = LifecycleStage.ACTIVE) -> int:
    """The number of runs `search_runs(db, filter, experiments=..., stage=...)` would return without a limit.

    A `LIMIT n` in the filter caps the count at n; `ORDER BY` does not change
    it. Raises as `search_runs` does: `FilterSyntaxError` for a malformed
    filter, `InvalidInputError` for a bad stage, `NotFoundError` for an
    unknown experiment.
    """
    query = parse_filter(filter or "")
    stmt = in_stage(select(func.count()).select_from(runs), stage)
    if query.where is not None:
        stmt = stmt.where(_narrowing(query.where, db.dialect))
    with db.connect() as conn:
        if experiments is not None:
            experiment: ColumnElement[str] = runs.c.experiment_id
            if db.dialect == "sqlite" and _narrows(query.where):
                # SQLite has no statistics, takes the experiment's index as the selective one, and tests every
                # run of the experiment; `|| ''` keeps it off that index, so it starts from the IN lists.
                experiment = experiment.concat("")
            stmt = stmt.where(experiment.in_(experiment_ids(conn, experiments)))
        total = int(conn.execute(stmt).scalar_one())
    return total if query.limit is None else min(total, query.limit)


def _narrowing(node: Expr, dialect: str) -> ColumnElement[bool]:
    """`where(node)`, with the comparisons ANDed at the top as IN over the key's (key, value) index."""
    if isinstance(node, And):
        return and_(*(_narrowing(i, dialect) for i in node.items))
    if isinstance(node, Compare) and node.key.kind in TABLES and node.op != "IS NULL":
        t = TABLES[node.key.kind]
        having = select(t.c.run_id).where(t.c.key == node.key.name)
        if node.op != "IS NOT NULL":  # a NaN metric (NULL) is present, though it passes no comparison
            having = having.where(value_test(t.c.value, node, dialect))
        return runs.c.id.in_(having)
    return where(node, dialect)


def _narrows(node: Expr | None) -> bool:
    """Whether `_narrowing` turns part of the filter into an IN list of runs."""
    if isinstance(node, And):
        return any(_narrows(i) for i in node.items)
    return isinstance(node, Compare) and node.key.kind in TABLES and node.op != "IS NULL"
