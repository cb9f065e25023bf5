"""`fsck`: check that a store is whole, as `git fsck` does for a repository.

It checks the metadata database's own integrity (SQLite), that every object
the metadata refers to exists (run artifacts, datasets, models, predictions,
commits and their trees, intermediates' manifests and the chunks they name),
that every stored object still matches its hash, and that every commit's
weights can be rebuilt bit for bit. Leftover
temporary files of writers killed mid-write are harmless (nothing refers to
them) and are only reported; `repair=True` deletes them. A corrupt object is
reported with the entities that name it (`affected`); `repair=True` moves it
to the object store's quarantine folder, so that the next write of the same
content stores a good copy instead of finding the bad one "already there".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import MlkeepError
from mlkeep.gc import object_ids
from mlkeep.metadata.tables import artifacts, commits, datasets, intermediates, models, predictions

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
    for kind, entity_id, oid in _references(store):
        if oid not in stored:
            report.missing.append({"kind": kind, "id": entity_id, "object": oid})
        elif oid in corrupt:
            report.affected.append({"object": oid, "kind": kind, "id": entity_id})
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


def _references(store: Store) -> Iterator[tuple[str, str, str]]:
    """(kind, entity id, object id) for every object the metadata points to."""
    with store.db.connect() as conn:
        for run_id, path, oid in conn.execute(select(artifacts.c.run_id, artifacts.c.path, artifacts.c.object)):
            yield "artifact", f"{run_id}/{path}", oid
        for table, kind in ((models, "model"), (predictions, "prediction")):
            for entity_id, oid in conn.execute(select(table.c.id, table.c.object).where(table.c.object.is_not(None))):
                yield kind, entity_id, oid
        for entity_id, document in conn.execute(select(datasets.c.id, datasets.c.document)):
            oid = json.loads(document).get("object")
            if oid:
                yield "dataset", entity_id, oid
        for commit_id, tree, pruned in conn.execute(select(commits.c.id, commits.c.tree, commits.c.pruned_time)):
            yield "commit", commit_id, commit_id
            if pruned is None:  # retention dropped the weights of a pruned commit on purpose
                yield "tree", commit_id, tree
        stored = conn.execute(select(intermediates.c.id, intermediates.c.manifest)
                              .where(intermediates.c.manifest.is_not(None))).all()
    for inter_id, manifest in stored:
        yield "intermediate", inter_id, manifest
        try:
            named = object_ids(json.loads(store.objects.get_bytes(manifest)))
        except (MlkeepError, FileNotFoundError, ValueError):
            continue  # a missing or corrupt manifest is reported as such
        for oid in named:
            yield "intermediate chunk", inter_id, oid


def _commits(store: Store) -> Iterator[tuple[str, str, str]]:
    from mlkeep.metadata.tables import repositories

    with store.db.connect() as conn:
        rows = conn.execute(
            select(commits.c.id, repositories.c.name, commits.c.tree)
            .join(repositories, repositories.c.id == commits.c.repo_id)
            .where(commits.c.pruned_time.is_(None))
        ).all()
    yield from ((r[0], r[1], r[2]) for r in rows)
