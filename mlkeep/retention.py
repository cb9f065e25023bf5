"""Retention: how long a store keeps failed and deleted runs and old model versions; applied by `gc`.

One policy per store, kept in the database (so every machine and server of a
team applies the same one):

- `failed_runs_days`: FAILED and KILLED runs that ended more than this many
  days ago are purged.
- `deleted_runs_days`: runs deleted (`delete_run`, lifecycle stage "deleted")
  whose run ended (or started) more than this many days ago are purged.
- `keep_versions`: per branch, the newest N commits along its first-parent
  line keep their weights, and so does every tagged commit, every commit a
  registered model version comes from, every commit intermediates were
  captured from, and the parent a kept commit's training provenance re-runs
  from. Older commits stay in history (log, messages, metadata); their
  weights are dropped (`commits.pruned_time`), and a checkout of one fails.

Purging a run deletes its params, tags, metrics and artifacts, and the
models, predictions and evaluations it logged, with their lineage links; the
blobs they named become unreachable, and the same `gc` sweeps them. A run
something live still points at is kept and reported with the reason: a child
run that stays, a registered model version, a commit made in it, or another
run's prediction or evaluation of its models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, or_, select, update

from mlkeep.errors import InvalidInputError
from mlkeep.metadata.tables import (
    artifacts,
    commits,
    evaluations,
    intermediates,
    latest_metrics,
    links,
    metric_buckets,
    metrics,
    model_versions,
    models,
    params,
    predictions,
    refs,
    runs,
    settings,
    tags,
)
from mlkeep.metadata.upsert import insert_for

if TYPE_CHECKING:
    from mlkeep.store import Store

_KEY = "retention"
_DAY_MS = 86_400_000
PURGE_BATCH = 200  # runs per transaction: few statements, short write locks


@dataclass(frozen=True)
class RetentionPolicy:
    """What a store keeps; None means keep forever (see the module docstring)."""

    failed_runs_days: float | None = None
    deleted_runs_days: float | None = None
    keep_versions: int | None = None

    def __post_init__(self) -> None:
        for name in ("failed_runs_days", "deleted_runs_days"):
            days = getattr(self, name)
            if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float)) or not days >= 0):
                raise InvalidInputError(f"{name} must be a number of days, 0 or more, not {days!r}.")
        n = self.keep_versions
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InvalidInputError(f"keep_versions must be a whole number of versions, 1 or more, not {n!r}.")

    @property
    def empty(self) -> bool:
        return self == RetentionPolicy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetentionPolicy:
        return cls(**{k: d.get(k) for k in ("failed_runs_days", "deleted_runs_days", "keep_versions")})


@dataclass
class RetentionReport:
    """What retention removed (or, on a dry run, would remove), and the runs it kept and why."""

    runs_purged: list[str] = field(default_factory=list)
    runs_kept: dict[str, str] = field(default_factory=dict)
    versions_pruned: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_policy(store: Store) -> RetentionPolicy:
    """The store's retention policy (an empty one keeps everything)."""
    with store.db.connect() as conn:
        value = conn.execute(select(settings.c.value).where(settings.c.key == _KEY)).scalar()
    return RetentionPolicy.from_dict(json.loads(value)) if value else RetentionPolicy()


def set_policy(store: Store, policy: RetentionPolicy) -> RetentionPolicy:
    """Replace the store's retention policy; `gc` applies it from now on."""
    row = {"key": _KEY, "value": json.dumps(policy.to_dict(), sort_keys=True), "update_time": _now_ms()}
    with store.db.begin() as conn:
        stmt = insert_for(conn)(settings).values(row)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={
            "value": stmt.excluded.value, "update_time": stmt.excluded.update_time}))
    return policy


def apply_retention(store: Store, *, dry_run: bool = False, now_ms: int | None = None) -> RetentionReport:
    """Purge the runs and drop the weights of the versions the policy no longer keeps.

    With `dry_run`, change nothing and report what would go. Runs are
    purged `PURGE_BATCH` at a time, a transaction each, so an interruption
    leaves whole runs (and never a child whose parent is gone).
    """
    policy, now = get_policy(store), _now_ms() if now_ms is None else now_ms
    report = RetentionReport(dry_run=dry_run)
    with store.db.connect() as conn:
        candidates = _expired_runs(conn, policy, now)
        purge = _children_first(conn, _purgeable(conn, candidates, report.runs_kept))
    report.runs_purged = sorted(purge)
    if policy.keep_versions is not None:
        report.versions_pruned = sorted(_versions_to_prune(store, policy.keep_versions))
    if dry_run:
        return report
    for batch in _chunks(purge, PURGE_BATCH):
        store.db.run(partial(_purge_runs, run_ids=batch))
    for ids in _chunks(report.versions_pruned):
        with store.db.begin() as conn:  # a commit tagged or made a branch head meanwhile keeps its weights
            conn.execute(update(commits).where(commits.c.id.in_(ids), commits.c.pruned_time.is_(None),
                                               commits.c.id.not_in(select(refs.c.commit_id)))
                         .values(pruned_time=now))
    return report


# ------------------------------------------------------------------------- runs
def _expired_runs(conn: Connection, policy: RetentionPolicy, now: int) -> set[str]:
    ended = func.coalesce(runs.c.end_time, runs.c.start_time)
    rules = []
    if policy.failed_runs_days is not None:
        rules.append(runs.c.status.in_(("FAILED", "KILLED")) & (ended < now - policy.failed_runs_days * _DAY_MS))
    if policy.deleted_runs_days is not None:
        rules.append((runs.c.lifecycle_stage == "deleted") & (ended < now - policy.deleted_runs_days * _DAY_MS))
    if not rules:
        return set()
    return set(conn.execute(select(runs.c.id).where(or_(*rules))).scalars())


