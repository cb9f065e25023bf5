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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, case, select

from mlkeep.errors import InvalidMetricError, StoreClosedError
from mlkeep.metadata import Database
from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import latest_metrics, metrics
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.tracking import metric_buckets
from mlkeep.tracking.entities import Metric
from mlkeep.tracking.metric_buckets import HistoryRow, window_rows
from mlkeep.tracking.values import check_key, from_sql, metric_value

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
Point = tuple[str, float, int, int]  # key, value, step, timestamp
# A buffered point as it is written, in the table's column order:
# run id, key, step, timestamp, value (None for NaN).
Row = tuple[str, str, int, int, "float | None"]

_INSERT_NAMES = ("run_id", "key", "step", "timestamp", "value")
_LATEST_NAMES = ("run_id", "key", "value", "step", "timestamp", "min_value", "max_value", "count")


def _insert_metrics(dialect: str) -> tuple[Executable, Sequence[str]]:
    return metrics.insert().values({n: bindparam(n) for n in _INSERT_NAMES}), _INSERT_NAMES


def _upsert_latest(dialect: str) -> tuple[Executable, Sequence[str]]:
    """Fold a summary row into `latest_metrics`: newest point wins, min/max/count accumulate."""
    stmt = insert_for_dialect(dialect)(latest_metrics).values({n: bindparam(n) for n in _LATEST_NAMES})
    new, old = stmt.excluded, latest_metrics.c
    newer = (new.step > old.step) | ((new.step == old.step) & (new.timestamp >= old.timestamp))
    return (
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
        _LATEST_NAMES,
    )


def write_points(conn: Connection, run_id: str, points: list[Point]) -> None:
    """Append points and fold them into `latest_metrics`, in the caller's transaction."""
    write_rows(conn, [(run_id, k, int(s), int(t), None if v != v else float(v)) for k, v, s, t in points])


def write_rows(conn: Connection, rows: list[Row]) -> None:
    """Append rows (as `MetricBuffer` keeps them) and fold them into `latest_metrics`.

    Runs in the caller's transaction: two executemany calls whatever the
    number of points, with statements compiled once per dialect, then the
    bucket summaries of series long enough to have them (`metric_buckets`).
    """
    if rows:
        prepared(conn.dialect, _insert_metrics).executemany(conn, rows)
        summaries = _summaries(rows)
        prepared(conn.dialect, _upsert_latest).executemany(conn, summaries)
        metric_buckets.fold(conn, rows, {(r[0], r[1]): r[7] for r in summaries})


def _summaries(rows: list[Row]) -> list[list[Any]]:
    """Per (run, key): the newest point by (step, timestamp), min and max ignoring NaN (None), count."""
    summary: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        run_id, k, s, t, v = row
        cur = summary.get((run_id, k))
        if cur is None:
            summary[(run_id, k)] = [run_id, k, v, s, t, v, v, 1]
            continue
        if s > cur[3] or (s == cur[3] and t >= cur[4]):
            cur[2], cur[3], cur[4] = v, s, t
        if v is not None:
            if cur[5] is None or v < cur[5]:
                cur[5] = v
            if cur[6] is None or v > cur[6]:
                cur[6] = v
        cur[7] += 1
    return list(summary.values())


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
    """Values of one run waiting to be written; thread-safe, flushed in the background.

    `add` runs once per logged value, so it does the least that keeps the
    promises: validate (a bad value raises here, not at flush time), pick the
    step, append one tuple already shaped as the row the flush writes.
    """

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._rows: list[Row] = []
        self._steps: dict[str, int] = {}
        self._keys: set[str] = set()  # names that passed `check_key`
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        _flusher.register(self)

    def add(self, key: str, value: Any, step: int | None, timestamp: int | None) -> None:
        """Buffer one value; `InvalidInputError`/`InvalidMetricError` for a bad name, value or step."""
        if key not in self._keys:
            self._keys.add(check_key("metric", key))
        t = type(value)
        if t is not float:  # exact float needs nothing; everything else is checked
            value = float(value) if t is int else metric_value(key, value)
        if value != value:
            value = None  # NaN is stored as NULL
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        elif type(timestamp) is not int:
            timestamp = _timestamp(key, timestamp)
        if step is not None and type(step) is not int:
            step = _integer(key, "step", step)
        steps = self._steps
        with self._lock:
            if step is None:
                step = steps.get(key, -1) + 1
                steps[key] = step
            elif step > steps.get(key, -1):
                steps[key] = step
            self._rows.append((self.run_id, key, step, timestamp, value))

    def add_many(self, values: Mapping[str, Any], step: int | None, timestamp: int | None) -> None:
        """Buffer several values at one step; all are checked before any is kept."""
        if step is not None and type(step) is not int:
            step = _integer("", "step", step)
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        elif type(timestamp) is not int:
            timestamp = _timestamp("", timestamp)
        checked: list[tuple[str, float | None]] = []
        keys = self._keys
        for key, value in values.items():
            if key not in keys:
                keys.add(check_key("metric", key))
            t = type(value)
            if t is not float:
                value = float(value) if t is int else metric_value(key, value)
            checked.append((key, None if value != value else value))
        run_id, steps = self.run_id, self._steps
        with self._lock:
            rows = self._rows
            for key, value in checked:
                if step is None:
                    s = steps.get(key, -1) + 1
                    steps[key] = s
                else:
                    s = step
                    if s > steps.get(key, -1):
                        steps[key] = s
                rows.append((run_id, key, s, timestamp, value))

    def flush(self, then: Callable[[Connection], None] | None = None) -> None:
        """Write every buffered value in one transaction (`Database.run`); on failure the values are kept.

        `then(conn)`, when given, runs in the same transaction after the values
        are written (ending a run costs one commit, not two).
        """
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows and then is None:
                return

            def write(conn: Connection) -> None:
                write_rows(conn, rows)
                if then is not None:
                    then(conn)

            try:
                # Re-run after a lost race, a busy SQLite or a dropped connection, for up to the
                # database's patience; then `DatabaseUnavailableError`, with the values kept. A
                # connection lost mid-commit is re-run too: a flush written twice beats one lost.
                self.db.run(write, at_least_once=True)
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows
                raise

    def close(self, then: Callable[[Connection], None] | None = None) -> None:
        """Flush (running `then` in the same transaction) and stop background flushing."""
        self.flush(then)
        _flusher.unregister(self)


