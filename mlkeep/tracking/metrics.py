"""Metric series: buffered logging, flushing, and history.

Logging a metric one value at a time must cost microseconds, not a database
transaction, so values go to a `MetricBuffer` that is written in one
transaction per flush. The durability promise (README, "Durability"): a value
is on disk when `run.flush()` returns, when the run ends, at interpreter exit,
and otherwise at most `FLUSH_INTERVAL` seconds after the call — a process
killed with SIGKILL loses at most the last second.
"""

from __future__ import annotations

import atexit
import logging
import math
import numbers
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, case, select

from mlkeep.errors import InvalidMetricError
from mlkeep.metadata import Database
from mlkeep.metadata.tables import latest_metrics, metrics
from mlkeep.metadata.upsert import insert_for
from mlkeep.tracking.entities import Metric
from mlkeep.tracking.values import check_key, from_sql, metric_value, to_sql

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
Point = tuple[str, float, int, int]  # key, value, step, timestamp


def write_points(conn: Connection, run_id: str, points: list[Point]) -> None:
    """Append points and fold them into `latest_metrics`, in the caller's transaction."""
    if not points:
        return
    conn.execute(
        metrics.insert(),
        [{"run_id": run_id, "key": k, "value": to_sql(v), "step": s, "timestamp": t} for k, v, s, t in points],
    )
    summary: dict[str, dict[str, Any]] = {}
    for k, v, s, t in points:
        cur = summary.get(k)
        if cur is None:
            summary[k] = {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t,
                          "min_value": v, "max_value": v, "count": 1}
            continue
        if (s, t) >= (cur["step"], cur["timestamp"]):
            cur.update(value=v, step=s, timestamp=t)
        cur["min_value"] = _nanmin(cur["min_value"], v)
        cur["max_value"] = _nanmax(cur["max_value"], v)
        cur["count"] += 1
    for row in summary.values():
        for col in ("value", "min_value", "max_value"):
            row[col] = to_sql(row[col])
    stmt = insert_for(conn)(latest_metrics)
    new, old = stmt.excluded, latest_metrics.c
    newer = (new.step > old.step) | ((new.step == old.step) & (new.timestamp >= old.timestamp))
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value": case((newer, new.value), else_=old.value),
                "step": case((newer, new.step), else_=old.step),
                "timestamp": case((newer, new.timestamp), else_=old.timestamp),
                "min_value": case(
                    (old.min_value.is_(None) | (new.min_value < old.min_value), new.min_value), else_=old.min_value
                ),
                "max_value": case(
                    (old.max_value.is_(None) | (new.max_value > old.max_value), new.max_value), else_=old.max_value
                ),
                "count": old.count + new.count,
            },
        ),
        list(summary.values()),
    )


def get_metric_history(db: Database, run_id: str, key: str) -> list[Metric]:
    """Every point of one metric of one run, by step then time."""
    with db.connect() as conn:
        rows = conn.execute(
            select(metrics.c.key, metrics.c.value, metrics.c.step, metrics.c.timestamp)
            .where(metrics.c.run_id == run_id, metrics.c.key == key)
            .order_by(metrics.c.step, metrics.c.timestamp, metrics.c.seq)
        ).all()
    return [Metric(key=r.key, value=from_sql(r.value), step=r.step, timestamp=r.timestamp) for r in rows]


class MetricBuffer:
    """Values of one run waiting to be written; thread-safe, flushed in the background."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._points: list[Point] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        _flusher.register(self)

    def add(self, key: str, value: Any, step: int | None, timestamp: int | None) -> None:
        check_key("metric", key)
        v = metric_value(key, value)
        with self._lock:
            if step is None:
                step = self._steps.get(key, -1) + 1
            elif not isinstance(step, numbers.Integral) or isinstance(step, bool):
                raise InvalidMetricError(f"The step of metric {key!r} must be an integer, not {step!r}.")
            self._steps[key] = max(int(step), self._steps.get(key, -1))
            self._points.append((key, v, int(step), timestamp if timestamp is not None else time.time_ns() // 1_000_000))

    def add_many(self, values: Mapping[str, Any], step: int | None, timestamp: int | None) -> None:
        checked = {check_key("metric", k): metric_value(k, v) for k, v in values.items()}
        for k, v in checked.items():
            self.add(k, v, step, timestamp)

    def flush(self) -> None:
        """Write every buffered value in one transaction; on failure the values are kept."""
        with self._flush_lock:
            with self._lock:
                points, self._points = self._points, []
            if not points:
                return
            try:
                with self.db.begin() as conn:
                    write_points(conn, self.run_id, points)
            except BaseException:
                with self._lock:
                    self._points[:0] = points
                raise

    def close(self) -> None:
        self.flush()
        _flusher.unregister(self)


def _nanmin(a: float, b: float) -> float:
    return b if math.isnan(a) or b < a else a


def _nanmax(a: float, b: float) -> float:
    return b if math.isnan(a) or b > a else a


class _Flusher:
    """One daemon thread per process that flushes every live buffer periodically."""

    def __init__(self) -> None:
        self._buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush_all)

    def register(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._buffers.add(buf)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="mlkeep-flusher", daemon=True)
                self._thread.start()

    def unregister(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._buffers.discard(buf)

    def flush_all(self) -> None:
        with self._lock:
            buffers = list(self._buffers)
        for buf in buffers:
            try:
                buf.flush()
            except Exception:  # keep flushing the others; the values stay buffered
                log.exception("mlkeep could not flush metrics of run %s", buf.run_id)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush_all()


_flusher = _Flusher()
