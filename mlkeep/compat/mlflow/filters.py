"""MLflow's search syntax in mlkeep's terms: run filters, order_by, view types, experiment filters, pages.

mlkeep's filter language was made to read MLflow's (`metrics.acc > 0.9 and
params.model = 'rf'`, `attributes.run_name`, backquoted keys, LIKE, ILIKE,
IN, `datasets.name/digest/context`), so a run filter passes through as it is;
what differs is added here: MLflow's view type becomes `search_runs(stage=...)`,
experiment filters (name, id, tags) are parsed by the same parser and matched
here, and page tokens hold an offset.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlkeep.compat.mlflow.messages import experiment_tags
from mlkeep.errors import FilterSyntaxError, InvalidInputError, UnsupportedError
from mlkeep.tracking.entities import Experiment, LifecycleStage
from mlkeep.tracking.filters import And, Expr, Not, Or, parse_filter

T = TypeVar("T")

# MLflow's ViewType, by name or number, as the lifecycle stage it keeps (None: every stage).
VIEW_TYPES: dict[str, str | None] = {
    "ACTIVE_ONLY": LifecycleStage.ACTIVE, "1": LifecycleStage.ACTIVE,
    "DELETED_ONLY": LifecycleStage.DELETED, "2": LifecycleStage.DELETED,
    "ALL": None, "3": None,
}


def view_stage(view_type: Any) -> str | None:
    """The lifecycle stage a view type keeps; ACTIVE_ONLY when none is given."""
    if view_type in (None, ""):
        return LifecycleStage.ACTIVE
    key = str(view_type).upper()
    if key not in VIEW_TYPES:
        raise InvalidInputError(f"view type must be ACTIVE_ONLY, DELETED_ONLY or ALL, not {view_type!r}.")
    return VIEW_TYPES[key]


def run_filter(filter_string: str | None) -> str:
    """The mlkeep filter for an MLflow `search_runs` filter (the view type becomes `stage=`)."""
    return (filter_string or "").strip()


def order_by(items: Sequence[str] | None) -> list[str]:
    """MLflow order_by items ("metrics.acc DESC", "start_time") are mlkeep's as they are; blanks dropped."""
    return [item.strip() for item in items or [] if item and item.strip()]


# -- experiments: the run filter's parser; the few experiments of a store are matched here ------------
_EXPERIMENT_ATTRIBUTES = {"name": "name", "id": "id", "experiment_id": "id"}
_EXPERIMENT_ORDER = {"name": "name", "creation_time": "creation_time", "last_update_time": "creation_time",
                     "experiment_id": "id"}


def experiment_filter(filter_string: str | None) -> Callable[[Experiment], bool]:
    """A predicate for MLflow's experiment filter: `name`, `experiment_id` and `tags.KEY`, compared with
    =, !=, [NOT] IN, [NOT] [I]LIKE or IS [NOT] NULL, joined by AND (and OR, NOT, parentheses)."""
    query = parse_filter(filter_string or "")
    if query.order_by or query.limit is not None:
        raise UnsupportedError("An experiment filter has no ORDER BY or LIMIT: pass order_by and max_results.")
    where = query.where
    if where is None:
        return lambda e: True
    _check_experiment_keys(where)
    return lambda e: _matches(where, e)


def _check_experiment_keys(expr: Expr) -> None:
    if isinstance(expr, (And, Or)):
        for item in expr.items:
            _check_experiment_keys(item)
    elif isinstance(expr, Not):
        _check_experiment_keys(expr.item)
    elif not (expr.key.kind == "tag" or expr.key.kind == "attribute" and expr.key.name in _EXPERIMENT_ATTRIBUTES):
        raise UnsupportedError(f"mlkeep's MLflow API filters experiments by name, experiment_id and tags.KEY, "
                               f"not {expr.key.kind} {expr.key.name!r}.")
    elif expr.op in ("<", "<=", ">", ">="):
        raise UnsupportedError(f"Experiment names and tags compare with =, !=, IN, LIKE or ILIKE, not {expr.op}.")


def _matches(expr: Expr, e: Experiment) -> bool:
    if isinstance(expr, And):
        return all(_matches(item, e) for item in expr.items)
    if isinstance(expr, Or):
        return any(_matches(item, e) for item in expr.items)
    if isinstance(expr, Not):
        return not _matches(expr.item, e)
    key = expr.key
    have = experiment_tags(e).get(key.name) if key.kind == "tag" else getattr(e, _EXPERIMENT_ATTRIBUTES[key.name])
    if expr.op in ("IS NULL", "IS NOT NULL"):
        return (have is None) == (expr.op == "IS NULL")
    if have is None:  # as in MLflow's SQL: a missing tag matches no comparison, not even !=
        return False
    negated, op = expr.op.startswith("NOT "), expr.op.removeprefix("NOT ")
    if op == "=":
        found = have == str(expr.value)
    elif op == "!=":
        found = have != str(expr.value)
    elif op == "IN":
        found = have in {str(v) for v in expr.value}  # type: ignore[union-attr]
    else:
        found = _like(str(expr.value), op == "ILIKE").match(have) is not None
    return found != negated


@functools.lru_cache(maxsize=256)
def _like(pattern: str, insensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.S | (re.IGNORECASE if insensitive else 0))


def sort_experiments(found: list[Experiment], items: Sequence[str] | None) -> list[Experiment]:
    """Experiments in MLflow's order: the given keys, else newest first; then by id."""
    out = sorted(found, key=lambda e: e.id)
    keys = order_by(items) or ["creation_time DESC"]
    for item in reversed(keys):
        name, _, direction = item.partition(" ")
        field = _EXPERIMENT_ORDER.get(name.lower().removeprefix("attributes.").removeprefix("attribute."))
        if field is None or direction.strip().upper() not in ("", "ASC", "DESC"):
            raise FilterSyntaxError(f"Cannot order experiments by {item!r}: use name, creation_time or "
                                    "last_update_time, then ASC or DESC.")
        out.sort(key=lambda e: getattr(e, field), reverse=direction.strip().upper() == "DESC")
    return out


# -- pages --------------------------------------------------------------------------------------
def offset_of(token: str | None) -> int:
    """The offset a page token stands for (tokens are opaque to clients; ours hold an offset)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except Exception:
        raise InvalidInputError(f"Invalid page token {token!r}.") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"Invalid page token {token!r}.")
    return offset


def token_for(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page(items: Sequence[T], offset: int, size: int) -> tuple[list[T], str | None]:
    """One page of `items` (read up to offset + size + 1) and the token of the next page, if any."""
    chunk = list(items[offset:offset + size])
    more = len(items) > offset + size
    return chunk, token_for(offset + size) if more else None


def page_size(value: Any, default: int, maximum: int) -> int:
    if value in (None, "", 0, "0"):
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"max_results must be a positive integer, not {value!r}.") from None
    if size < 1 or size > maximum:
        raise InvalidInputError(f"max_results must be between 1 and {maximum}, not {size}.")
    return size