def _timestamp(key: str, value: Any) -> int:
    """Milliseconds since the epoch; any real number is accepted and truncated."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return int(metric_value(key or "timestamp", value))


def _integer(key: str, what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        name = f" of metric {key!r}" if key else ""
        raise InvalidMetricError(f"The {what}{name} must be an integer, not {value!r}.")
    return int(value)


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
            except StoreClosedError:  # an in-memory store closed under an open run: nothing left to write to
                self.unregister(buf)
            except Exception:  # keep flushing the others; the values stay buffered
                log.exception("mlkeep could not flush metrics of run %s", buf.run_id)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush_all()


_flusher = _Flusher()


# -- history for charts ---------------------------------------------------------------------------
_INT64 = (-(2**63), 2**63 - 1)
_WINDOW_NAMES = ("run_id", "key", "lo", "hi")
_BUCKET_NAMES = ("run_id", "key", "lo", "hi", "origin", "width", "n")


def history_rows(conn: Connection, run_id: str, key: str, *, max_points: int = 0, min_step: float | None = None,
                 max_step: float | None = None) -> tuple[list[HistoryRow], int]:
    """The points of one series with `min_step <= step <= max_step`, by step then time, and how many there are.

    With `max_points` (at least 4; 0 for every point) and more points than
    that, the window's steps are split into at most `max_points // 4`
    equal-width buckets (`metric_buckets.chart_buckets`) and only each
    bucket's first, lowest, highest and last point (M4) comes back: a chart
    drawn from them is the chart of the full series at that width (spikes
    survive). A long series is answered from its bucket summaries; a short
    one by the database's M4 query over its points. Either way a
    100,000-point series never crosses into Python.
    """
    for bound in (min_step, max_step):
        if bound is not None and math.isnan(bound):
            raise InvalidMetricError("min_step and max_step must be numbers, not NaN.")
    lo = _INT64[0] if min_step is None else max(_INT64[0], math.ceil(min_step)) if math.isfinite(min_step) else (
        _INT64[0] if min_step < 0 else _INT64[1])
    hi = _INT64[1] if max_step is None else min(_INT64[1], math.floor(max_step)) if math.isfinite(max_step) else (
        _INT64[0] if max_step < 0 else _INT64[1])
    if max_points:
        whole = min_step is None and max_step is None
        stats = _series_stats if whole else _window_stats  # a whole series is counted by its summary row
        cur = prepared(conn.dialect, stats).execute(conn, (run_id, key) if whole else (run_id, key, lo, hi))
        total, first, last = cur.fetchone() or (0, 0, 0)
        cur.close()
        if total > max_points:
            n = max_points // 4
            summarized = metric_buckets.summarized_history(conn, run_id, key, lo, hi, first, last, n)
            if summarized is not None:
                return summarized, int(total)
            origin, width = metric_buckets.chart_buckets(first, last, n)
            args = (run_id, key, first, last, origin, width, (last - origin) // width + 1)
            return _fetch(prepared(conn.dialect, _buckets).execute(conn, args)), int(total)
    rows = _fetch(prepared(conn.dialect, window_rows).execute(conn, (run_id, key, lo, hi)))
    return rows, len(rows)


def _fetch(cur: Any) -> list[HistoryRow]:
    try:
        return cur.fetchall()  # type: ignore[no-any-return]
    finally:
        cur.close()


def _in_window() -> Any:
    c = metrics.c
    return (c.run_id == bindparam("run_id"), c.key == bindparam("key"), c.step >= bindparam("lo"),
            c.step <= bindparam("hi"))


def _window_stats(dialect: str) -> tuple[Executable, Sequence[str]]:
    """(count, first step, last step) of the window: read from the (run, key, step) index alone."""
    from sqlalchemy import func

    c = metrics.c
    return select(func.count(), func.min(c.step), func.max(c.step)).where(*_in_window()), _WINDOW_NAMES


def _series_stats(dialect: str) -> tuple[Executable, Sequence[str]]:
    """(count, first step, last step) of a whole series: its `latest_metrics` row and one index seek."""
    from sqlalchemy import func

    c, lm = metrics.c, latest_metrics.c
    first = select(func.min(c.step)).where(c.run_id == bindparam("run_id"), c.key == bindparam("key"))
    stmt = select(lm["count"], first.scalar_subquery(), lm.step).where(
        lm.run_id == bindparam("run_id"), lm.key == bindparam("key"))
    return stmt, ("run_id", "key")


def _buckets(dialect: str) -> tuple[Executable, Sequence[str]]:
    """The ids (`seq`) of each bucket's first, lowest, highest and last point, then those points by step.

    PostgreSQL: one GROUP BY bucket, ordering inside the aggregate
    (`array_agg(... ORDER BY ...)[1]`). SQLite has no ordered aggregate and
    sorts a GROUP BY on an expression in a temporary B-tree, so it walks the
    buckets as step ranges of the (run, key, step) index instead, taking the
    top row of each in the four orders. NaN (NULL) is never the lowest or
    highest of a bucket that has a number. Long series rarely come here:
    their charts are read from `metric_buckets`.
    """
    from sqlalchemy import text

    if dialect == "postgresql":
        sql = """
        WITH pts AS (SELECT seq, step, timestamp, value, div(step::numeric - :origin, :width) AS b
                     FROM metrics WHERE run_id = :run_id AND key = :key AND step >= :lo AND step <= :hi),
        picked AS (SELECT unnest(ARRAY[
                     (array_agg(seq ORDER BY step, timestamp, seq))[1],
                     (array_agg(seq ORDER BY value ASC NULLS LAST, step, timestamp, seq))[1],
                     (array_agg(seq ORDER BY value DESC NULLS LAST, step, timestamp, seq))[1],
                     (array_agg(seq ORDER BY step DESC, timestamp DESC, seq DESC))[1]]) AS seq
                   FROM pts GROUP BY b)
        SELECT step, value, timestamp FROM metrics WHERE seq IN (SELECT seq FROM picked)
        ORDER BY step, timestamp, seq"""
    else:
        # Bucket i holds the steps origin + i * width .. origin + (i + 1) * width - 1 inside lo .. hi.
        where = "run_id = :run_id AND key = :key AND step >= b.first AND step <= b.last"
        orders = ("step, timestamp, seq", "value IS NULL, value, step, timestamp, seq",
                  "value IS NULL, value DESC, step, timestamp, seq", "step DESC, timestamp DESC, seq DESC")
        picks = [f"SELECT seq FROM metrics WHERE {where} ORDER BY {o} LIMIT 1" for o in orders]
        sql = f"""
        WITH RECURSIVE x(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM x WHERE i < :n - 1),
        b(first, last) AS (SELECT max(:origin + i * :width, :lo), min(:origin + (i + 1) * :width - 1, :hi) FROM x)
        SELECT step, value, timestamp FROM metrics WHERE seq IN (
            {" UNION ".join(f"SELECT ({p}) FROM b" for p in picks)})
        ORDER BY step, timestamp, seq"""
    return text(sql), _BUCKET_NAMES
