"""A busy, unreachable or dropped database: waited for up to the patience, then one clear error, never lost data."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import mlkeep
import mlkeep.tracking.metrics as metrics_module
from mlkeep.errors import DatabaseUnavailableError, InvalidInputError
from mlkeep.metadata import Database
from mlkeep.metadata.database import patience_from_env
from mlkeep.metadata.tables import metrics
from mlkeep.store import Store


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A SQLite file store whose patience (seconds) is the test's indirect parameter."""
    monkeypatch.setenv("MLKEEP_DB_PATIENCE", str(request.param))
    with mlkeep.init(tmp_path / "s") as s:
        yield s


@pytest.fixture
def pg_store(postgres_template: tuple[str, str]) -> Iterator[Store]:
    from postgres_server import fresh_database

    server, template = postgres_template
    with fresh_database(server, template) as url, mlkeep.open(url, objects="memory://db-tests") as s:
        yield s


def _hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another writer holding SQLite's write lock for `seconds` (from its own connection)."""
    import sqlite3

    taken = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        con.execute("ROLLBACK")
        con.close()

    t = threading.Thread(target=hold)
    t.start()
    taken.wait(10)
    return t


def _count(store: Store, run_id: str) -> int:
    with store.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(metrics).where(metrics.c.run_id == run_id)).scalar())


def test_patience_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKEEP_DB_PATIENCE", "2.5")
    assert patience_from_env() == 2.5
    assert Database("sqlite://").patience == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("MLKEEP_DB_PATIENCE", bad)
        with pytest.raises(InvalidInputError, match="MLKEEP_DB_PATIENCE"):
            patience_from_env()


@pytest.mark.parametrize("sqlite_store", [0.5], indirect=True)
def test_sqlite_busy_past_the_patience_is_a_clear_error_and_buffered_metrics_are_kept(sqlite_store: Store) -> None:
    db_path = sqlite_store.db.url.removeprefix("sqlite:///")
    run = sqlite_store.start_run("busy")
    for i in range(50):
        run.log_metric("loss", float(i))
    holder = _hold_write_lock(db_path, 3.0)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="busy .*MLKEEP_DB_PATIENCE"):
        run.flush()
    assert time.monotonic() - started < 2.5  # the patience bounds the wait, not SQLite's 30 s busy handler
    holder.join()
    run.flush()  # the values were kept and go in once the lock is free
    assert _count(sqlite_store, run.id) == 50
    run.end()


@pytest.mark.parametrize("sqlite_store", [20], indirect=True)
def test_sqlite_busy_within_the_patience_is_waited_for(sqlite_store: Store) -> None:
    db_path = sqlite_store.db.url.removeprefix("sqlite:///")
    with sqlite_store.start_run("busy") as run:
        run.log_metric("loss", 1.0)
        holder = _hold_write_lock(db_path, 1.0)
        run.log_params({"a": 1})  # waits for the other writer instead of failing
        holder.join()
    assert sqlite_store.get_run(run.id).params == {"a": "1"}


def test_an_unreachable_postgresql_is_a_clear_error_after_the_patience() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing", patience=1.0)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="unreachable for 1 s"):
        with db.begin():
            pass
    with pytest.raises(DatabaseUnavailableError):
        with db.connect():
            pass
    assert time.monotonic() - started < 20
    db.dispose()


def _terminate_own_backend(conn) -> None:  # type: ignore[no-untyped-def]
    """Kill this connection's server process from a second connection, as an administrator would."""
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with conn.engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    time.sleep(0.1)


def test_a_connection_killed_mid_transaction_writes_nothing_and_the_store_recovers(pg_store: Store) -> None:
    with pg_store.start_run("kill") as run:
        pass
    with pytest.raises(DatabaseUnavailableError, match="mid-transaction.*Nothing"):
        with pg_store.db.begin() as conn:
            conn.execute(text("UPDATE runs SET name = 'half' WHERE id = :i"), {"i": run.id})
            _terminate_own_backend(conn)
            conn.execute(text("SELECT 1"))
    assert pg_store.get_run(run.id).name != "half"
    with pg_store.start_run("kill") as after:  # the pool reconnects: the next call just works
        after.set_tag("after", "yes")
    assert pg_store.get_run(after.id).tags["after"] == "yes"
    assert pg_store.fsck().ok


def test_database_run_starts_over_after_a_dropped_connection(pg_store: Store) -> None:
    attempts = []

    def work(conn) -> int:  # type: ignore[no-untyped-def]
        attempts.append(1)
        conn.execute(text("CREATE TABLE IF NOT EXISTS scratch (n integer)"))
        conn.execute(text("INSERT INTO scratch VALUES (1)"))
        if len(attempts) == 1:
            _terminate_own_backend(conn)
        return int(conn.execute(text("SELECT count(*) FROM scratch")).scalar())

    assert pg_store.db.run(work, patience=30) == 1  # the first attempt's row was never written
    assert len(attempts) == 2


def test_the_metric_flusher_survives_a_connection_killed_mid_flush(pg_store: Store,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = metrics_module.write_rows
    killed = []

    def write_rows_then_die_once(conn, rows) -> None:  # type: ignore[no-untyped-def]
        real(conn, rows)
        if not killed:
            killed.append(len(rows))
            _terminate_own_backend(conn)

    monkeypatch.setattr(metrics_module, "write_rows", write_rows_then_die_once)
    with pg_store.start_run("flush") as run:
        for i in range(300):
            run.log_metric("loss", float(i), step=i)
        run.flush()
    assert killed == [300]
    history = pg_store.get_metric_history(run.id, "loss")
    assert [m.step for m in history] == list(range(300))  # every value once: the killed flush wrote nothing
    assert pg_store.get_run(run.id).metrics["loss"].count == 300
