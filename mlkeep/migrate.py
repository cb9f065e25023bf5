"""`migrate`: copy a whole store to another database and object store, losing nothing.

The way a team moves a laptop's store (SQLite + local folder) to PostgreSQL +
S3. Objects go first, then tables, so the target never holds a row whose
object is missing, even when a migration is interrupted. Tables are copied
parents before children (foreign keys), rows keep their ids, and a row the
target already has is skipped: running `migrate` again resumes an
interrupted copy, or brings the target up to date with what was written
since the last one (new rows added, changed rows such as a moved branch
head updated). At the end
every table is compared by row count and by an order-independent digest of
its rows, and every object is re-hashed in the target.

Stop the writers of the source first: rows written during a migration may or
may not be copied (a second run copies them).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Table, func, select, text

from mlkeep.metadata import Database
from mlkeep.metadata.tables import metadata
from mlkeep.metadata.upsert import insert_for_dialect
from mlkeep.objects import ObjectStore

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
BATCH = 2000
THREADS = 8


@dataclass
class TableReport:
    """One table: rows in the source, rows inserted now, rows in the target, digests equal."""

    source: int = 0
    copied: int = 0
    target: int = 0
    same: bool = False


@dataclass
class MigrationReport:
    """What `migrate` copied and checked; `ok` only when every table and object matches."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    objects: int = 0
    objects_copied: int = 0
    bytes_copied: int = 0
    objects_verified: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def migrate(store: Store, to_database: str, to_objects: str, progress: Progress | None = None) -> MigrationReport:
    """Copy `store` to the database `to_database` and the object store `to_objects`, then check it.

    The target database is created or upgraded to the current schema
    (Alembic) first. Idempotent: objects already in the target are not
    copied again, and rows already there are updated to the source's values. Never raises for a mismatch: the report's
    `problems` lists every table or object that does not match (`ok` is
    False); raises the database's or object store's own error when one of
    them cannot be reached.
    """
    report = MigrationReport()
    target = Database(to_database)
    try:
        target.ensure_schema()
        objects = ObjectStore.from_url(to_objects)
        _copy_objects(store.objects, objects, report, progress)
        for table in metadata.sorted_tables:
            report.tables[table.name] = _copy_table(store.db, target, table, progress)
        _reset_sequences(target)
        _check_tables(store.db, target, report)
        _check_objects(store.objects, objects, report, progress)
    finally:
        target.dispose()
    return report


# -- objects ---------------------------------------------------------------------------
def _copy_objects(src: ObjectStore, dst: ObjectStore, report: MigrationReport, progress: Progress | None) -> None:
    ids = list(src)
    report.objects = len(ids)

    def copy(oid: str) -> int:
        if dst.exists(oid):
            return -1
        with src.open_compressed(oid) as f:
            dst.put_stream(oid, f)
            return int(f.tell())

    with ThreadPoolExecutor(THREADS) as pool:
        for i, n in enumerate(pool.map(copy, ids)):
            if n >= 0:
                report.objects_copied += 1
                report.bytes_copied += n
            if progress:
                progress("objects", i + 1, len(ids))


def _check_objects(src: ObjectStore, dst: ObjectStore, report: MigrationReport, progress: Progress | None) -> None:
    ids = list(src)

    def check(oid: str) -> str | None:
        try:
            return None if dst.verify(oid) else f"object {oid} does not match its hash in the target"
        except Exception as exc:
            return f"object {oid} is missing from the target ({type(exc).__name__})"

    with ThreadPoolExecutor(THREADS) as pool:
        for i, problem in enumerate(pool.map(check, ids)):
            if problem:
                report.problems.append(problem)
            else:
                report.objects_verified += 1
            if progress:
                progress("verify", i + 1, len(ids))


