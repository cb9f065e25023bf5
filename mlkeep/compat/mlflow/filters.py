"""MLflow's search syntax in mlkeep's terms: run filters, order_by, view types, experiment filters, pages.

mlkeep's filter language was made to read MLflow's (`metrics.acc > 0.9 and
params.model = 'rf'`, `attributes.run_name`, backquoted keys, LIKE, ILIKE,
IN, `datasets.name/digest/context`), so a run filter passes through as it is;
what differs is added here: MLflow's view type becomes `search_runs(stage=...)`,
experiments are filtered by name, and page tokens hold an offset.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlkeep.errors import FilterSyntaxError, InvalidInputError, UnsupportedError
from mlkeep.tracking.entities import Experiment, LifecycleStage

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


# -- experiments: MLflow's filter is small; the few experiments of a store are filtered here --------
_EXPERIMENT_CLAUSE = re.compile(
    r"^\s*(?:attributes?\.)?(?P<field>name)\s*(?P<op>=|!=|like|ilike)\s*"
    r"(?P<q>['\"])(?P<value>.*?)(?P=q)\s*$", re.IGNORECASE,
)
_EXPERIMENT_ORDER = {"name": "name", "creation_time": "creation_time", "last_update_time": "creation_time",
                     "experiment_id": "id"}


def experiment_filter(filter_string: str | None) -> Callable[[Experiment], bool]:
    """A predicate for MLflow's experiment filter: `name` with =, !=, LIKE, ILIKE, joined by AND."""
    tests: list[Callable[[Experiment], bool]] = []
    for clause in re.split(r"\s+and\s+", (filter_string or "").strip(), flags=re.IGNORECASE):
        if not clause:
            continue
        m = _EXPERIMENT_CLAUSE.match(clause)
        if m is None:
            raise UnsupportedError(
                f"mlkeep's MLflow API filters experiments by name only (=, !=, LIKE, ILIKE), not {clause!r}."
            )
        tests.append(_name_test(m["op"].lower(), m["value"]))
    return lambda e: all(t(e) for t in tests)


def _name_test(op: str, value: str) -> Callable[[Experiment], bool]:
    if op == "=":
        return lambda e: e.name == value
    if op == "!=":
        return lambda e: e.name != value
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
    compiled = re.compile(f"^{pattern}$", re.S | (re.IGNORECASE if op == "ilike" else 0))
    return lambda e: compiled.match(e.name) is not None


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
