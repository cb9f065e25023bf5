"""The query planner's statistics: SQLite's `ANALYZE`, run again when the tables outgrow what it last saw.

Without statistics SQLite guesses how many rows each index step yields, and
for a run search it guesses wrong: it walks every run of the experiment and
probes each filter's list of run ids, where reading the (key, value) index of
the filter and looking up the few runs it names is several times faster.
`ANALYZE` tells it the real shape of the data, but a store is created empty
and grows afterwards, so statistics taken once go stale. `refresh_statistics`
checks (at most every `CHECK_EVERY_S` seconds per `Database`, two reads of a
few microseconds) whether the runs table has grown or shrunk past `GROWTH`
times the size the statistics describe, and if so runs `ANALYZE` with
`analysis_limit` (a sample of each index, a few milliseconds whatever the
size of the store) in one write transaction. Writes are untouched: nothing is
checked or analyzed on the write path. A search calls `refresh_in_background`:
the check and `ANALYZE` run on a thread of their own, so a search never waits
for the write lock `ANALYZE` takes (another process may hold it for long) and
never fails because statistics could not be taken.

SQLite loads statistics when a connection reads the schema, and a new
`sqlite_stat1` does not make other connections reload it, so after the
statistics change (here or in another process) this process's pooled
connections are replaced. PostgreSQL keeps its own statistics (autovacuum
analyzes a table once a tenth of it has changed): nothing to do there.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from mlkeep.errors import DatabaseUnavailableError
from mlkeep.metadata.database import Database

__all__ = ["refresh_in_background", "refresh_statistics", "statistics_stale"]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
# Stale once the runs table holds this many times more (or fewer) rows than the statistics say.
GROWTH = 2.0
# Below this many runs every plan answers in well under a millisecond: not worth a write.
MIN_RUNS = 200
# Index entries ANALYZE samples per index: enough for the planner's ratios, bounded in time on any store.
ANALYSIS_LIMIT = 1000
_RUNS_STAT = "SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' AND idx = 'sqlite_autoindex_runs_1'"


@dataclass
class _Seen:
    """What one `Database` last checked: when, and the statistics its connections were opened with."""

    checked_at: float = -CHECK_EVERY_S
    stat: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_SEEN: weakref.WeakKeyDictionary[Database, _Seen] = weakref.WeakKeyDictionary()


def refresh_statistics(db: Database, *, force: bool = False) -> bool:
    """Analyze a SQLite database whose statistics no longer describe it; True when it did.

    Checks at most every `CHECK_EVERY_S` seconds (`force`: now, and analyze whatever the sizes).
    An in-memory database, PostgreSQL, a read-only file or a database another writer holds are
    left as they are: statistics only speed queries up, so this never fails a caller.
    """
    if db.dialect != "sqlite" or db.in_memory:
        return False
    seen = _SEEN.setdefault(db, _Seen())
    now = time.monotonic()
    if not force and now - seen.checked_at < CHECK_EVERY_S or not seen.lock.acquire(blocking=False):
        return False
    try:
        seen.checked_at = now
        with db.connect() as conn:
            stat, runs = _runs_stat(conn), conn.execute(text("SELECT max(rowid) FROM runs")).scalar() or 0
        analyze = force or statistics_stale(stat, runs)
        if analyze:
            try:
                with db.begin() as conn:
                    conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
                    conn.exec_driver_sql("ANALYZE")
                    stat = _runs_stat(conn)
            except (OperationalError, DatabaseUnavailableError) as exc:  # read-only, disk full, held too long
                log.warning("could not refresh the query planner's statistics: %s", getattr(exc, "orig", exc))
                return False
            log.info("refreshed the query planner's statistics of %s (%d runs)", db.url, runs)
        if stat != seen.stat:  # connections opened before keep the statistics they loaded: open new ones
            db.engine.dispose()
            seen.stat = stat
        return analyze
    finally:
        seen.lock.release()


def refresh_in_background(db: Database) -> None:
    """`refresh_statistics` on a daemon thread when a check is due (a clock read otherwise)."""
    seen = _SEEN.get(db)
    if db.dialect != "sqlite" or db.in_memory or seen is not None and time.monotonic() - seen.checked_at < CHECK_EVERY_S:
        return
    threading.Thread(target=_refresh_quietly, args=(db,), name="mlkeep-statistics", daemon=True).start()


def _refresh_quietly(db: Database) -> None:
    try:
        refresh_statistics(db)
    except Exception:  # a closed store, a vanished file: statistics only ever speed queries up
        log.debug("could not refresh the query planner's statistics", exc_info=True)


def statistics_stale(stat: str | None, runs: int) -> bool:
    """Whether statistics whose runs row is `stat` ("rows 1", or None: none) misdescribe `runs` runs."""
    if runs < MIN_RUNS:
        return False
    if not stat:
        return True
    recorded = int(stat.split()[0])
    return runs > recorded * GROWTH or runs * GROWTH < recorded


def _runs_stat(conn: Connection) -> str | None:
    exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar()
    return conn.execute(text(_RUNS_STAT)).scalar() if exists else None
