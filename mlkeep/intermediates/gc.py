"""What `mlkeep gc` must keep for intermediates: the objects every recorded intermediate still uses.

For each intermediate: its module skeleton (needed to recompute it, stored
or not) and, when it is stored, its manifest, every chunk the manifest
names and the base of every chunk stored as a delta. A dropped intermediate
(no manifest) or a deleted one names nothing, so chunks only it used are
collected, while a chunk shared with another intermediate (a frozen layer
across versions, a delta's base) stays as long as one of them names it.
The walk is `mlkeep.references.intermediate_references`, which fsck and du
read too; here it is strict, so an unreadable manifest stops gc.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlkeep.gc import register_root_provider
from mlkeep.references import intermediate_references

if TYPE_CHECKING:
    from mlkeep.store import Store


def intermediate_roots(store: Store) -> Iterator[str]:
    """Object ids the recorded intermediates reach (raises if a manifest is unreadable: gc then deletes nothing)."""
    return (r.object for r in intermediate_references(store, strict=True))


register_root_provider("intermediates", intermediate_roots)
