"""`du`: where a store's bytes go, after de-duplication.

Every object the metadata names (`mlkeep.references`) is charged to the
groups whose entities name it: by kind of entity, by experiment (through
the run that made it), by repository (model versions' weights) or by
intermediate. Content addressing stores a blob once however many entities
name it, so a group's *logical* bytes (what its entities reference,
uncompressed, each reference counted) can far exceed what it *stores*.

The totals add up honestly: an object named by one group only is counted in
that group; one named by several groups is counted once, in `shared` (and
listed per group as `shared_bytes`, outside the sum); one named only by
entities the grouping does not cover (an artifact when grouping by
repository) is counted in `other`; one nothing names (left by an
unfinished writer, or a gc candidate) in `unreferenced`. Groups + shared +
other + unreferenced = every object in the store, at its stored size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import InvalidInputError, MlkeepError
from mlkeep.metadata.tables import experiments, intermediates, runs
from mlkeep.references import BLOB_KINDS, Reference, references

if TYPE_CHECKING:
    from mlkeep.store import Store

GROUPINGS = ("kind", "experiment", "repo", "intermediate")

# The entity family each reference kind belongs to, for the grouping by kind.
_FAMILY = {
    "artifact": "artifacts",
    "environment": "environments",
    "model": "models",
    "prediction": "predictions",
    "dataset": "datasets",
    "commit": "model versions",
    "tree": "model versions",
    "chunk": "model versions",
    "skeleton": "model versions",
    "intermediate skeleton": "intermediates",
    "intermediate labels": "intermediates",
    "manifest": "intermediates",
    "intermediate chunk": "intermediates",
}


@dataclass
class Bytes:
    """A count of distinct objects and their stored (compressed) bytes."""

    objects: int = 0
    stored_bytes: int = 0

    def add(self, size: int) -> None:
        self.objects += 1
        self.stored_bytes += size


@dataclass
class UsageGroup:
    """One group's share of the store.

    `objects` / `stored_bytes`: the objects only this group names, each
    counted once. `shared_objects` / `shared_bytes`: objects it names that
    other groups name too (counted in the report's `shared`, not here).
    `logical_bytes`: the uncompressed bytes its entities reference, every
    reference counted, as if nothing were shared or compressed.
    """

    group: str
    label: str
    entities: int = 0
    references: int = 0
    logical_bytes: int = 0
    objects: int = 0
    stored_bytes: int = 0
    shared_objects: int = 0
    shared_bytes: int = 0


@dataclass
class UsageReport:
    """Where the bytes go under one grouping; see the module docstring for how the totals add up."""

    by: str
    groups: list[UsageGroup] = field(default_factory=list)
    shared: Bytes = field(default_factory=Bytes)  # named by two or more groups (or a group and `other`)
    other: Bytes = field(default_factory=Bytes)  # named only by entities outside this grouping
    unreferenced: Bytes = field(default_factory=Bytes)  # named by nothing
    total: Bytes = field(default_factory=Bytes)  # every object in the store
    logical_bytes: int = 0  # summed over the groups
    missing: int = 0  # references to objects not in the store (`mlkeep fsck` tells which)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def du(store: Store, *, by: str = "kind") -> UsageReport:
    """How the store's bytes divide between groups of entities: `by` is "kind" (artifacts, models,
    datasets, model versions, intermediates, ...), "experiment", "repo" or "intermediate".

    Sizes are the object store's own (one listing); logical sizes come from
    the metadata, or from a blob's frame header when only the blob knows.
    Raises `InvalidInputError` for an unknown grouping.
    """
    if by not in GROUPINGS:
        raise InvalidInputError(f"Cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}.")
    stored = {oid: size for oid, size, _ in store.objects.entries()}
    group_of, label_of = _grouping(store, by)
    report = UsageReport(by=by)
    groups: dict[str, UsageGroup] = {}
    entities: dict[str, set[str]] = defaultdict(set)
    owners: dict[str, set[str | None]] = defaultdict(set)
    content: dict[str, int] = {}
    for ref in references(store):
        if ref.object not in stored:
            report.missing += 1
            continue
        key = group_of(ref)
        owners[ref.object].add(key)
        if key is None:
            continue
        if key not in groups:
            groups[key] = UsageGroup(key, label_of(key))
        group = groups[key]
        entities[key].add(ref.entity)
        group.references += 1
        group.logical_bytes += _logical(store, ref, content)
    for oid, size in stored.items():
        report.total.add(size)
        named = owners.get(oid, set())
        keys = [groups[k] for k in named if k is not None]
        if not named:
            report.unreferenced.add(size)
        elif len(named) > 1:  # two groups, or a group and entities outside the grouping
            report.shared.add(size)
            for g in keys:
                g.shared_objects += 1
                g.shared_bytes += size
        elif not keys:
            report.other.add(size)
        else:
            keys[0].objects += 1
            keys[0].stored_bytes += size
    for key, group in groups.items():
        group.entities = len(entities[key])
    report.groups = sorted(groups.values(), key=lambda g: (-g.stored_bytes, -g.logical_bytes, g.label))
    report.logical_bytes = sum(g.logical_bytes for g in report.groups)
    return report


def _logical(store: Store, ref: Reference, content: dict[str, int]) -> int:
    """The uncompressed bytes one reference stands for (a blob's own size read once per object)."""
    if ref.logical is not None:
        return ref.logical
    if ref.kind not in BLOB_KINDS:
        return 0
    if ref.object not in content:
        try:
            content[ref.object] = store.objects.content_size(ref.object)
        except MlkeepError:
            content[ref.object] = 0  # corrupt: `mlkeep fsck` reports it; it holds no usable bytes
    return content[ref.object]


Grouper = Callable[[Reference], "str | None"]


def _grouping(store: Store, by: str) -> tuple[Grouper, Callable[[str], str]]:
    """(group key of a reference or None when the grouping does not cover it, label of a group key)."""
    if by == "kind":
        return _family, str
    if by == "repo":
        return (lambda r: r.repository if _family(r) == "model versions" else None), str
    if by == "intermediate":
        with store.db.connect() as conn:  # a capture names each of its layers `capture:layer`
            names = dict(conn.execute(select(intermediates.c.id, intermediates.c.name)).all())
        return (lambda r: r.entity if _family(r) == "intermediates" else None), lambda k: names.get(k, k)
    with store.db.connect() as conn:
        experiment_of = dict(conn.execute(select(runs.c.id, runs.c.experiment_id)).all())
        exp_names = dict(conn.execute(select(experiments.c.id, experiments.c.name)).all())
    return (lambda r: experiment_of.get(r.run) if r.run else None), lambda k: exp_names.get(k, k)


def _family(ref: Reference) -> str:
    return _FAMILY[ref.kind]
