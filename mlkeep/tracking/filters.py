r"""The run filter language: text to a tiny AST, with errors that point at the mistake.

    metrics.acc > 0.9 and (params.model = 'rf' or params.model = 'svm') ORDER BY metrics.acc DESC LIMIT 10

A Lark LALR grammar parses the text into frozen dataclasses (`parse_filter`).
The AST knows nothing of SQL, so the search compiler, the REST server and the
MLflow-compatible layer share one parser. Keys accept MLflow's spellings too
(`attributes.run_name`, `metric.acc`).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Union

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from mlkeep.errors import FilterSyntaxError

__all__ = ["And", "Compare", "Key", "Not", "Or", "OrderKey", "Query", "parse_filter", "parse_order_by"]

Value = Union[str, int, float, bool]
PREFIXES = {"metrics": "metric", "metric": "metric", "params": "param", "param": "param", "tags": "tag",
            "tag": "tag", "attributes": "attribute", "attribute": "attribute", "attr": "attribute",
            "datasets": "dataset", "dataset": "dataset"}
# Attribute spellings (ours and MLflow's) -> canonical name; "experiment" is the experiment's name.
ATTRIBUTES = {"id": "id", "run_id": "id", "name": "name", "run_name": "name", "status": "status",
              "experiment": "experiment", "experiment_name": "experiment", "experiment_id": "experiment_id",
              "start_time": "start_time", "created": "start_time", "end_time": "end_time",
              "parent_run_id": "parent_run_id", "creator": "creator", "user_id": "creator",
              "lifecycle_stage": "lifecycle_stage"}
NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
# What a run's input datasets are searched by (MLflow's `datasets.*` keys): a run matches when any of its
# input datasets does. The context is how the run used the dataset (its lineage relation, e.g. "training").
DATASET_FIELDS = ("name", "digest", "context")


# -- the AST -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """What a predicate or a sort looks at: `kind` is metric, param, tag, attribute (canonical name) or
    dataset (one of `DATASET_FIELDS`, filters only)."""

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


@functools.lru_cache(maxsize=512)
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
        key = self.key(items[0])
        if key.kind == "dataset":  # a run has many datasets: no one value to sort it by
            raise self.fail(items[0], f"Cannot order runs by {items[0]}: a run may have several datasets")
        return OrderKey(key, items[1] is not None and items[1].lower() == "desc")

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
                            "tags., attributes. or datasets.")
        name = _unquote(rest) if rest[0] in "`\"" else rest
        if kind == "dataset":
            if name.lower() not in DATASET_FIELDS:
                raise self.fail(tok, f"Unknown dataset field {name!r}; runs are searched by "
                                f"{', '.join('datasets.' + f for f in DATASET_FIELDS)}", len(prefix) + 1)
            name = name.lower()
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
        if key.kind in ("attribute", "dataset") and not numeric and value.type != "STRING":
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
