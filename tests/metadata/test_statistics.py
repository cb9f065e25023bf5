"""The query planner's statistics: taken when the runs table outgrows them, seen by every new connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, text

from mlkeep.metadata import Database
from mlkeep.metadata import statistics
from mlkeep.metadata.statistics import MIN_RUNS, refresh_statistics, statistics_stale
from mlkeep.metadata.tables import experiments, params, runs


def _add_runs(db: Database, start: int, count: int) -> None:
    with db.begin() as conn:
        if start == 0:
            conn.execute(insert(experiments).values(id="e", name="e", creation_time=0))
        conn.execute(insert(runs), [dict(id=f"r{i}", experiment_id="e", name=f"r{i}", status="FINISHED",
                                         start_time=i, lifecycle_stage="active") for i in range(start, start + count)])
        conn.execute(insert(params), [dict(run_id=f"r{i}", key="model", value=("rf", "gbm", "linear")[i % 3])
                                      for i in range(start, start + count)])


def _runs_stat(db: Database) -> str | None:
    with db.connect() as conn:
        return statistics._runs_stat(conn)


@pytest.mark.parametrize(("stat", "runs_now", "stale"), [
    (None, MIN_RUNS - 1, False),  # too small to matter
    (None, MIN_RUNS, True),
    (f"{MIN_RUNS} 1", MIN_RUNS * 2, False),
    (f"{MIN_RUNS} 1", MIN_RUNS * 2 + 1, True),
    (f"{MIN_RUNS * 4} 1", MIN_RUNS * 2, False),
    (f"{MIN_RUNS * 4} 1", MIN_RUNS * 2 - 1, True),
])
def test_statistics_are_stale_once_the_runs_double_or_halve(stat: str | None, runs_now: int, stale: bool) -> None:
    assert statistics_stale(stat, runs_now) is stale


def test_a_grown_store_is_analyzed_and_new_connections_plan_with_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    _add_runs(db, 0, MIN_RUNS // 2)
    assert refresh_statistics(db) is False  # too few runs to be worth a write
    _add_runs(db, MIN_RUNS // 2, MIN_RUNS)
    assert refresh_statistics(db) is False  # checked a moment ago: not again yet
    monkeypatch.setattr(statistics, "CHECK_EVERY_S", 0.0)
    assert refresh_statistics(db) is True
    assert int((_runs_stat(db) or "0").split()[0]) > MIN_RUNS  # about the 300 runs there are
    assert refresh_statistics(db) is False  # up to date
    # The planner of a connection opened now reads the statistics: the params index says how many runs a
    # (key, value) pair has.
    with db.connect() as conn:
        rows = dict(conn.execute(text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'params'")).all())
    assert len(rows["ix_params_key_value_run"].split()) == 4
    assert refresh_statistics(db, force=True) is True


def test_in_memory_and_postgresql_databases_are_left_alone(store) -> None:  # type: ignore[no-untyped-def]
    """In memory, a new connection would be a new, empty database; PostgreSQL's autovacuum analyzes by itself."""
    assert refresh_statistics(store.db, force=True) is False


def test_a_read_only_database_is_searched_without_fresh_statistics(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    _add_runs(db, 0, MIN_RUNS)
    db.dispose()
    reader = Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert refresh_statistics(reader) is False
    assert _runs_stat(db) is None


def test_a_search_takes_statistics_on_its_own_thread_and_never_waits_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the write lock delays the statistics, never the search."""
    import sqlite3
    import time

    from mlkeep.tracking.search import search_run_ids

    path = tmp_path / "m.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    _add_runs(db, 0, MIN_RUNS)
    monkeypatch.setattr(statistics, "CHECK_EVERY_S", 0.0)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock ANALYZE needs
    try:
        t0 = time.monotonic()
        assert len(search_run_ids(db, "params.model = 'rf'", experiments=["e"])) == -(-MIN_RUNS // 3)
        assert time.monotonic() - t0 < 1.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 30
    while _runs_stat(db) is None and time.monotonic() < deadline:  # a later search's thread gets the lock
        search_run_ids(db, "params.model = 'rf'", experiments=["e"])
        time.sleep(0.05)
    assert _runs_stat(db) is not None
