"""The metadata database: an engine with the settings mlkeep relies on.

SQLite gets WAL (readers never block the writer), `synchronous=NORMAL` (a
committed transaction survives a killed process; only a power cut can lose the
last ones), a long busy timeout, and enforced foreign keys. PostgreSQL needs
none of that. The schema is created and upgraded by Alembic, never by
`create_all`, so a store made today upgrades tomorrow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

HEAD_REVISION = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """A SQLAlchemy engine plus the one rule for writing: one transaction per call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        self.dialect = self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def revision(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.engine.connect() as conn:
            if not self.engine.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ensure_schema(self) -> None:
        """Upgrade only when needed: one cheap query on every open."""
        if self.revision() != HEAD_REVISION:
            log.info("upgrading metadata schema of %s", self.url)
            self.upgrade()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)
