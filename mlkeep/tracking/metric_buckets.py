"""Bucket summaries of long metric series, kept at write time so a chart never reads a whole series.

A chart of a 100,000-point series needs, per pixel column, the first, lowest,
highest and last point (M4); finding them at read time means touching every
point. So once a series is longer than `SUMMARIZE_AFTER` points, the flush
that writes its points also folds them into `metric_buckets`: for each width
in `LEVELS`, one row per aligned step bucket `[b * width, (b + 1) * width)`
with its count and first, lowest, highest and last point. The flush that
crosses the threshold summarizes the whole series so far, in the same
transaction, so a series is summarized completely or not at all, and the
read path tells which from `latest_metrics.count` alone.

A chart read (`summarized_history`) picks the finest level no wider than the
bucket width the chart needs, reads the level's rows inside the window (a few
hundred), merges each run of `g` consecutive ones into one chart bucket, and
takes the partial buckets at the window's edges from the points themselves.

Ties are broken as the database's M4 query breaks them: the first point is the
earliest written among equal (step, timestamp), the last the latest written,
and the lowest and highest the earliest by (step, timestamp); NaN (NULL) is
never the lowest or highest of a bucket holding a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, and_, bindparam, case, or_, select

from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import latest_metrics, metric_buckets, metrics
from mlkeep.metadata.upsert import insert_for_dialect

SUMMARIZE_AFTER = 1024  # points; shorter series are read whole, which is as cheap as reading summaries
FANOUT = 8
LEVELS = tuple(64 * FANOUT**i for i in range(7))  # 64 steps .. 16,777,216 steps
MAX_MERGED = 64  # level buckets per chart bucket; wider (sparse steps spanning billions) reads the points
HistoryRow = tuple[int, "float | None", int]  # step, value (None for NaN), timestamp
# A summary as a list, merged in place:
# count, first (step, timestamp, value), last (...), lowest (...), highest (...); lowest/highest None for all-NaN.
Summary = list[Any]

_SUMMARY_COLUMNS = ("count", "first_step", "first_timestamp", "first_value", "last_step", "last_timestamp",
                    "last_value", "min_step", "min_timestamp", "min_value", "max_step", "max_timestamp", "max_value")
_UPSERT_NAMES = ("run_id", "key", "level", "bucket", *_SUMMARY_COLUMNS)
_RANGE_NAMES = ("run_id", "key", "lo", "hi")


# -- merging --------------------------------------------------------------------------------------
def point_summary(step: int, timestamp: int, value: float | None) -> Summary:
    """The summary of one point."""
    if value is None:
        return [1, step, timestamp, None, step, timestamp, None, None, None, None, None, None, None]
    return [1, step, timestamp, value, step, timestamp, value, step, timestamp, value, step, timestamp, value]


def merge(a: Summary, b: Summary) -> None:
    """Fold `b` (written after `a`) into `a`; the `_upsert` statement is the same rule in SQL."""
    a[0] += b[0]
    if b[1] < a[1] or (b[1] == a[1] and b[2] < a[2]):
        a[1:4] = b[1:4]
    if b[4] > a[4] or (b[4] == a[4] and b[5] >= a[5]):
        a[4:7] = b[4:7]
    if b[9] is not None and (a[9] is None or b[9] < a[9] or (b[9] == a[9] and (b[7], b[8]) < (a[7], a[8]))):
        a[7:10] = b[7:10]
    if b[12] is not None and (a[12] is None or b[12] > a[12] or (b[12] == a[12] and (b[10], b[11]) < (a[10], a[11]))):
        a[10:13] = b[10:13]


def summarize(points: Iterable[tuple[int, int, float | None]]) -> list[dict[int, Summary]]:
    """Per level, bucket -> summary of `points` (step, timestamp, value) given in write order."""
    finest: dict[int, Summary] = {}
    width = LEVELS[0]
    for s, t, v in points:  # `merge` of a one-point summary, inlined: this loop runs once per point written
        cur = finest.get(s // width)
        if cur is None:
            finest[s // width] = point_summary(s, t, v)
            continue
        cur[0] += 1
        if s < cur[1] or (s == cur[1] and t < cur[2]):
            cur[1], cur[2], cur[3] = s, t, v
        if s > cur[4] or (s == cur[4] and t >= cur[5]):
            cur[4], cur[5], cur[6] = s, t, v
        if v is not None:
            low, high = cur[9], cur[12]
            if low is None or v < low or (v == low and (s < cur[7] or (s == cur[7] and t < cur[8]))):
                cur[7], cur[8], cur[9] = s, t, v
            if high is None or v > high or (v == high and (s < cur[10] or (s == cur[10] and t < cur[11]))):
                cur[10], cur[11], cur[12] = s, t, v
    levels = [finest]
    for _ in LEVELS[1:]:
        coarser: dict[int, Summary] = {}
        for b, summary in levels[-1].items():  # buckets of one level hold different steps: order is free
            cur = coarser.get(b // FANOUT)
            if cur is None:
                coarser[b // FANOUT] = list(summary)
            else:
                merge(cur, summary)
        levels.append(coarser)
    return levels


# -- writing --------------------------------------------------------------------------------------
def fold(conn: Connection, rows: Sequence[tuple[str, str, int, int, float | None]],
         flushed: dict[tuple[str, str], int]) -> None:
    """Fold freshly written points (rows as `MetricBuffer` keeps them) into the summaries of long series.

    Runs after the points are inserted and `latest_metrics` is updated, in the
    same transaction; `flushed` counts the points of each (run, key) in `rows`.
    A series crossing `SUMMARIZE_AFTER` here is summarized from all its points.
    """
    long: dict[tuple[str, str], int] = {}
    for run_id in {r for r, _ in flushed}:
        cur = prepared(conn.dialect, _long_series).execute(conn, (run_id, SUMMARIZE_AFTER))
        long.update(((run_id, k), n) for k, n in cur.fetchall())
        cur.close()
    wanted = {rk: n for rk, n in long.items() if rk in flushed}
    if not wanted:
        return
    points: dict[tuple[str, str], list[tuple[int, int, float | None]]] = {}
    for r, k, s, t, v in rows:
        if (r, k) in wanted:
            points.setdefault((r, k), []).append((s, t, v))
    out: list[tuple[Any, ...]] = []
    for (run_id, key), n in wanted.items():
        before = n - flushed[(run_id, key)]
        if before > SUMMARIZE_AFTER or before == 0:  # summarized before, or every point is in this flush
            out += _rows(run_id, key, summarize(points[(run_id, key)]))
        else:  # crossing the threshold now: summarize the whole series
            out += _rows(run_id, key, summarize(_all_points(conn, run_id, key)))
    prepared(conn.dialect, _upsert).executemany(conn, out)


def summarize_long_series(conn: Connection) -> None:
    """Summarize every series longer than `SUMMARIZE_AFTER` from its points (the migration that adds the table)."""
    lm = latest_metrics.c
    for run_id, key in conn.execute(select(lm.run_id, lm.key).where(lm["count"] > SUMMARIZE_AFTER)).all():
        conn.execute(metric_buckets.delete().where(metric_buckets.c.run_id == run_id, metric_buckets.c.key == key))
        prepared(conn.dialect, _upsert).executemany(
            conn, _rows(run_id, key, summarize(_all_points(conn, run_id, key))))


def _rows(run_id: str, key: str, levels: list[dict[int, Summary]]) -> list[tuple[Any, ...]]:
    return [(run_id, key, level, b, *summary) for level, buckets in enumerate(levels) for b, summary in buckets.items()]


def _all_points(conn: Connection, run_id: str, key: str) -> list[tuple[int, int, float | None]]:
    cur = prepared(conn.dialect, _series_in_write_order).execute(conn, (run_id, key))
    try:
        return cur.fetchall()  # type: ignore[no-any-return]
    finally:
        cur.close()


def _long_series(dialect: str) -> tuple[Executable, Sequence[str]]:
    lm = latest_metrics.c
    return (select(lm.key, lm["count"]).where(lm.run_id == bindparam("run_id"), lm["count"] > bindparam("n")),
            ("run_id", "n"))


def _series_in_write_order(dialect: str) -> tuple[Executable, Sequence[str]]:
    c = metrics.c
    return (select(c.step, c.timestamp, c.value).where(c.run_id == bindparam("run_id"), c.key == bindparam("key"))
            .order_by(c.seq), ("run_id", "key"))


def _upsert(dialect: str) -> tuple[Executable, Sequence[str]]:
    """Insert a bucket's summary or merge it into the stored one (`merge`, in SQL)."""
    stmt = insert_for_dialect(dialect)(metric_buckets).values({n: bindparam(n) for n in _UPSERT_NAMES})
    new, old = stmt.excluded, metric_buckets.c

    def take(cond: Any, prefix: str) -> dict[str, Any]:
        return {f"{prefix}_{p}": case((cond, new[f"{prefix}_{p}"]), else_=old[f"{prefix}_{p}"])
                for p in ("step", "timestamp", "value")}

    earlier = or_(new.first_step < old.first_step,
                  and_(new.first_step == old.first_step, new.first_timestamp < old.first_timestamp))
    later = or_(new.last_step > old.last_step,
                and_(new.last_step == old.last_step, new.last_timestamp >= old.last_timestamp))

    def better(prefix: str, op: str) -> Any:
        n, o = new[f"{prefix}_value"], old[f"{prefix}_value"]
        beats = n < o if op == "<" else n > o
        first = or_(new[f"{prefix}_step"] < old[f"{prefix}_step"],
                    and_(new[f"{prefix}_step"] == old[f"{prefix}_step"],
                         new[f"{prefix}_timestamp"] < old[f"{prefix}_timestamp"]))
        return and_(n.is_not(None), or_(o.is_(None), beats, and_(n == o, first)))

    set_ = {"count": old["count"] + new["count"], **take(earlier, "first"), **take(later, "last"),
            **take(better("min", "<"), "min"), **take(better("max", ">"), "max")}
    return stmt.on_conflict_do_update(index_elements=["run_id", "key", "level", "bucket"], set_=set_), _UPSERT_NAMES


