"""The metadata database: an engine with the settings mlkeep relies on.

SQLite gets WAL (readers never block the writer), `synchronous=NORMAL` (a
committed transaction survives a killed process; only a power cut can lose the
last ones), a long busy timeout, and enforced foreign keys. PostgreSQL needs
none of that. The schema is created and upgraded by Alembic, never by
`create_all`, so a store made today upgrades tomorrow.

Many writers at once (see `begin`): on SQLite a write transaction starts
with `BEGIN IMMEDIATE`, so it takes the write lock before it reads anything
and waits for it in SQLite's busy handler; a transaction that started as a
read and then tried to write would instead fail at once with "database is
locked" whenever another writer committed in between, and could not be
retried without re-running the caller's code. Taking the lock is retried
with backoff (`MLKEEP_DB_PATIENCE` seconds in all, default 600), so "database
is locked" never reaches the user while the database is merely busy; an
unreachable PostgreSQL (restarting, say) is waited for the same way. Past the
patience, or when a connection drops mid-transaction, the caller gets one
clear `DatabaseUnavailableError`. Schema upgrades take the
same lock (SQLite) or an advisory lock (PostgreSQL), so processes opening a
new store at once upgrade it once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Executable, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from mlkeep.errors import DatabaseUnavailableError, InvalidInputError, StoreClosedError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Revisions are numbered in order ("0001_initial_schema.py"), so the head is the
# highest number: adding a migration file is all it takes to move it.
HEAD_REVISION = max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
CACHE_KIB = 32 * 1024
# SQLite's own busy handler waits at most this long per attempt (less when the
# patience is shorter); `_patiently` retries around it for the rest.
BUSY_TIMEOUT_S = 30.0
# Any fixed 64-bit key: the advisory lock that serializes schema upgrades on PostgreSQL.
_UPGRADE_LOCK = 0x6D6C6B656570


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # The driver's own transaction handling is off: mlkeep's "begin" hook says
    # BEGIN or BEGIN IMMEDIATE itself (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    # Switching a new database to WAL needs a moment of exclusive access; many
    # processes opening one new store at once may find it busy.
    _patiently(lambda: cur.execute("PRAGMA journal_mode=WAL"), "switch to WAL", patience_from_env(), is_busy)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # 32 MiB of page cache instead of 2: a flush of many series inserts all over
    # the metrics index, and a small cache spends most of its time evicting.
    cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    """Start the transaction: IMMEDIATE (take the write lock now) for `Database.begin`.

    Said on the driver's connection: through `exec_driver_sql`, SQLAlchemy's execution machinery
    cost more than SQLite's BEGIN itself, on every transaction (a quarter of a one-point write).
    A "database is locked" comes out as the driver's error, which `is_busy` reads the same.
    """
    immediate = conn.get_execution_options().get("mlkeep_write", False)
    conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy": another writer holds the lock, try again."""
    orig = getattr(exc, "orig", exc)
    text_ = str(orig).lower()
    return type(orig).__name__ == "OperationalError" and ("locked" in text_ or "busy" in text_)


def is_disconnect(exc: BaseException) -> bool:
    """True when the database server cannot be reached or dropped the connection.

    PostgreSQL stopped, restarting, refusing connections (too many), or this
    backend terminated (`pg_terminate_backend`, an administrator shutdown).
    """
    if isinstance(exc, _ConnectionLost):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", exc)  # SQLAlchemy's wrapper, or the driver's own error (`Prepared`)
    if not type(orig).__module__.startswith("psycopg"):
        return False
    if not any(c.__name__ == "OperationalError" for c in type(orig).__mro__):
        return False
    code = getattr(orig, "sqlstate", None)  # None: the client could not connect at all
    return code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03", "53300")


def is_transient(exc: BaseException) -> bool:
    """True when running the same transaction again may succeed.

    SQLite busy or locked; PostgreSQL serialization failure (40001), deadlock
    (40P01), lock not available (55P03); the server unreachable or the
    connection lost (`pool_pre_ping` reconnects once it is back).
    """
    if is_busy(exc) or is_disconnect(exc):
        return True
    code = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return code in ("40001", "40P01", "55P03")


