r"""Run search: a small filter language compiled to one SQL query.

    metrics.acc > 0.9 and (params.model = 'rf' or params.model = 'svm') ORDER BY metrics.acc DESC LIMIT 10

A Lark LALR grammar parses the text into a tiny AST of frozen dataclasses
(`parse_filter`, reusable by the REST server and an MLflow-compatible layer),
which is then compiled to SQLAlchemy Core. Every predicate on a metric, param
or tag is an EXISTS on its narrow indexed table, which keeps the logic
two-valued: a run lacking a key matches no comparison on it (as in MLflow),
`IS NULL` matches exactly the runs lacking it, and `NOT e` matches exactly the
runs `e` does not. A NaN metric is stored as NULL: it matches no comparison
(not even `!=`) but counts as present for `IS NULL`. Params and tags are text;
compared with a number literal they compare as numbers, and values that are
not numbers then never match. LIKE is case-sensitive on every database (GLOB
on SQLite), ILIKE is not; `\_` and `\%` match a literal _ or %.

Only the page of ids comes back from the database; `get_runs` loads those runs.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError
from sqlalchemy import ColumnElement, Connection, Float, Select, and_, case, cast, func, literal, not_, or_, select

from mlkeep.errors import FilterSyntaxError, InvalidInputError, NotFoundError
from mlkeep.metadata import Database
from mlkeep.metadata.tables import experiments as experiments_table
from mlkeep.metadata.tables import latest_metrics, params, runs, tags
from mlkeep.tracking.entities import Run
from mlkeep.tracking.runs import get_runs

__all__ = ["And", "Compare", "Key", "Not", "Or", "OrderKey", "Query", "parse_filter", "parse_order_by", "search_runs"]

Value = Union[str, int, float, bool]
PREFIXES = {"metrics": "metric", "metric": "metric", "params": "param", "param": "param", "tags": "tag",
            "tag": "tag", "attributes": "attribute", "attribute": "attribute", "attr": "attribute"}
# Attribute spellings (ours and MLflow's) -> canonical name; "experiment" is the experiment's name.
ATTRIBUTES = {"id": "id", "run_id": "id", "name": "name", "run_name": "name", "status": "status",
              "experiment": "experiment", "experiment_name": "experiment", "experiment_id": "experiment_id",
              "start_time": "start_time", "created": "start_time", "end_time": "end_time",
              "parent_run_id": "parent_run_id", "creator": "creator", "user_id": "creator"}
NUMERIC_ATTRIBUTES = {"start_time", "end_time"}


# -- the AST -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """What a predicate or a sort looks at: `kind` is metric, param, tag or attribute (canonical name)."""

    kind: str
    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Compare:
    """`key op value`; op is =, !=, <, <=, >, >=, [NOT] IN (value a tuple), [NOT] [I]LIKE or IS [NOT] NULL."""

    key: Key
    op: str
    value: Value | tuple[Value, ...] | None = None


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Union[Compare, And, Or, Not]


@dataclass(frozen=True)
class OrderKey:
    key: Key
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed filter: its predicate (None matches every run), ORDER BY keys and LIMIT."""

    where: Expr | None = None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None


# -- parsing ---------------------------------------------------------------------------------
GRAMMAR = r"""
query: [or_expr] [_ORDER _BY order_list] [_LIMIT NUMBER]
order_list: order_item ("," order_item)*
order_item: FIELD [DIRECTION]
?or_expr: and_expr | or_expr _OR and_expr -> or_
?and_expr: not_expr | and_expr _AND not_expr -> and_
?not_expr: NOT not_expr -> not_ | atom
?atom: predicate | "(" or_expr ")"
predicate: FIELD CMP value                      -> compare
         | FIELD [NOT] IN LPAR [values] RPAR      -> in_
         | FIELD [NOT] (LIKE | ILIKE) value       -> like
         | FIELD IS [NOT] NULL                    -> null
values: value ("," value)* ","?
?value: STRING | NUMBER | TRUE | FALSE

_OR.2: /or\b/i
_AND.2: /and\b/i
NOT.2: /not\b/i
IN.2: /in\b/i
LIKE.2: /like\b/i
ILIKE.2: /ilike\b/i
IS.2: /is\b/i
NULL.2: /null\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
_ORDER.2: /order\b/i
_BY.2: /by\b/i
_LIMIT.2: /limit\b/i
DIRECTION.2: /(asc|desc)\b/i
CMP: /==|!=|<>|<=|>=|=|<|>/
LPAR: "("
RPAR: ")"
_KEY_PART: /[\w\-\/]+/
FIELD: /[A-Za-z_]\w*/ ("." (_KEY_PART ("." _KEY_PART)* | /`[^`]*`/ | /"(?:[^"\\]|\\.)*"/))?
STRING: /'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"/
NUMBER: /[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/
%ignore /\s+/
"""

