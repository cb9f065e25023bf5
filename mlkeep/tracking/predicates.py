r"""The SQL conditions a run search is made of: the filter's tests, the lifecycle stage, the experiments.

`search_runs` (`mlkeep.tracking.search`) and `count_runs`
(`mlkeep.tracking.counting`) build their queries from these, so a page and
its count always mean the same runs.

Every test on a metric, param or tag is `runs.id IN (the run ids of the
rows passing it)` on its narrow table, read from its (key, value, run_id)
index; run ids are never NULL, so the logic stays two-valued: a run lacking a key matches no
comparison on it (as in MLflow), `IS NULL` matches exactly the runs lacking it,
and `NOT e` matches exactly the runs `e` does not. A NaN metric is stored as
NULL: it matches no comparison (not even `!=`) but counts as present for
`IS NULL`. Params and tags are text; compared with a number literal they
compare as numbers, and values that are not numbers then never match. LIKE is
case-sensitive on every database (GLOB on SQLite), ILIKE is not; `\_` and `\%`
match a literal _ or %. `datasets.name`, `datasets.digest` and `datasets.context`
look at the datasets linked into the run as inputs: a run matches when any of
them does.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    JSON, ColumnElement, Connection, Executable, Float, Select, and_, case, cast, func, literal, not_, or_, select,
)

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.metadata.id_lists import among, fetch, ids_value
from mlkeep.metadata.tables import datasets as datasets_table
from mlkeep.metadata.tables import experiments as experiments_table
from mlkeep.metadata.tables import latest_metrics, links, params, runs, tags
from mlkeep.tracking.entities import LifecycleStage
from mlkeep.tracking.filters import And, Compare, Expr, Not, Or, Value

__all__ = ["TABLES", "as_number", "dataset_digest", "experiment_ids", "in_stage", "value_test", "where"]

TABLES = {"metric": latest_metrics, "param": params, "tag": tags}
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
GLOB_WILDCARD = {"%": "*", "_": "?"}
GLOB_LITERAL = {"*": "[*]", "?": "[?]", "[": "[[]"}
NUMBER_RE = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


def where(node: Expr, dialect: str) -> ColumnElement[bool]:
    """The parsed filter's condition on a row of `runs` (correlated subqueries on the runs table)."""
    if isinstance(node, And):
        return and_(*(where(i, dialect) for i in node.items))
    if isinstance(node, Or):
        return or_(*(where(i, dialect) for i in node.items))
    if isinstance(node, Not):
        return not_(where(node.item, dialect))
    if node.key.kind == "attribute":
        return _attribute_test(node, dialect)
    if node.key.kind == "dataset":
        return _dataset_test(node, dialect)
    t = TABLES[node.key.kind]
    having = select(t.c.run_id).where(t.c.key == node.key.name)
    if node.op == "IS NULL":
        return runs.c.id.not_in(having)
    if node.op == "IS NOT NULL":
        return runs.c.id.in_(having)
    # The runs whose value passes, read from the (key, value, run_id) index, not a lookup per run searched.
    return runs.c.id.in_(having.where(value_test(t.c.value, node, dialect)))


def _attribute_test(node: Compare, dialect: str) -> ColumnElement[bool]:
    if node.key.name == "experiment":
        e = experiments_table
        row = select(literal(1)).where(e.c.id == runs.c.experiment_id, value_test(e.c.name, node, dialect))
        return row.correlate(runs).exists()
    col = runs.c[node.key.name]
    if node.op.startswith("IS "):
        return value_test(col, node, dialect)
    # Without the guard, NOT (end_time > x) would be NULL, not true, for a running run.
    return and_(col.is_not(None), value_test(col, node, dialect))


def _dataset_test(node: Compare, dialect: str) -> ColumnElement[bool]:
    """Whether any dataset linked into the run as an input passes the test (IS NULL: none has the field)."""
    d, link = datasets_table, links
    col = {"name": d.c.name, "digest": dataset_digest(dialect), "context": link.c.relation}[node.key.name]
    row = (select(literal(1)).select_from(link.join(d, d.c.id == link.c.src_id))
           .where(link.c.dst_id == runs.c.id, link.c.src_kind == "dataset", link.c.dst_kind == "run")
           .correlate(runs))
    if node.op == "IS NULL":
        return not_(row.where(col.is_not(None)).exists())
    return row.where(value_test(col, node, dialect)).exists()


def dataset_digest(dialect: str) -> ColumnElement[str]:
    """A dataset's digest: the one its source gave it (a document's "digest", e.g. MLflow's), else its fingerprint."""
    doc = datasets_table.c.document
    given = (func.json_extract(doc, "$.digest") if dialect == "sqlite"
             else cast(doc, JSON)["digest"].as_string())
    return func.coalesce(given, datasets_table.c.fingerprint)  # type: ignore[no-any-return]


def value_test(col: Any, node: Compare, dialect: str) -> ColumnElement[bool]:
    """The comparison `node` makes, applied to `col` (a metric, param or tag value, or an attribute)."""
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
        return as_number(col, dialect), float(value)
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


def as_number(col: Any, dialect: str) -> Any:
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


def in_stage(stmt: Select[Any], stage: str | None) -> Select[Any]:
    """`stmt` kept to runs in the lifecycle `stage` (None: every run); `InvalidInputError` for an unknown stage."""
    if stage is None:
        return stmt
    if stage not in LifecycleStage.ALL:
        raise InvalidInputError(f"stage must be one of {', '.join(LifecycleStage.ALL)} or None, not {stage!r}.")
    return stmt.where(runs.c.lifecycle_stage == stage)


def experiment_ids(conn: Connection, names_or_ids: Sequence[str]) -> list[str]:
    """The ids of experiments given by name or id; `NotFoundError` naming the first unknown one."""
    wanted = [names_or_ids] if isinstance(names_or_ids, str) else list(names_or_ids)
    rows = fetch(conn, _named_experiments, ids_value(conn.dialect.name, wanted))
    known = {id_ for id_, _ in rows} | {name for _, name in rows}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise NotFoundError(f"No experiment named or with id {missing[0]!r}. List them with `mlkeep experiments`.")
    return [id_ for id_, _ in rows]


def _named_experiments(dialect: str) -> tuple[Executable, Sequence[str]]:
    """Experiments whose name or id is among `ids`: compiled once, as every search asks it."""
    e = experiments_table
    return select(e.c.id, e.c.name).where(or_(among(e.c.name, dialect), among(e.c.id, dialect))), ["ids"]
