"""`gc`: delete the objects nothing in the store reaches, as `git gc` prunes loose objects.

Reachable means named by a *root provider*. The built-in ones (walking
`mlkeep.references`, which fsck and du share) cover every
commit (its object, its tensor tree, every chunk object the tree names, each
delta base down to its chain's root — bases deeper than a chunk's direct base
are found by reading chunk headers — and an estimator's pickled skeleton),
and the objects of run artifacts, datasets, models and predictions. Branches,
tags and runs only point at those, so they are covered too.

Other subsystems add roots of their own::

    from mlkeep.gc import register_root_provider

    def _intermediate_roots(store):          # yields object ids to keep
        for manifest_id in ...:              # read from your tables
            yield manifest_id
            yield from chunk_ids_of(manifest_id)

    register_root_provider("intermediates", _intermediate_roots)

Call `register_root_provider` when your module is imported and add the module
to `PROVIDER_MODULES` so `gc` imports it first (it is imported lazily; an
ImportError skips it). A provider that raises aborts the collection: nothing
is deleted on partial knowledge.

Concurrent writers: a writer stores chunk objects, then the tree, then the
commit object, and only then the database row that makes them reachable. So
an object younger than the grace period (default one hour) is never deleted,
reachable or not; a writer that reuses an existing object refreshes its
modification time (`ObjectStore.put_compressed`), and each object's age is
read again just before it is deleted. On S3, a writer killed mid-upload
leaves an incomplete multipart upload rather than an object; those started
before the grace period are aborted, which frees their parts.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import InvalidInputError
from mlkeep.metadata.tables import datasets, models, predictions
from mlkeep.objects.store import IncompleteUpload
from mlkeep.references import commit_references, tracking_references
from mlkeep.retention import RetentionReport, apply_retention

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)

RootProvider = Callable[["Store"], Iterable[str]]
DEFAULT_GRACE_SECONDS = 3600.0
SWEEP_THREADS = 8
PROVIDER_MODULES: list[str] = ["mlkeep.intermediates.gc"]  # imported before collecting, when present
_providers: dict[str, RootProvider] = {}


@dataclass
class GcReport:
    """What `gc` found and did; `deleted` lists object ids (all candidates on a dry run)."""

    objects: int = 0
    reachable: int = 0
    unreachable: int = 0
    too_young: int = 0
    deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False
    providers: list[str] = field(default_factory=list)
    retention: RetentionReport | None = None  # what the store's retention policy removed first
    # multipart uploads (S3) that killed writers left, older than the grace period: aborted (listed on a dry run)
    incomplete_uploads: list[IncompleteUpload] = field(default_factory=list)
    upload_bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def register_root_provider(name: str, provider: RootProvider) -> None:
    """Make `provider(store)` a source of object ids `gc` must keep (replaces one of the same name)."""
    if not callable(provider):
        raise InvalidInputError("A root provider must be callable: provider(store) -> iterable of object ids.")
    _providers[name] = provider


def root_providers() -> dict[str, RootProvider]:
    """The registered root providers by name (built-ins and those of imported subsystems)."""
    for module in PROVIDER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    return dict(_providers)


def gc(
    store: Store,
    *,
    dry_run: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    retention: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> GcReport:
    """Apply the retention policy (`mlkeep.retention`), then delete every object no root provider
    reaches and that is older than `grace_seconds`, and abort the multipart uploads (S3) started
    before the grace period that never completed.

    With `dry_run`, change nothing and report what would go (the runs and
    versions retention would remove are listed; their blobs are counted by
    the gc that removes them). Raises whatever a root provider raises, before
    anything is deleted.
    """
    if grace_seconds < 0:
        raise InvalidInputError("The grace period cannot be negative.")
    report = GcReport(dry_run=dry_run)
    if retention:
        report.retention = apply_retention(store, dry_run=dry_run)
    started = time.time()
    # Listed before the roots: an object written later is not a candidate. One listing gives
    # every size and age (on S3, asking per object would cost a request each).
    stored = {oid: (size, modified) for oid, size, modified in store.objects.entries()}
    report.objects = len(stored)
    providers = root_providers()
    report.providers = sorted(providers)
    reachable: set[str] = set()
    for name, provider in providers.items():
        reachable.update(provider(store))
    report.reachable = sum(1 for oid in stored if oid in reachable)
    candidates = [oid for oid in stored if oid not in reachable]
    report.unreachable = len(candidates)
    old = [oid for oid in candidates if _before(stored[oid][1], started - grace_seconds)]
    report.too_young = len(candidates) - len(old)

    def sweep(oid: str) -> str:
        if dry_run:
            return "deleted"
        if not _old_enough(store, oid, time.time() - grace_seconds):  # touched since: a writer reuses it
            return "young"
        try:
            store.objects.remove(oid)
        except FileNotFoundError:
            return "gone"
        return "deleted"

    # Deleting is waiting (an unlink, or a request to S3): a few at a time.
    with ThreadPoolExecutor(SWEEP_THREADS) as pool:
        for i, (oid, outcome) in enumerate(zip(old, pool.map(sweep, old))):
            if progress:
                progress("gc", i + 1, len(old))
            if outcome == "young":
                report.too_young += 1
            elif outcome == "deleted":
                report.deleted.append(oid)
                report.bytes_freed += stored[oid][0]
    report.incomplete_uploads = store.objects.abort_incomplete_uploads(started - grace_seconds, dry_run=dry_run)
    report.upload_bytes_freed = sum(u.size for u in report.incomplete_uploads)
    log.info("gc: %d objects, %d unreachable, %d deleted, %d incomplete uploads", report.objects, report.unreachable,
             len(report.deleted), len(report.incomplete_uploads))
    return report


def _old_enough(store: Store, oid: str, cutoff: float) -> bool:
    try:
        return _before(store.objects.modified(oid), cutoff)
    except FileNotFoundError:
        return False


def _before(modified: float | None, cutoff: float) -> bool:
    if modified is None:
        return cutoff >= time.time()  # age unknown: only a zero grace period lets it go
    return modified <= cutoff


# ----------------------------------------------------------------- built-in roots
def commit_roots(store: Store) -> Iterator[str]:
    """Every commit's object; and unless retention dropped its weights, its tensor tree's objects and
    delta chains and its estimator skeleton (`mlkeep.references`; a corrupt tree aborts the collection)."""
    return (ref.object for ref in commit_references(store, strict=True))


def tracking_roots(store: Store) -> Iterator[str]:
    """Objects of run artifacts, datasets (their content), models and predictions (`mlkeep.references`),
    and, as a safety net, any object id named in a run's environment summary or an entity's document."""
    from mlkeep.metadata.tables import evaluations, runs

    yield from (ref.object for ref in tracking_references(store))
    with store.db.connect() as conn:
        for column in (datasets.c.document, models.c.document, predictions.c.document, evaluations.c.document,
                       runs.c.environment):
            for document in conn.execute(select(column).where(column.is_not(None))).scalars():
                yield from object_ids(_loads(document))


def _loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def object_ids(doc: Any) -> Iterator[str]:
    """Every string in a JSON document that looks like an object id (64 lowercase hex digits)."""
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if len(x) == 64 and all(c in "0123456789abcdef" for c in x):
                yield x
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


register_root_provider("commits", commit_roots)
register_root_provider("tracking", tracking_roots)
