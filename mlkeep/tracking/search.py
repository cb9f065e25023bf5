r"""Run search: a parsed filter (`mlkeep.tracking.filters`) compiled to one SQL query.

Every predicate on a metric, param or tag is an EXISTS on its narrow indexed
table, which keeps the logic two-valued: a run lacking a key matches no
comparison on it (as in MLflow), `IS NULL` matches exactly the runs lacking it,
and `NOT e` matches exactly the runs `e` does not. A NaN metric is stored as
NULL: it matches no comparison (not even `!=`) but counts as present for
`IS NULL`. Params and tags are text; compared with a number literal they
compare as numbers, and values that are not numbers then never match. LIKE is
case-sensitive on every database (GLOB on SQLite), ILIKE is not; `\_` and `\%`
match a literal _ or %. `datasets.name`, `datasets.digest` and `datasets.context`
look at the datasets linked into the run as inputs: a run matches when any of
them does.

Only the page of ids comes back from the database; `get_runs` loads those runs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    JSON, ColumnElement, Connection, Float, Select, and_, case, cast, func, literal, not_, or_, select,
)

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.metadata import Database
from mlkeep.metadata.tables import experiments as experiments_table
from mlkeep.metadata.tables import datasets as datasets_table
from mlkeep.metadata.tables import latest_metrics, links, params, runs, tags
from mlkeep.tracking.entities import LifecycleStage, Run
from mlkeep.tracking.filters import (
    And, Compare, Expr, Key, Not, Or, OrderKey, Query, Value, parse_filter, parse_order_by,
)
from mlkeep.tracking.runs import get_runs

__all__ = ["dataset_digest", "search_runs"]

TABLES = {"metric": latest_metrics, "param": params, "tag": tags}
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
GLOB_WILDCARD = {"%": "*", "_": "?"}
GLOB_LITERAL = {"*": "[*]", "?": "[?]", "[": "[[]"}
NUMBER_RE = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


def _where(node: Expr, dialect: str) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_where(i, dialect) for i in node.items))
    if isinstance(node, Or):
        return or_(*(_where(i, dialect) for i in node.items))
    if isinstance(node, Not):
        return not_(_where(node.item, dialect))
    if node.key.kind == "attribute":
        return _attribute_test(node, dialect)
    if node.key.kind == "dataset":
        return _dataset_test(node, dialect)
    t = TABLES[node.key.kind]
    row = select(literal(1)).select_from(t).where(t.c.run_id == runs.c.id, t.c.key == node.key.name).correlate(runs)
    if node.op == "IS NULL":
        return not_(row.exists())
    if node.op == "IS NOT NULL":
        return row.exists()
    return row.where(_value_test(t.c.value, node, dialect)).exists()


def _attribute_test(node: Compare, dialect: str) -> ColumnElement[bool]:
    if node.key.name == "experiment":
        e = experiments_table
        row = select(literal(1)).where(e.c.id == runs.c.experiment_id, _value_test(e.c.name, node, dialect))
        return row.correlate(runs).exists()
    col = runs.c[node.key.name]
    if node.op.startswith("IS "):
        return _value_test(col, node, dialect)
    # Without the guard, NOT (end_time > x) would be NULL, not true, for a running run.
    return and_(col.is_not(None), _value_test(col, node, dialect))


def _dataset_test(node: Compare, dialect: str) -> ColumnElement[bool]:
    """Whether any dataset linked into the run as an input passes the test (IS NULL: none has the field)."""
    d, link = datasets_table, links
    col = {"name": d.c.name, "digest": dataset_digest(dialect), "context": link.c.relation}[node.key.name]
    row = (select(literal(1)).select_from(link.join(d, d.c.id == link.c.src_id))
           .where(link.c.dst_id == runs.c.id, link.c.src_kind == "dataset", link.c.dst_kind == "run")
           .correlate(runs))
    if node.op == "IS NULL":
        return not_(row.where(col.is_not(None)).exists())
    return row.where(_value_test(col, node, dialect)).exists()


def dataset_digest(dialect: str) -> ColumnElement[str]:
    """A dataset's digest: the one its source gave it (a document's "digest", e.g. MLflow's), else its fingerprint."""
    doc = datasets_table.c.document
    given = (func.json_extract(doc, "$.digest") if dialect == "sqlite"
             else cast(doc, JSON)["digest"].as_string())
    return func.coalesce(given, datasets_table.c.fingerprint)  # type: ignore[no-any-return]