# What lark's terminal names mean to someone typing a filter, in the order we list them.
EXPECTED = [
    ({"CMP", "IN", "LIKE", "ILIKE", "IS"}, "a comparison operator such as =, !=, <, >=, IN, LIKE, IS NULL"),
    ({"FIELD"}, "a key (like metrics.acc, params.lr or status)"),
    ({"STRING", "NUMBER"}, "a value (a number or a quoted string)"),
    ({"NOT"}, "NOT"),
    ({"LPAR"}, "'('"),
    ({"NULL"}, "NULL"),
    ({"_AND"}, "AND"),
    ({"_OR"}, "OR"),
    ({"RPAR"}, "')'"),
    ({"COMMA"}, "','"),
    ({"_BY"}, "BY"),
    ({"DIRECTION"}, "ASC or DESC"),
    ({"_ORDER"}, "ORDER BY"),
    ({"_LIMIT"}, "LIMIT"),
    ({"$END"}, "the end of the filter"),
]


@functools.cache
def _parser() -> Lark:
    """Built on first use: making the LALR tables costs tens of milliseconds."""
    return Lark(GRAMMAR, start=["query", "order_list"], parser="lalr", lexer="basic", maybe_placeholders=True)


@functools.lru_cache(maxsize=512)
def parse_filter(text: str) -> Query:
    """Parse a filter with its optional trailing ORDER BY and LIMIT; raises `FilterSyntaxError`."""
    return _parse(text, "query")  # type: ignore[no-any-return]


def parse_order_by(text: str) -> tuple[OrderKey, ...]:
    """Parse an `order_by=` item such as `metrics.acc DESC, params.lr`; raises `FilterSyntaxError`."""
    return _parse(text, "order_list")  # type: ignore[no-any-return]


def _parse(text: str, start: str) -> Any:
    if not text.strip():
        return Query() if start == "query" else ()
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as e:
        raise _syntax_error(text, e) from None
    try:
        return _ToAst(text).transform(tree)
    except VisitError as e:  # our FilterSyntaxError, raised while building the AST, arrives wrapped
        raise e.orig_exc from None


def _error(text: str, position: int, message: str) -> FilterSyntaxError:
    """A sentence naming the 0-based column, then the filter with a caret under the mistake."""
    return FilterSyntaxError(f"{message} (column {position}):\n  {text}\n  {' ' * position}^", position)


def _syntax_error(text: str, e: UnexpectedInput) -> FilterSyntaxError:
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream or 0
        char = text[pos]
        if char in "'\"`":
            return _error(text, pos, f"The quote {char} opened here is never closed")
        return _error(text, pos, f"Unexpected character {char!r}: join conditions with AND, OR, NOT and quote text")
    assert isinstance(e, UnexpectedToken)
    at_end = e.token.type == "$END"
    pos = len(text.rstrip()) if at_end else e.token.start_pos or 0
    before = _token_before(text, pos)
    where = f" after {before!r}" if before else ""
    found = "the filter ends" if at_end else f"found {e.token.value!r}"
    # LALR merges lookaheads, so e.expected can hold tokens that would fail a step later: ask the parser.
    expected = e.interactive_parser.accepts() if e.interactive_parser else e.expected
    return _error(text, pos, f"Expected {_describe(expected)}{where}, but {found}")


