"""Every object the metadata names, and which entity names it.

One walk shared by the store-wide verbs: `gc` keeps what it yields, `fsck`
checks that each object is there and whole (and names the entities a
corrupt one affects), `du` charges each object's bytes to the groups whose
entities name it. Keeping the walk in one place keeps the three in
agreement: an object fsck expects is an object gc keeps and du counts.

What names objects:

- runs: their artifacts and their environment document;
- models and predictions: their serialized object; datasets: their content;
- commits: the commit object and, unless retention dropped the weights, the
  tensor tree, every chunk object it needs (delta bases down to each chain's
  root) and an estimator's pickled skeleton;
- intermediates: the module skeleton, the targets object per-class queries
  read, and, when stored, the manifest, every
  chunk it names and the base of each chunk stored as a delta.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import MlkeepError, NotFoundError
from mlkeep.metadata.tables import artifacts, commits, datasets, intermediates, models, predictions, repositories, runs

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)

# Kinds whose logical size is the object's own content (read from its header when needed). The others
# carry their logical size from the metadata, or count 0 because their entity's tree or manifest covers it.
BLOB_KINDS = frozenset({"model", "prediction", "dataset", "environment", "commit", "skeleton", "intermediate skeleton",
                        "intermediate labels"})


@dataclass(frozen=True)
class Reference:
    """One object named by one entity.

    `entity` is the naming entity's id (`run/path` for an artifact, the run
    for an environment document, the commit for its tree and chunks, the
    intermediate for its manifest and chunks). `run` and `repository` place
    the entity, for grouping. `logical` is the uncompressed size the
    reference stands for when the metadata knows it (an artifact's size, a
    tree's tensor bytes, an intermediate's raw float32 bytes); 0 for objects
    whose size their tree or manifest already counts; None for a blob whose
    size is its own content.
    """

    kind: str
    entity: str
    object: str
    run: str | None = None
    repository: str | None = None
    logical: int | None = None


def references(store: Store) -> Iterator[Reference]:
    """Every reference in the store; unreadable trees and manifests are skipped (fsck reports them)."""
    yield from tracking_references(store)
    yield from commit_references(store)
    yield from intermediate_references(store)


def tracking_references(store: Store) -> Iterator[Reference]:
    """Run artifacts and environment documents, and the objects of models, predictions and datasets."""
    with store.db.connect() as conn:
        for run_id, path, oid, size in conn.execute(
            select(artifacts.c.run_id, artifacts.c.path, artifacts.c.object, artifacts.c.size)
        ):
            yield Reference("artifact", f"{run_id}/{path}", oid, run=run_id, logical=size)
        for run_id, environment in conn.execute(select(runs.c.id, runs.c.environment).where(runs.c.environment.is_not(None))):
            oid = _field(environment, "object")
            if oid:
                yield Reference("environment", run_id, oid, run=run_id)
        for table, kind in ((models, "model"), (predictions, "prediction")):
            for entity_id, oid, run_id in conn.execute(
                select(table.c.id, table.c.object, table.c.run_id).where(table.c.object.is_not(None))
            ):
                yield Reference(kind, entity_id, oid, run=run_id)
        for entity_id, document in conn.execute(select(datasets.c.id, datasets.c.document)):
            oid = _field(document, "object")
            if oid:
                yield Reference("dataset", entity_id, oid)


def commit_references(store: Store, *, strict: bool = False) -> Iterator[Reference]:
    """Each commit's object, tree, chunk objects and skeleton (only the object for a pruned commit).

    A missing tree is logged and its chunks are not listed. With `strict`, a
    tree that cannot be read for any other reason (corrupt) raises, so that
    `gc` deletes nothing on partial knowledge; without, it is skipped.
    """
    from mlkeep.versioning.commit import read_commit

    with store.db.connect() as conn:
        rows = conn.execute(
            select(commits.c.id, commits.c.tree, commits.c.pruned_time, commits.c.run_id, repositories.c.name)
            .join(repositories, repositories.c.id == commits.c.repo_id)
        ).all()
    for commit_id, tree, pruned, run_id, repo in rows:
        yield Reference("commit", commit_id, commit_id, run=run_id, repository=repo)
        if pruned is not None:
            continue  # retention dropped these weights on purpose
        try:
            logical = store.tensors.tree_info(tree).nbytes
            needed = store.tensors.tree_objects(tree)
        except NotFoundError:
            log.warning("commit %s names a missing tree %s (run `mlkeep fsck`)", commit_id, tree)
            needed, logical = set(), 0
        except MlkeepError:
            if strict:
                raise
            needed, logical = set(), 0
        yield Reference("tree", commit_id, tree, run=run_id, repository=repo, logical=logical)
        for oid in sorted(needed - {tree}):
            yield Reference("chunk", commit_id, oid, run=run_id, repository=repo, logical=0)
        try:
            commit = read_commit(store.objects, commit_id)
        except MlkeepError:
            continue  # a missing or corrupt commit object: reported by fsck through the reference above
        skeleton = commit.extra.get("skeleton")
        if isinstance(skeleton, str):
            yield Reference("skeleton", commit_id, skeleton, run=run_id, repository=repo)


def intermediate_references(store: Store, *, strict: bool = False) -> Iterator[Reference]:
    """Each intermediate's skeleton, labels, manifest, chunks and delta bases.

    An unreadable (missing or corrupt) manifest names no chunks; with
    `strict` it raises instead, so that `gc` deletes nothing on partial knowledge.
    """
    from mlkeep.intermediates.storage import get_manifest

    with store.db.connect() as conn:
        rows = conn.execute(
            select(intermediates.c.id, intermediates.c.manifest, intermediates.c.document, intermediates.c.raw_bytes,
                   intermediates.c.repository, commits.c.run_id)
            .outerjoin(commits, commits.c.id == intermediates.c.commit_id)
        ).all()
    for inter_id, manifest, document, raw_bytes, repo, run_id in rows:
        skeleton = _field(document, "skeleton")
        if skeleton:
            yield Reference("intermediate skeleton", inter_id, skeleton, run=run_id, repository=repo)
        labels = _field(document, "labels")  # the dataset's targets, for per-class queries
        if labels:
            yield Reference("intermediate labels", inter_id, labels, run=run_id, repository=repo)
        if not manifest:
            continue  # recomputed on demand: nothing stored
        yield Reference("manifest", inter_id, manifest, run=run_id, repository=repo, logical=raw_bytes)
        try:
            doc = get_manifest(store.objects, manifest)
        except MlkeepError:
            if strict:
                raise
            continue  # a missing or corrupt manifest is reported through the reference above
        named = {oid for block in doc["chunks"] for oid in block}
        named.update(base for base, _content in dict(doc.get("deltas") or {}).values())
        for oid in sorted(named):
            yield Reference("intermediate chunk", inter_id, oid, run=run_id, repository=repo, logical=0)


def _field(document: str | None, key: str) -> Any:
    """`document[key]` of a JSON object document; None when absent or the document is not one."""
    try:
        value = json.loads(document) if document else None
    except ValueError:
        return None
    return value.get(key) if isinstance(value, dict) else None