def _value_test(col: Any, node: Compare, dialect: str) -> ColumnElement[bool]:
    op, value = node.op, node.value
    if op in ("IS NULL", "IS NOT NULL"):
        return col.is_(None) if op == "IS NULL" else col.is_not(None)
    if op in ("IN", "NOT IN"):
        assert isinstance(value, tuple)
        test = _in(col, node.key.kind, value, dialect)
        return not_(test) if op == "NOT IN" else test
    assert isinstance(value, (str, int, float))
    if op.endswith("LIKE"):
        test = col.ilike(value, escape="\\") if "ILIKE" in op else _like(col, str(value), dialect)
        return not_(test) if op.startswith("NOT") else test
    lhs, rhs = _operands(col, node.key.kind, value, dialect)
    return OPS[op](lhs, rhs)  # type: ignore[no-any-return]


def _operands(col: Any, kind: str, value: Value, dialect: str) -> tuple[Any, Any]:
    """What to compare: text compared with a number compares as a number, with a bool as 'true'/'false'."""
    if isinstance(value, bool):
        return (col, float(value)) if kind == "metric" else (func.lower(col), str(value).lower())
    if isinstance(value, (int, float)) and kind in ("param", "tag"):
        return _as_number(col, dialect), float(value)
    return col, value


def _in(col: Any, kind: str, values: tuple[Value, ...], dialect: str) -> ColumnElement[bool]:
    groups: dict[str, list[Value]] = {}
    for v in values:
        kind_of_value = "bool" if isinstance(v, bool) else "text" if isinstance(v, str) else "number"
        groups.setdefault(kind_of_value, []).append(v)
    tests = []
    for group in groups.values():
        lhs = _operands(col, kind, group[0], dialect)[0]
        tests.append(lhs.in_([_operands(col, kind, v, dialect)[1] for v in group]))
    return or_(*tests)


def _as_number(col: Any, dialect: str) -> Any:
    """The text as a float, or NULL when it is not a number (a bare CAST errors on PostgreSQL, gives 0 on SQLite)."""
    if dialect == "sqlite":  # json_valid/json_type are native (REGEXP would call back into Python per row)
        is_number = func.json_type(col).in_(["integer", "real"])
        return case((func.json_valid(col) == 1, case((is_number, cast(col, Float)))))
    return case((col.regexp_match(NUMBER_RE), cast(col, Float)))