# -- tables ----------------------------------------------------------------------------
def _copy_table(src: Database, dst: Database, table: Table, progress: Progress | None) -> TableReport:
    result = TableReport()
    insert = _mirror(dst, table)
    names = [c.name for c in table.columns]
    with dst.connect() as conn:
        before = _count(conn, table)
    for batch in _batches(src, table):
        with dst.begin() as conn:  # one transaction per batch: an interruption keeps what was copied
            conn.execute(insert, [dict(zip(names, r)) for r in batch])
        result.source += len(batch)
        if progress:
            progress(table.name, result.source, 0)
    with dst.connect() as conn:
        result.copied = _count(conn, table) - before
    return result


def _mirror(dst: Database, table: Table) -> Any:
    """INSERT that makes the target row equal the source row: new rows added, changed ones updated.

    Most rows never change once written, but some do (a branch head, a run
    that ended, the latest value of a metric): a second migration must bring
    those up to date too, not keep the first copy.
    """
    stmt = insert_for_dialect(dst.dialect)(table)
    key = [c.name for c in table.primary_key]
    rest = [c.name for c in table.columns if not c.primary_key]
    if not rest:
        return stmt.on_conflict_do_nothing()
    return stmt.on_conflict_do_update(index_elements=key, set_={n: stmt.excluded[n] for n in rest})


def _batches(db: Database, table: Table) -> Iterator[Sequence[Sequence[Any]]]:
    """The table's rows in batches; a table pointing at itself comes parents first."""
    parent = _self_reference(table)
    with db.connect() as conn:
        if parent is None:
            result = conn.execution_options(yield_per=BATCH).execute(select(table))
            for part in result.partitions(BATCH):
                yield [tuple(r) for r in part]
            return
        rows = [tuple(r) for r in conn.execute(select(table))]
    yield from _chunks(_parents_first(table, parent, rows), BATCH)


def _self_reference(table: Table) -> Column[Any] | None:
    for fk in table.foreign_keys:
        if fk.column.table is table:
            return fk.parent
    return None


def _parents_first(table: Table, parent: Column[Any], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows ordered so that every row comes after the row its `parent` column names."""
    key = [c.name for c in table.columns].index(next(iter(table.primary_key)).name)
    ref = [c.name for c in table.columns].index(parent.name)
    by_id = {r[key]: r for r in rows}
    done: set[Any] = set()
    ordered: list[tuple[Any, ...]] = []
    for first in rows:
        chain = []
        row: tuple[Any, ...] | None = first
        while row is not None and row[key] not in done:
            chain.append(row)
            done.add(row[key])
            row = by_id.get(row[ref])
        ordered.extend(reversed(chain))
    return ordered


def _chunks(rows: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(rows), n):
        yield rows[i : i + n]


def _count(conn: Any, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _reset_sequences(db: Database) -> None:
    """Copied ids bypass PostgreSQL's sequences; move each past the largest id so new rows fit."""
    if db.dialect != "postgresql":
        return
    with db.begin() as conn:
        for table in metadata.sorted_tables:
            for col in table.primary_key:
                if col.autoincrement is True:
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{col.name}'), "
                        f"GREATEST((SELECT MAX({col.name}) FROM {table.name}), 1))"
                    ))


def _check_tables(src: Database, dst: Database, report: MigrationReport) -> None:
    for table in metadata.sorted_tables:
        count_a, digest_a = table_digest(src, table)
        count_b, digest_b = table_digest(dst, table)
        entry = report.tables[table.name]
        entry.target, entry.same = count_b, (count_a, digest_a) == (count_b, digest_b)
        if count_a != count_b:
            report.problems.append(f"table {table.name}: {count_a} rows in the source, {count_b} in the target")
        elif digest_a != digest_b:
            report.problems.append(f"table {table.name}: same row count, different contents")


def table_digest(db: Database, table: Table) -> tuple[int, str]:
    """(rows, digest) of a table; the digest ignores row order, so two engines' sort orders agree."""
    total, count = 0, 0
    with db.connect() as conn:
        for part in conn.execution_options(yield_per=BATCH).execute(select(table)).partitions(BATCH):
            for row in part:
                line = json.dumps(list(row), default=str, allow_nan=True).encode()
                total = (total + int.from_bytes(hashlib.sha256(line).digest(), "big")) % (1 << 256)
                count += 1
    return count, f"{total:064x}"
