"""Metric history for charts: windowed by step and downsampled by the database to what a chart can draw."""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError
from mlkeep.server.services.access import check_run

if TYPE_CHECKING:
    from mlkeep.store import Store


def metric_history(store: Store, principal: Principal, run_id: str, key: str, *, max_points: int = 0,
                   min_step: float | None = None, max_step: float | None = None) -> dict[str, Any]:
    """The series as parallel columns (None for NaN), at most `max_points` (0: all), and the window's length."""
    from mlkeep.tracking.metrics import history_rows

    check_run(store, principal, run_id)
    if max_points and max_points < 4:
        raise InvalidInputError("max_points must be 0 (every point) or at least 4.")
    with store.db.connect() as conn:
        rows, total = history_rows(conn, run_id, key, max_points=max_points, min_step=min_step, max_step=max_step)
    # One C-level pass per column: `zip(*rows)` over 100,000 rows cost several times as much.
    steps, values, timestamps = (list(map(itemgetter(i), rows)) for i in range(3))
    return {"key": key, "steps": steps, "values": values, "timestamps": timestamps, "total": total,
            "downsampled": len(rows) < total}