# -- reading --------------------------------------------------------------------------------------
def chart_buckets(first: int, last: int, n: int) -> tuple[int, int]:
    """(origin, width) of the step buckets that cut `first..last` into at most `n` buckets for a chart.

    Bucket i holds steps `origin + i*width .. origin + (i+1)*width - 1`. With
    `n >= 2` buckets are aligned (origin a multiple of width) and the width is
    a multiple of a level width where one fits, so summaries can answer; one
    bucket is the whole window. The level is the coarsest narrower than twice
    the width needed: a chart gets between about n/2 and n buckets either way,
    and each chart bucket is then at most 4 summary rows, not up to 8 (for
    100,000 points in 250 buckets: 196 rows read instead of 1,563).
    """
    span = last - first + 1
    if n < 2:
        return first, span
    want = -(-span // (n - 1))  # aligned buckets of this width touch at most n of them
    level = _level_for(2 * want - 1)
    width = want if level is None else -(-want // LEVELS[level]) * LEVELS[level]
    return first // width * width, width


def _level_for(width: int) -> int | None:
    """The coarsest level whose buckets are no wider than `width`."""
    fitting = [i for i, w in enumerate(LEVELS) if w <= width]
    return fitting[-1] if fitting else None


def summarized_history(conn: Connection, run_id: str, key: str, lo: int, hi: int, first: int, last: int,
                       n: int) -> list[HistoryRow] | None:
    """M4 of the points with `lo <= step <= hi` (first and last such steps given) in `chart_buckets`, from summaries.

    None when the summaries cannot answer (a short series, fewer than two
    buckets, or buckets narrower than the finest level): the caller asks the
    points instead.
    """
    width = chart_buckets(first, last, n)[1]
    level = _level_for(width) if n >= 2 else None
    if level is None or not _is_summarized(conn, run_id, key):
        return None
    w = LEVELS[level]
    g = width // w  # exact: the width is a multiple of the level's
    if g > MAX_MERGED:
        return None
    k_lo, k_hi = -(-lo // w), (hi + 1) // w - 1  # the level's buckets wholly inside the window
    chart: dict[int, Summary] = {}
    if k_lo <= k_hi:
        cur = prepared(conn.dialect, _level_rows).execute(conn, (run_id, key, level, k_lo, k_hi))
        for b, *summary in cur.fetchall():
            _fold_into(chart, b // g, summary)
        cur.close()
        edges = [(lo, k_lo * w - 1), ((k_hi + 1) * w, hi)]
    else:
        edges = [(lo, hi)]
    for a, z in edges:
        a, z = max(a, first), min(z, last)
        if a <= z:
            cur = prepared(conn.dialect, window_rows).execute(conn, (run_id, key, a, z))
            for s, v, t in cur.fetchall():
                _fold_into(chart, s // width, point_summary(s, t, v))
            cur.close()
    return _points(chart)


def _fold_into(chart: dict[int, Summary], i: int, summary: Summary) -> None:
    cur = chart.get(i)
    if cur is None:
        chart[i] = list(summary)
    else:
        merge(cur, summary)


def _points(chart: dict[int, Summary]) -> list[HistoryRow]:
    """Each bucket's first, lowest, highest and last point once, by step then time (then as written)."""
    out: list[HistoryRow] = []
    for i in sorted(chart):
        s = chart[i]
        picked = [(s[1], s[3], s[2]), (s[7], s[9], s[8]), (s[10], s[12], s[11]), (s[4], s[6], s[5])]
        if s[9] is None:  # every value NaN: the first and last stand for the bucket
            del picked[1:3]
        # A stable sort keeps first before and last after the others at one (step, time), as written.
        out += sorted(dict.fromkeys(picked), key=lambda p: (p[0], p[2]))
    return out


def _is_summarized(conn: Connection, run_id: str, key: str) -> bool:
    cur = prepared(conn.dialect, _series_length).execute(conn, (run_id, key))
    row = cur.fetchone()
    cur.close()
    return row is not None and row[0] > SUMMARIZE_AFTER


def _series_length(dialect: str) -> tuple[Executable, Sequence[str]]:
    lm = latest_metrics.c
    return select(lm["count"]).where(lm.run_id == bindparam("run_id"), lm.key == bindparam("key")), ("run_id", "key")


def _level_rows(dialect: str) -> tuple[Executable, Sequence[str]]:
    c = metric_buckets.c
    return (select(c.bucket, *(c[n] for n in _SUMMARY_COLUMNS))
            .where(c.run_id == bindparam("run_id"), c.key == bindparam("key"), c.level == bindparam("level"),
                   c.bucket >= bindparam("lo"), c.bucket <= bindparam("hi")).order_by(c.bucket),
            ("run_id", "key", "level", "lo", "hi"))


def window_rows(dialect: str) -> tuple[Executable, Sequence[str]]:
    """The points of one series with `lo <= step <= hi`, by step, time, then write order."""
    c = metrics.c
    return (select(c.step, c.value, c.timestamp)
            .where(c.run_id == bindparam("run_id"), c.key == bindparam("key"), c.step >= bindparam("lo"),
                   c.step <= bindparam("hi")).order_by(c.step, c.timestamp, c.seq), _RANGE_NAMES)
