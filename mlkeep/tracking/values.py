"""Validation and encoding of the small values runs carry: keys, params, metric values."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

from mlkeep.errors import InvalidInputError, InvalidMetricError

MAX_KEY = 250


def check_key(kind: str, key: Any) -> str:
    """Keys become SQL values and file names elsewhere: keep them short and printable."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInputError(f"A {kind} name must be a printable string of 1 to {MAX_KEY} characters, not {key!r}.")
    return key


def metric_value(key: str, value: Any) -> float:
    """The value as a float, or `InvalidMetricError` (strings and bools are refused)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise InvalidMetricError(
            f"Metric {key!r} must be a real number, not {type(value).__name__} {value!r}. "
            "Log text as a tag or a param instead."
        )
    return float(value)


def param_value(value: Any) -> str:
    """Params are stored as text; containers as sorted JSON so equal values compare equal."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def to_sql(value: float) -> float | None:
    """NaN is stored as NULL: SQLite cannot store NaN, and NULL, like NaN, satisfies no comparison."""
    return None if math.isnan(value) else value


def from_sql(value: float | None) -> float:
    return math.nan if value is None else value