def _like(col: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive LIKE everywhere: SQLite's LIKE ignores case, so use GLOB there."""
    if dialect != "sqlite":
        return col.like(pattern, escape="\\")  # type: ignore[no-any-return]
    out = []
    for part in re.findall(r"\\.|.", pattern, re.S):
        if len(part) == 2:  # backslash-escaped: the character itself
            out.append(GLOB_LITERAL.get(part[1], part[1]))
        else:
            out.append(GLOB_WILDCARD.get(part) or GLOB_LITERAL.get(part, part))
    converted = "".join(out)
    return col.op("GLOB", is_comparison=True)(converted)  # type: ignore[no-any-return]


def _sort_exprs(stmt: Select[Any], i: int, key: Key, dialect: str, present: bool) -> tuple[Select[Any], list[Any]]:
    """What sorts by `key`, and `stmt` joined to what it needs (inner join when only runs having it are wanted)."""
    e = experiments_table
    if key.kind == "attribute" and key.name == "experiment":
        return stmt, [select(e.c.name).where(e.c.id == runs.c.experiment_id).scalar_subquery()]
    if key.kind == "attribute":
        return stmt, [runs.c[key.name]]
    t = TABLES[key.kind].alias(f"sort_{i}")
    on = and_(t.c.run_id == runs.c.id, t.c.key == key.name)
    stmt = stmt.join(t, on).where(t.c.value.is_not(None)) if present else stmt.outerjoin(t, on)
    # Params and tags: numbers in numeric order first, then the other values as text.
    return stmt, [t.c.value] if key.kind == "metric" else [_as_number(t.c.value, dialect), t.c.value]


def _ordered(stmt: Select[Any], keys: Sequence[OrderKey], dialect: str, first_present: bool = False) -> Select[Any]:
    """ORDER BY the keys, runs lacking a key last either way; then newest first, then id."""
    terms = []
    for i, ok in enumerate(keys):
        stmt, exprs = _sort_exprs(stmt, i, ok.key, dialect, present=first_present and i == 0)
        for x in exprs:
            term = x.desc() if ok.descending else x.asc()
            # A plain DESC on an inner-joined metric lets SQLite and PostgreSQL walk the (key, value) index.
            terms.append(term if first_present and i == 0 and ok.key.kind == "metric" else term.nulls_last())
    return stmt.order_by(*terms, runs.c.start_time.desc(), runs.c.id)


def _page(conn: Connection, base: Select[Any], order: Sequence[OrderKey], limit: int | None, offset: int,
          dialect: str) -> list[str]:
    """The ids of one page. Sorting by a metric, param or tag, first the runs having it (read in index
    order, which stops after `offset + limit` runs instead of sorting every run), then, only if the page
    is not full, the runs lacking it: a LEFT JOIN would force the database to join and sort every run."""
    if not order or order[0].key.kind == "attribute":
        return list(conn.execute(_ordered(base, order, dialect).limit(limit).offset(offset or None)).scalars())
    present = _ordered(base, order, dialect, first_present=True)
    ids = list(conn.execute(present.limit(limit).offset(offset or None)).scalars())
    if limit is None or len(ids) < limit:
        skip = 0
        if offset and not ids:  # the page starts among the runs lacking the key: skip past those having it
            having = select(func.count()).select_from(base.where(_has_value(order[0].key)).subquery())
            skip = max(0, offset - conn.execute(having).scalar_one())
        lacking = base.where(not_(_has_value(order[0].key)))
        rest = None if limit is None else limit - len(ids)
        ids += conn.execute(_ordered(lacking, order[1:], dialect).limit(rest).offset(skip or None)).scalars()
    return ids


def _has_value(key: Key) -> ColumnElement[bool]:
    t = TABLES[key.kind]
    row = select(literal(1)).where(t.c.run_id == runs.c.id, t.c.key == key.name, t.c.value.is_not(None))
    return row.correlate(runs).exists()


def in_stage(stmt: Select[Any], stage: str | None) -> Select[Any]:
    """`stmt` kept to runs in the lifecycle `stage` (None: every run); `InvalidInputError` for an unknown stage."""
    if stage is None:
        return stmt
    if stage not in LifecycleStage.ALL:
        raise InvalidInputError(f"stage must be one of {', '.join(LifecycleStage.ALL)} or None, not {stage!r}.")
    return stmt.where(runs.c.lifecycle_stage == stage)


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
    query = parse_filter(filter or "")
    order = _order_keys(query, order_by)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a whole number from 0, not {offset!r}.")
    # A LIMIT in the filter caps the whole result, of which this call reads from `offset` on.
    limit = _limit(None if query.limit is None else max(query.limit - offset, 0), limit)
    if limit == 0:
        return []
    base = in_stage(select(runs.c.id), stage)
    if query.where is not None:
        base = base.where(_where(query.where, db.dialect))
    with db.connect() as conn:
        if experiments is not None:
            base = base.where(runs.c.experiment_id.in_(_experiment_ids(conn, experiments)))
        ids = _page(conn, base, order, limit, offset, db.dialect)
    return get_runs(db, ids)


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


def _experiment_ids(conn: Connection, names_or_ids: Sequence[str]) -> list[str]:
    wanted = [names_or_ids] if isinstance(names_or_ids, str) else list(names_or_ids)
    e = experiments_table
    rows = conn.execute(select(e.c.id, e.c.name).where(or_(e.c.name.in_(wanted), e.c.id.in_(wanted)))).all()
    known = {r.id for r in rows} | {r.name for r in rows}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise NotFoundError(f"No experiment named or with id {missing[0]!r}. List them with `mlkeep experiments`.")
    return [r.id for r in rows]
