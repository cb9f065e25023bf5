"""The fast paths of tracking behave exactly like the plain ones they replaced.

Metric buffering validates on the call, flushes fold into `latest_metrics`
across flushes, statements compiled ahead of time run on both dialects'
parameter styles, ending a run writes its last values in the same
transaction, and reading runs back pads and chunks id lists correctly.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

import mlkeep
from mlkeep.errors import InvalidInputError, InvalidMetricError, NotFoundError, ParamConflictError
from mlkeep.metadata.database import Prepared
from mlkeep.metadata.tables import metrics, runs
from mlkeep.store import Store
from mlkeep.tracking import metrics as metrics_module
from mlkeep.tracking import runs as runs_module


@contextmanager
def _postgres_store(server_url: str) -> Iterator[Store]:
    """A store on a new, empty PostgreSQL database, dropped afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"mlkeep_perf_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        db_url = url.set(database=name).render_as_string(hide_password=False)
        with mlkeep.open(db_url, objects=f"memory://{uuid.uuid4().hex}") as s:
            yield s
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def mem(request: pytest.FixtureRequest) -> Iterator[Store]:
    """An in-memory SQLite store, and a PostgreSQL one when MLKEEP_TEST_POSTGRES names a server."""
    if request.param == "sqlite":
        with mlkeep.open("memory://") as s:
            yield s
        return
    server = os.environ.get("MLKEEP_TEST_POSTGRES")
    if not server:
        pytest.skip("set MLKEEP_TEST_POSTGRES=postgresql://user@host:port/db to test PostgreSQL too")
    with _postgres_store(server) as s:
        yield s


def test_bad_values_raise_on_the_call_and_buffer_nothing(mem: Store) -> None:
    with mem.start_run("e") as run:
        for bad in ("0.5", True, None, b"1", [1.0], {"a": 1}):
            with pytest.raises(InvalidMetricError):
                run.log_metric("m", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError):
            run.log_metric("m", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError):
            run.log_metric("m", 1.0, step=True)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            run.log_metric("", 1.0)
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"a": 1.0, "b": "x"})  # type: ignore[dict-item]  # all checked before any is kept
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"a": 1.0}, step=2.0)  # type: ignore[arg-type]
    assert mem.get_run(run.id).metrics == {}
    assert mem.get_metric_history(run.id, "a") == []


def test_numbers_of_every_kind_are_stored_as_floats(mem: Store) -> None:
    with mem.start_run("e") as run:
        run.log_metric("m", 1)
        run.log_metric("m", np.float32(0.5))  # type: ignore[arg-type]
        run.log_metric("m", np.int64(3), step=np.int64(10))  # type: ignore[arg-type]
        run.log_metric("m", 2.5, timestamp=np.int64(1_700_000_000_000))  # type: ignore[arg-type]
        run.log_metrics({"a": np.float64(1.5), "b": 7})
    history = mem.get_metric_history(run.id, "m")
    assert [(m.value, m.step) for m in history] == [(1.0, 0), (0.5, 1), (3.0, 10), (2.5, 11)]
    assert all(type(m.value) is float for m in history)
    assert history[-1].timestamp == 1_700_000_000_000
    assert mem.get_run(run.id).metrics["b"].value == 7.0


def test_summary_folds_across_flushes_with_nan_ignored_by_min_and_max(mem: Store) -> None:
    run = mem.start_run("e")
    run.log_metric("m", math.nan)
    run.flush()
    s = mem.get_run(run.id).metrics["m"]
    assert math.isnan(s.value) and math.isnan(s.min) and math.isnan(s.max) and s.count == 1
    for v in (3.0, -1.0, math.nan, 2.0):
        run.log_metric("m", v)
        run.flush()
    run.log_metric("m", 10.0, step=1)  # an older step does not become the latest value
    run.end()
    s = mem.get_run(run.id).metrics["m"]
    assert (s.value, s.step, s.min, s.max, s.count) == (2.0, 4, -1.0, 10.0, 6)
    history = mem.get_metric_history(run.id, "m")
    assert [m.step for m in history] == [0, 1, 1, 2, 3, 4]


def test_summary_within_one_flush_matches_the_same_values_flushed_one_by_one(mem: Store) -> None:
    values = [0.3, math.nan, -2.0, 5.0, 5.0, math.nan, 1.0]
    together = mem.start_run("e")
    apart = mem.start_run("e")
    for v in values:
        together.log_metric("m", v)
        apart.log_metric("m", v)
        apart.flush()
    together.end()
    apart.end()
    a, b = mem.get_run(together.id).metrics["m"], mem.get_run(apart.id).metrics["m"]
    assert (a.value, a.step, a.min, a.max, a.count) == (b.value, b.step, b.min, b.max, b.count) == (1.0, 6, -2.0, 5.0, 7)


def test_write_points_keeps_its_signature_for_other_callers(mem: Store) -> None:
    with mem.start_run("e") as run:
        pass
    with mem.db.begin() as conn:
        metrics_module.write_points(conn, run.id, [("k", 1.0, 0, 5), ("k", math.nan, 1, 6), ("k", 4.0, 2, 7)])
    s = mem.get_run(run.id).metrics["k"]
    assert (s.value, s.min, s.max, s.count) == (4.0, 1.0, 4.0, 3)


