"""`fsck`: check that a store is whole, as `git fsck` does for a repository.

It checks the metadata database's own integrity (SQLite), that every object
the metadata refers to exists (`mlkeep.references`: run artifacts and
environments, datasets, models, predictions, commits with their trees, chunks
and skeletons, intermediates' manifests, chunks and skeletons),
that every stored object still matches its hash, and that every commit's
weights can be rebuilt bit for bit. Leftover
temporary files of writers killed mid-write are harmless (nothing refers to
them) and are only reported; `repair=True` deletes them. A corrupt object is
reported with the entities that name it (`affected`); `repair=True` moves it
to the object store's quarantine folder, so that the next write of the same
content stores a good copy instead of finding the bad one "already there".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import MlkeepError
from mlkeep.metadata.tables import commits
from mlkeep.references import references

if TYPE_CHECKING:
    from mlkeep.store import Store

Progress = Callable[[str, int, int], None]


@dataclass
class FsckReport:
    """What `fsck` found; `ok` is False when anything is missing or corrupt."""

    database: list[str] = field(default_factory=list)  # integrity messages other than "ok"
    objects_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    affected: list[dict[str, str]] = field(default_factory=list)  # {"object", "kind", "id"} of each corrupt object
    quarantined: list[str] = field(default_factory=list)  # where `repair` moved the corrupt objects
    missing: list[dict[str, str]] = field(default_factory=list)  # {"kind", "id", "object"}
    broken_commits: list[dict[str, str]] = field(default_factory=list)
    temporary_files: list[str] = field(default_factory=list)
    removed_temporary_files: int = 0

    @property
    def ok(self) -> bool:
        return not (self.database or self.corrupt or self.missing or self.broken_commits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def fsck(store: Store, *, repair: bool = False, progress: Progress | None = None) -> FsckReport:
    """Check the whole store; with `repair`, quarantine corrupt objects and remove leftover temporary files."""
    report = FsckReport(database=_database_problems(store))
    stored = set()
    for i, oid in enumerate(store.objects):
        stored.add(oid)
        if not store.objects.verify(oid):
            report.corrupt.append(oid)
        report.objects_checked += 1
        if progress:
            progress("objects", i + 1, 0)
    corrupt = set(report.corrupt)
    for ref in references(store):
        if ref.object not in stored:
            report.missing.append({"kind": ref.kind, "id": ref.entity, "object": ref.object})
        elif ref.object in corrupt:
            report.affected.append({"object": ref.object, "kind": ref.kind, "id": ref.entity})
    for commit_id, repo, tree in _commits(store):
        try:
            store.tensors.verify(tree)
        except MlkeepError as exc:
            report.broken_commits.append({"commit": commit_id, "repository": repo, "error": str(exc)})
    report.temporary_files = store.objects.temporary_files()
    if repair:
        report.quarantined = [store.objects.quarantine(oid) for oid in report.corrupt]
        for path in report.temporary_files:
            store.objects.fs.rm(path)
        report.removed_temporary_files = len(report.temporary_files)
    return report


def _database_problems(store: Store) -> list[str]:
    if store.db.dialect != "sqlite":
        return []  # PostgreSQL guards its own pages; nothing to check from a client
    with store.db.connect() as conn:
        rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").all()]
        fk = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    return [r for r in rows if r != "ok"] + [f"foreign key violation in {r[0]} row {r[1]}" for r in fk]


def _commits(store: Store) -> Iterator[tuple[str, str, str]]:
    from mlkeep.metadata.tables import repositories

    with store.db.connect() as conn:
        rows = conn.execute(
            select(commits.c.id, repositories.c.name, commits.c.tree)
            .join(repositories, repositories.c.id == commits.c.repo_id)
            .where(commits.c.pruned_time.is_(None))
        ).all()
    yield from ((r[0], r[1], r[2]) for r in rows)
