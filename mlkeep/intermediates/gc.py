"""What `mlkeep gc` must keep for intermediates: the objects every recorded intermediate still uses.

For each intermediate: its module skeleton (needed to recompute it, stored
or not) and, when it is stored, its manifest, every chunk the manifest
names and the base of every chunk stored as a delta. A dropped intermediate
(no manifest) or a deleted one names nothing, so chunks only it used are
collected, while a chunk shared with another intermediate (a frozen layer
across versions, a delta's base) stays as long as one of them names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import select

from mlkeep.gc import register_root_provider
from mlkeep.intermediates.storage import get_manifest
from mlkeep.metadata.tables import intermediates

if TYPE_CHECKING:
    from mlkeep.store import Store


def intermediate_roots(store: Store) -> Iterator[str]:
    """Object ids the recorded intermediates reach (raises if a manifest is unreadable: gc then deletes nothing)."""
    with store.db.connect() as conn:
        rows = conn.execute(select(intermediates.c.manifest, intermediates.c.document)).all()
    seen: set[str] = set()
    for manifest, document in rows:
        skeleton = _skeleton(document)
        if skeleton:
            yield skeleton
        if not manifest or manifest in seen:
            continue
        seen.add(manifest)
        yield manifest
        doc = get_manifest(store.objects, manifest)
        for block in doc["chunks"]:
            yield from block
        for base, _content in dict(doc.get("deltas") or {}).values():
            yield base


def _skeleton(document: str) -> str | None:
    import json

    value = json.loads(document).get("skeleton")
    return value if isinstance(value, str) else None


register_root_provider("intermediates", intermediate_roots)