class _ConnectionLost(DatabaseUnavailableError):
    """The connection dropped inside a transaction: nothing was written, so `Database.run` may start over."""


class _CommitUnknown(DatabaseUnavailableError):
    """The connection dropped while committing, with no word from the server: written or not, no one knows."""


def patience_from_env() -> float:
    """Seconds a caller waits for a busy or unreachable database in all: `MLKEEP_DB_PATIENCE`, else 600."""
    raw = os.environ.get("MLKEEP_DB_PATIENCE", "600")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InvalidInputError(f"MLKEEP_DB_PATIENCE must be a number of seconds (0 or more), not {raw!r}.")
    return value


def _backoff(patience: float) -> Iterator[float]:
    """Sleep times: exponential from 10 ms up to 1 s, with jitter, until `patience` is used up."""
    deadline = time.monotonic() + patience
    delay = 0.01
    while time.monotonic() < deadline:
        yield min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic()))
        delay = min(delay * 2, 1.0)


def _patiently(fn: Callable[[], Any], what: str, patience: float, retry_if: Callable[[BaseException], bool]) -> Any:
    """`fn()`, again with backoff while it fails with an error `retry_if` accepts, for `patience` seconds.

    When patience runs out, that error becomes `DatabaseUnavailableError`
    (the cause kept): one sentence for the user instead of a driver error.
    """
    for pause in _backoff(patience):
        try:
            return fn()
        except Exception as exc:
            if not retry_if(exc):
                raise
            log.warning("database %s (%s); retrying in %.2fs", _state(exc), what, pause)
            time.sleep(pause)
    try:
        return fn()
    except Exception as exc:
        if not retry_if(exc):
            raise
        raise DatabaseUnavailableError(
            f"The metadata database stayed {_state(exc)} for {patience:g} s (trying to {what}): {_reason(exc)}. "
            "Nothing of this transaction was written; set MLKEEP_DB_PATIENCE to wait longer."
        ) from exc