def _purgeable(conn: Connection, candidates: set[str], kept: dict[str, str]) -> set[str]:
    """The candidates nothing live points at; the others go into `kept` with the reason."""
    purge = set(candidates)

    def keep(run_ids: Iterable[str | None], why: str) -> None:
        for r in run_ids:
            if r in purge:
                purge.discard(r)
                kept[r] = why

    for rows in _chunks(sorted(purge)):
        keep(conn.execute(select(commits.c.run_id).where(commits.c.run_id.in_(rows))).scalars(),
             "a model version was committed in it")
        keep(conn.execute(select(model_versions.c.run_id).where(model_versions.c.run_id.in_(rows))).scalars(),
             "a registered model version comes from it")
        keep(conn.execute(select(models.c.run_id).join(model_versions, model_versions.c.model_id == models.c.id)
                          .where(models.c.run_id.in_(rows))).scalars(), "a registered model version comes from it")
        for used in (predictions, evaluations):
            keep(conn.execute(select(models.c.run_id).join(used, used.c.model_id == models.c.id)
                              .where(models.c.run_id.in_(rows), used.c.run_id.is_not(None),
                                     used.c.run_id != models.c.run_id)).scalars(),
                 "another run used one of its models")
    while True:  # a parent stays while any of its children stays (a kept parent may be a child itself)
        before = len(purge)
        for rows in _chunks(sorted(purge)):
            keep(conn.execute(select(runs.c.parent_run_id).where(runs.c.parent_run_id.in_(rows),
                                                                 runs.c.id.not_in(purge))).scalars(),
                 "a child run stays")
        if len(purge) == before:
            return purge


def _children_first(conn: Connection, purge: set[str]) -> list[str]:
    """The runs to purge, each after all of its children (deepest first), so no batch orphans a child."""
    parent: dict[str, str | None] = {}
    for rows in _chunks(sorted(purge)):
        parent.update(conn.execute(select(runs.c.id, runs.c.parent_run_id).where(runs.c.id.in_(rows))).tuples().all())

    def depth(run_id: str) -> int:
        d, p = 0, parent.get(run_id)
        while p in purge:
            d, p = d + 1, parent.get(p)
        return d

    return sorted(purge, key=lambda r: (-depth(r), r))


def _purge_runs(conn: Connection, run_ids: list[str]) -> None:
    """Delete runs and everything they logged (one transaction; their children are gone or in `run_ids`)."""
    model_ids = list(conn.execute(select(models.c.id).where(models.c.run_id.in_(run_ids))).scalars())
    prediction_ids = list(conn.execute(select(predictions.c.id).where(
        or_(predictions.c.run_id.in_(run_ids), predictions.c.model_id.in_(model_ids)))).scalars())
    evaluation_ids = list(conn.execute(select(evaluations.c.id).where(
        or_(evaluations.c.run_id.in_(run_ids), evaluations.c.model_id.in_(model_ids),
            evaluations.c.prediction_id.in_(prediction_ids)))).scalars())
    entity_ids = [*run_ids, *model_ids, *prediction_ids, *evaluation_ids]
    conn.execute(delete(links).where(or_(links.c.src_id.in_(entity_ids), links.c.dst_id.in_(entity_ids))))
    conn.execute(delete(evaluations).where(evaluations.c.id.in_(evaluation_ids)))
    conn.execute(delete(predictions).where(predictions.c.id.in_(prediction_ids)))
    conn.execute(delete(models).where(models.c.id.in_(model_ids)))
    for table in (params, tags, metrics, latest_metrics, metric_buckets, artifacts):
        conn.execute(delete(table).where(table.c.run_id.in_(run_ids)))
    conn.execute(delete(runs).where(runs.c.id.in_(run_ids)))


# --------------------------------------------------------------------- versions
def _versions_to_prune(store: Store, keep_last: int) -> set[str]:
    """Commits whose weights the policy no longer keeps (see the module docstring)."""
    from mlkeep.versioning.commit import read_commit

    with store.db.connect() as conn:
        rows = conn.execute(select(commits.c.id, commits.c.parents, commits.c.pruned_time)).all()
        ref_rows = conn.execute(select(refs.c.kind, refs.c.commit_id)).all()
        sources = conn.execute(select(model_versions.c.source).where(model_versions.c.source_kind == "commit")).scalars()
        registered = {s.rpartition("@")[2] for s in sources}
        captured = set(conn.execute(select(intermediates.c.commit_id).distinct()).scalars())
    first_parent = {cid: (json.loads(p) or [None])[0] for cid, p, _ in rows}
    kept = registered | captured | {cid for kind, cid in ref_rows if kind != "branch"}
    for kind, head in ref_rows:
        if kind == "branch":
            cid: str | None = head
            for _ in range(keep_last):
                if cid is None:
                    break
                kept.add(cid)
                cid = first_parent.get(cid)
    frontier = [c for c in kept if c in first_parent]
    while frontier:  # a kept commit re-made by its provenance needs the parent it re-runs from
        parent = (read_commit(store.objects, frontier.pop()).provenance or {}).get("parent")
        if parent and parent not in kept and parent in first_parent:
            kept.add(parent)
            frontier.append(parent)
    return {cid for cid, _, pruned in rows if pruned is None and cid not in kept}


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