def _describe(expected: set[str]) -> str:
    # A ')' or the end may have reduced "a AND b" to an OR operand already; AND still fits wherever OR does.
    expected = set(expected) | ({"_AND"} if "_OR" in expected else set())
    if "CMP" in expected:  # NOT here means NOT IN or NOT LIKE: the operator phrase covers it
        expected.discard("NOT")
    phrases = [words for names, words in EXPECTED if names & expected] or ["something else"]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _token_before(text: str, pos: int) -> str | None:
    """The last token before `pos`: what the parser wanted something after."""
    last = None
    try:
        for tok in _parser().lex(text):
            if (tok.start_pos or 0) >= pos:
                break
            last = str(tok)
    except UnexpectedInput:
        pass
    return last


def _unquote(s: str) -> str:
    """The text inside quotes; backslash-quote, double backslash and doubled quotes unescaped.

    Other backslashes stay, so `\\_` and `\\%` reach a LIKE pattern still escaped."""
    q, body = s[0], s[1:-1]
    if q == "`":
        return body
    return re.sub(r"\\([\\'\"])|" + q + q, lambda m: m.group(1) or q, body)


class _ToAst(Transformer[Token, Any]):
    """Parse tree -> AST, checking what the grammar cannot (names, value types) with positions."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def fail(self, at: Token, message: str, offset: int = 0) -> FilterSyntaxError:
        return _error(self.text, (at.start_pos or 0) + offset, message)

    def query(self, items: list[Any]) -> Query:
        where, order, limit = items
        return Query(where, order or (), None if limit is None else self.positive(limit))

    def positive(self, tok: Token) -> int:
        if not re.fullmatch(r"\+?\d+", tok) or int(tok) < 1:
            raise self.fail(tok, f"LIMIT must be a positive integer, not {tok}")
        return int(tok)

    def order_list(self, items: list[OrderKey]) -> tuple[OrderKey, ...]:
        return tuple(items)

    def order_item(self, items: list[Any]) -> OrderKey:
        return OrderKey(self.key(items[0]), items[1] is not None and items[1].lower() == "desc")

    def or_(self, items: list[Expr]) -> Or:
        return Or(tuple(i for item in items for i in (item.items if isinstance(item, Or) else (item,))))

    def and_(self, items: list[Expr]) -> And:
        return And(tuple(i for item in items for i in (item.items if isinstance(item, And) else (item,))))

    def not_(self, items: list[Any]) -> Not:
        return Not(items[1])

    def compare(self, items: list[Any]) -> Compare:
        field_, op, value = items
        key = self.key(field_)
        self.check_type(key, value)
        return Compare(key, {"==": "=", "<>": "!="}.get(op, str(op)), _literal(value))

    def in_(self, items: list[Any]) -> Compare:
        field_, negated, _, lpar, values, _ = items
        key = self.key(field_)
        if not values:
            raise self.fail(lpar, "IN needs at least one value, as in IN ('a', 'b')")
        for value in values:
            self.check_type(key, value)
        return Compare(key, "NOT IN" if negated else "IN", tuple(_literal(v) for v in values))

    def values(self, items: list[Token]) -> list[Token]:
        return items

    def like(self, items: list[Any]) -> Compare:
        field_, negated, op, value = items
        key = self.key(field_)
        if key.kind == "metric" or key.name in NUMERIC_ATTRIBUTES and key.kind == "attribute":
            raise self.fail(op, f"{op.upper()} compares text; {field_} is a number: use =, < or >")
        if value.type != "STRING":
            raise self.fail(value, f"{op.upper()} needs a quoted pattern such as 'rf%', not {value}")
        return Compare(key, ("NOT " if negated else "") + op.upper(), _literal(value))

    def null(self, items: list[Any]) -> Compare:
        return Compare(self.key(items[0]), "IS NOT NULL" if items[2] else "IS NULL")

    def key(self, tok: Token) -> Key:
        prefix, dot, rest = str(tok).partition(".")
        if not dot:
            if prefix.lower() in ATTRIBUTES:
                return Key("attribute", ATTRIBUTES[prefix.lower()], tok.start_pos or 0)
            raise self.fail(tok, f"Unknown key {prefix!r}: write metrics.{prefix}, params.{prefix} or "
                            f"tags.{prefix}, or use an attribute ({', '.join(ATTRIBUTES)})")
        kind = PREFIXES.get(prefix.lower())
        if kind is None:
            raise self.fail(tok, f"Unknown prefix {prefix!r}: a key starts with metrics., params., "
                            "tags. or attributes.")
        name = _unquote(rest) if rest[0] in "`\"" else rest
        if kind == "attribute":
            if name.lower() not in ATTRIBUTES:
                known = ", ".join(ATTRIBUTES)
                raise self.fail(tok, f"Unknown attribute {name!r}; attributes are {known}", len(prefix) + 1)
            name = ATTRIBUTES[name.lower()]
        return Key(kind, name, tok.start_pos or 0)

    def check_type(self, key: Key, value: Token) -> None:
        """Metrics and times are numbers, other attributes text; params and tags take either."""
        numeric = key.kind == "metric" or key.kind == "attribute" and key.name in NUMERIC_ATTRIBUTES
        if numeric and value.type == "STRING":
            raise self.fail(value, f"{_show(key)} is a number: compare it with a number, not {value}")
        if key.kind == "attribute" and not numeric and value.type != "STRING":
            raise self.fail(value, f"{_show(key)} is text: quote the value, as in '{value}'")
        if key.kind == "attribute" and value.type in ("TRUE", "FALSE"):
            raise self.fail(value, f"{_show(key)} is a time in milliseconds, not {value}")


def _show(key: Key) -> str:
    return f"{'attributes' if key.kind == 'attribute' else key.kind + 's'}.{key.name}"


def _literal(tok: Token) -> Value:
    if tok.type == "STRING":
        return _unquote(tok)
    if tok.type in ("TRUE", "FALSE"):
        return tok.type == "TRUE"
    return int(tok) if re.fullmatch(r"[+-]?\d+", tok) else float(tok)


# -- compiling to SQL ------------------------------------------------------------------------
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


def _page(conn: Connection, base: Select[Any], order: Sequence[OrderKey], limit: int | None, dialect: str) -> list[str]:
    """The ids of one page. Sorting by a metric, param or tag, first the runs having it (read in index
    order, which stops after `limit` runs instead of sorting every run), then, only if the page is not
    full, the runs lacking it: a LEFT JOIN would force the database to join and sort every run."""
    if not order or order[0].key.kind == "attribute":
        return list(conn.execute(_ordered(base, order, dialect).limit(limit)).scalars())
    ids = list(conn.execute(_ordered(base, order, dialect, first_present=True).limit(limit)).scalars())
    if limit is None or len(ids) < limit:
        lacking = base.where(not_(_has_value(order[0].key)))
        rest = None if limit is None else limit - len(ids)
        ids += conn.execute(_ordered(lacking, order[1:], dialect).limit(rest)).scalars()
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
    experiments: Sequence[str] | None = None,
) -> list[Run]:
    """Runs matching `filter`, sorted and limited; the database returns only the page of ids.

    `order_by` items look like "metrics.acc DESC"; the filter may instead end with
    `ORDER BY ... LIMIT n` (giving both orders is an error; with two limits the smaller wins).
    `experiments` restricts to experiments named or with these ids. Raises `FilterSyntaxError`
    for a malformed filter, `InvalidInputError` for a bad limit or order, `NotFoundError` for an
    unknown experiment.
    """
    query = parse_filter(filter or "")
    order = _order_keys(query, order_by)
    limit = _limit(query.limit, limit)
    base = select(runs.c.id)
    if query.where is not None:
        base = base.where(_where(query.where, db.dialect))
    with db.connect() as conn:
        if experiments is not None:
            base = base.where(runs.c.experiment_id.in_(_experiment_ids(conn, experiments)))
        ids = _page(conn, base, order, limit, db.dialect)
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