def _state(exc: BaseException) -> str:
    if is_busy(exc):
        return "busy"
    return "unreachable" if is_disconnect(exc) or isinstance(exc, DatabaseUnavailableError) else "in conflict"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Database:
    """A SQLAlchemy engine plus the one rule for writing: one transaction per call.

    `patience` (default `MLKEEP_DB_PATIENCE`, 600 s) bounds how long a call
    waits for a busy or unreachable database before `DatabaseUnavailableError`.
    """

    def __init__(self, url: str, *, patience: float | None = None) -> None:
        self.url = url
        self.patience = patience_from_env() if patience is None else patience
        self.engine: Engine = _make_engine(url, self.patience)
        self.dialect = self.engine.dialect.name
        # An in-memory database is one connection shared by every thread (StaticPool):
        # one thread's commit, or the rollback that ends a read, would end another
        # thread's transaction half-way. There, one thread at a time uses it.
        self._shared = _is_memory(url)
        self._write_lock = threading.RLock()
        self._closed = False

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in this process only (one shared connection, gone once closed)."""
        return self._shared

    def prepared(self, build: Build) -> Prepared:
        """`prepared(self.engine.dialect, build)`: see there."""
        return prepared(self.engine.dialect, build)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on exit, rolled back on error.

        On SQLite the transaction holds the write lock from its first
        statement (`BEGIN IMMEDIATE`); while another process holds it, this
        waits (busy handler, then backoff) up to `patience` seconds instead of
        failing with "database is locked". An unreachable PostgreSQL is waited
        for the same way. Raises `DatabaseUnavailableError` when patience runs
        out or the connection drops mid-transaction (nothing is written then).
        """
        if self._shared:
            with self._write_lock:
                self._check_open()
                with self.engine.begin() as conn:
                    yield conn
            return
        conn = self._begin_writing()
        with conn:
            try:
                yield conn
            except Exception as exc:
                _rollback(conn)
                if is_disconnect(exc) and not isinstance(exc, DatabaseUnavailableError):
                    raise _ConnectionLost(
                        f"Lost the connection to the metadata database mid-transaction: {_reason(exc)}. "
                        "Nothing of this transaction was written."
                    ) from exc
                raise
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.commit()
            except Exception as exc:
                if not is_disconnect(exc):
                    raise
                if getattr(getattr(exc, "orig", exc), "sqlstate", None):
                    # The server said why it ended the session (terminated, shutting down):
                    # it did so instead of committing, so nothing was written.
                    raise _ConnectionLost(
                        f"The metadata database ended the connection before committing: {_reason(exc)}. "
                        "Nothing of this transaction was written."
                    ) from exc
                raise _CommitUnknown(
                    f"Lost the connection to the metadata database while committing: {_reason(exc)}. "
                    "The transaction may or may not have been written."
                ) from exc

    def _begin_writing(self) -> Connection:
        """A connection whose transaction has begun, waited for while the database is busy or unreachable."""

        def attempt() -> Connection:
            conn = self.engine.connect().execution_options(mlkeep_write=True)
            try:
                conn.begin()
            except BaseException:
                conn.close()
                raise
            return conn

        return _patiently(attempt, f"begin a write to {self.dialect}", self.patience,
                          lambda e: is_busy(e) or is_disconnect(e))

    def run(self, work: Callable[[Connection], Any], *, patience: float | None = None,
            at_least_once: bool = False) -> Any:
        """`work(conn)` in one transaction, run again while it fails for a transient reason.

        For work that may lose a race it cannot see coming: a PostgreSQL
        deadlock or serialization failure, a connection dropped by a
        restarting server, a busy SQLite. `work` must be safe to re-run (it
        starts over on a fresh transaction). Other errors propagate at once;
        `DatabaseUnavailableError` once `patience` (default `self.patience`)
        is used up. A connection lost *while committing* leaves it unknown
        whether the work was written: that is an error too, unless
        `at_least_once` (writing it twice is better than losing it).
        """

        def attempt() -> Any:
            with self.begin() as conn:
                return work(conn)

        def retry_if(exc: BaseException) -> bool:
            return is_transient(exc) or (at_least_once and isinstance(exc, _CommitUnknown))

        return _patiently(attempt, "run a transaction", self.patience if patience is None else patience, retry_if)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (waited for while the database is unreachable, as `begin`)."""
        if self._shared:
            with self._write_lock:
                self._check_open()
                with self.engine.connect() as conn:
                    yield conn
            return
        conn = _patiently(self.engine.connect, f"read from {self.dialect}", self.patience, is_disconnect)
        with conn:
            try:
                yield conn
            except Exception as exc:
                if is_disconnect(exc) and not isinstance(exc, DatabaseUnavailableError):
                    raise DatabaseUnavailableError(
                        f"Lost the connection to the metadata database mid-read: {_reason(exc)}."
                    ) from exc
                raise

    def revision(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.connect() as conn:
            if not self.engine.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        # One upgrader at a time (others wait, then find the schema current):
        # SQLite's write lock, PostgreSQL's advisory lock for this transaction.
        with self.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ensure_schema(self) -> None:
        """Upgrade only when needed: one cheap query on every open."""
        if self.revision() != HEAD_REVISION:
            log.info("upgrading metadata schema of %s", self.url)
            self.upgrade()

    def dispose(self) -> None:
        """Close every connection; an in-memory database waits for the thread using it, then is gone."""
        if self._shared:
            with self._write_lock:
                self._closed = True
                self.engine.dispose()
            return
        self.engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"The in-memory store {self.url} was closed; its data is gone.")


def _rollback(conn: Connection) -> None:
    """Roll back; on a connection that is already gone there is nothing to undo."""
    try:
        conn.rollback()
    except Exception as exc:
        if not is_disconnect(exc):
            raise


Build = Callable[[str], tuple[Executable, Sequence[str]]]
_PREPARED: dict[tuple[str, Build], Prepared] = {}


def prepared(dialect: Dialect, build: Build) -> Prepared:
    """The statement `build(dialect.name)` returns, compiled once per dialect.

    `build` (a module-level function: it is the cache key) returns a
    SQLAlchemy statement whose parameters are `bindparam`s, and their names
    in the order callers pass values.
    """
    found = _PREPARED.get((dialect.name, build))
    if found is None:
        stmt, names = build(dialect.name)
        found = _PREPARED[(dialect.name, build)] = Prepared(stmt, dialect, names)
    return found


class Prepared:
    """A SQLAlchemy statement compiled for one dialect, run on the connection's DBAPI cursor.

    For the hot paths of tracking (a metric flush, the three transactions of a
    run): SQLAlchemy's per-execution work costs tens of microseconds per
    statement and several per row of an executemany, more than SQLite needs to
    write the row. The SQL still comes from SQLAlchemy constructs, so it is
    the dialect's own (qmark for SQLite, pyformat for psycopg), and it runs in
    the caller's transaction. Values go in as tuples in `names` order, as
    given: no type processing, so pass plain str, int, float or None.
    """

    __slots__ = ("sql", "names", "_order", "_named", "_lock_order")

    def __init__(self, stmt: Executable, dialect: Dialect, names: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql = str(compiled)
        self.names = tuple(names)
        self._lock_order = _conflict_key(stmt, self.names)
        self._named = not compiled.positional
        order: list[int] | None = None
        if compiled.positional:
            order = [self.names.index(n) for n in compiled.positiontup or ()]
            if order == list(range(len(self.names))):
                order = None
        self._order = order

    def _param(self, row: Sequence[Any]) -> Any:
        if self._named:
            return dict(zip(self.names, row))
        if self._order is not None:
            return tuple(row[i] for i in self._order)
        return row

    def execute(self, conn: Connection, row: Sequence[Any] = ()) -> Any:
        """Run once with `row`; returns the DBAPI cursor (fetch from it, read `rowcount`)."""
        cur = conn.connection.cursor()
        cur.execute(self.sql, self._param(row))
        return cur

    def executemany(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> int:
        """Run once per row of `rows`, in one call to the driver.

        Returns the driver's `rowcount`: rows changed in total for SQLite and
        psycopg 3, -1 where a driver cannot tell.
        """
        if not rows:
            return 0
        if self._lock_order is not None and len(rows) > 1:
            # Every writer upserts rows in the same order (by the conflict key;
            # a stable sort keeps repeated keys in the caller's order), so two
            # transactions never wait for each other's rows in a cycle: no
            # PostgreSQL deadlock between concurrent flushes to one run.
            key = self._lock_order
            rows = sorted(rows, key=lambda r: tuple("" if r[i] is None else r[i] for i in key))
        if self._named or self._order is not None:
            rows = [self._param(r) for r in rows]
        cur = conn.connection.cursor()
        try:
            cur.executemany(self.sql, rows)
            return int(cur.rowcount)
        finally:
            cur.close()


def _conflict_key(stmt: Executable, names: Sequence[str]) -> tuple[int, ...] | None:
    """Positions in `names` of the conflict target of an INSERT ... ON CONFLICT (else its primary key)."""
    clause = getattr(stmt, "_post_values_clause", None)
    if clause is None or not hasattr(clause, "inferred_target_elements"):
        return None
    target = clause.inferred_target_elements or list(stmt.table.primary_key.columns.keys())  # type: ignore[attr-defined]
    columns = [t if isinstance(t, str) else getattr(t, "key", None) for t in target]
    if not columns or any(c not in names for c in columns):
        return None
    return tuple(names.index(c) for c in columns)  # type: ignore[arg-type]


def _is_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def _make_engine(url: str, patience: float) -> Engine:
    if url.startswith("sqlite"):
        memory = _is_memory(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": min(BUSY_TIMEOUT_S, patience)},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)