def test_a_failed_flush_keeps_the_values_for_the_next_one(mem: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    run = mem.start_run("e")
    run.log_metric("m", 1.0)

    def broken(conn, rows):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(metrics_module, "write_rows", broken)
    with pytest.raises(RuntimeError):
        run.flush()
    monkeypatch.undo()
    run.log_metric("m", 2.0)
    run.end()
    assert [m.value for m in mem.get_metric_history(run.id, "m")] == [1.0, 2.0]


def test_ending_writes_last_values_and_status_in_one_transaction(mem: Store) -> None:
    run = mem.start_run("e")
    run.log_metric("m", 1.0)
    runs_module.end_run(mem.db, run.id, "FINISHED", metrics=run._metrics)
    info = mem.get_run(run.id)
    assert info.status == "FINISHED" and info.metrics["m"].value == 1.0


def test_ending_an_unknown_run_keeps_its_values_buffered(mem: Store) -> None:
    run = mem.start_run("e")
    run.log_metric("m", 1.0)
    buffer = run._metrics
    with pytest.raises(NotFoundError):  # the UPDATE finds nothing: the whole transaction rolls back
        runs_module.end_run(mem.db, "missing", metrics=buffer)
    assert len(buffer._rows) == 1
    with pytest.raises(NotFoundError):
        runs_module.end_run(mem.db, "missing")


def test_a_param_conflict_keeps_nothing_of_the_call(mem: Store) -> None:
    with mem.start_run("e") as run:
        run.log_params({"a": 1, "b": "x"})
        run.log_params({"a": 1})  # same value: fine
        with pytest.raises(ParamConflictError):
            run.log_params({"c": 3, "a": 2})
        run.log_params({"d": [1, 2]})
    assert mem.get_run(run.id).params == {"a": "1", "b": "x", "d": "[1, 2]"}
    with pytest.raises(NotFoundError):
        runs_module.log_params(mem.db, "missing", {"a": 1})
    with pytest.raises(NotFoundError):
        runs_module.set_tags(mem.db, "missing", {"a": 1})


def test_get_runs_keeps_order_skips_unknown_and_chunks_long_lists(
    mem: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_module, "_MAX_IDS", 8)  # 21 runs: chunks of 8, 8 and 5 (padded to 8)
    ids = []
    for i in range(21):
        with mem.start_run("e", name=f"r{i}", tags={"i": i}) as run:
            run.log_params({"i": i})
            run.log_metric("m", float(i))
        ids.append(run.id)
    wanted = ids[::-1] + ["missing"] + ids[:3]  # unknown and repeated ids too
    found = runs_module.get_runs(mem.db, wanted)
    assert [r.id for r in found] == ids[::-1]
    for r in found:
        i = int(r.name[1:])
        assert r.params == {"i": str(i)} and r.tags == {"i": str(i)} and r.metrics["m"].value == float(i)
        assert r.experiment == "e" and r.status == "FINISHED" and r.environment["python"]
    assert [r.name for r in runs_module.get_runs(mem.db, ids[5:8])] == ["r5", "r6", "r7"]
    assert runs_module.get_runs(mem.db, []) == []


def test_prepared_statements_follow_each_dialects_parameter_style() -> None:
    stmt = metrics.insert().values({n: bindparam(n) for n in ("value", "run_id", "key", "step", "timestamp")})
    names = ("run_id", "key", "step", "timestamp", "value")
    lite = Prepared(stmt, sqlite.dialect(), names)
    assert "?" in lite.sql
    row = ("r", "k", 1, 2, 0.5)
    compiled_order = stmt.compile(dialect=sqlite.dialect()).positiontup or []
    assert tuple(lite._param(row)) == tuple(dict(zip(names, row))[n] for n in compiled_order)
    pg = Prepared(stmt, postgresql.psycopg.dialect(), names)
    assert "%(run_id)s" in pg.sql
    assert pg._param(row) == dict(zip(names, row))
    sel = Prepared(select(runs.c.id).where(runs.c.id == bindparam("x")), postgresql.psycopg.dialect(), ("x",))
    assert sel._param(("a",)) == {"x": "a"}


def test_prepared_reorders_values_to_the_compiled_order(mem: Store) -> None:
    with mem.start_run("e") as run:
        pass
    stmt = metrics.insert().values({n: bindparam(n) for n in ("run_id", "key", "step", "timestamp", "value")})
    reordered = Prepared(stmt, mem.db.engine.dialect, ("value", "timestamp", "step", "key", "run_id"))
    with mem.db.begin() as conn:
        assert reordered.executemany(conn, [(0.5, 9, 3, "k", run.id), (None, 10, 4, "k", run.id)]) == 2
    history = mem.get_metric_history(run.id, "k")
    assert [(m.value, m.step, m.timestamp) for m in history[:1]] == [(0.5, 3, 9)]
    assert math.isnan(history[1].value)
