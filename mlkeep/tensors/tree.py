"""A model's tree: sorted tensor name -> tensor manifest, stored as one object.

Like a git tree it is the snapshot's single id: two trees with the same id
hold the same tensors stored the same way. It records no parent; commits
(built on top) do. The manifests sit inside the tree rather than in objects
of their own: a MiniLM-sized model has about a hundred tensors, and a
hundred small fsync'd objects per version cost more time than encoding all
the changed weights, for a saving of a few kilobytes. Compare manifests'
digests to ask whether a tensor's *values* changed: the same tensor may be
stored differently on two branches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors.manifest import TensorManifest, canonical_json, parse_json

FORMAT = "mlkeep.tree/1"


@dataclass(frozen=True)
class Tree:
    """Tensor names and their manifests, in name order."""

    entries: tuple[tuple[str, TensorManifest], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, TensorManifest]) -> Tree:
        return cls(tuple(sorted(mapping.items(), key=lambda kv: kv[0])))

    def as_dict(self) -> dict[str, TensorManifest]:
        return dict(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "tensors": {name: m.to_dict() for name, m in self.entries}}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Tree:
        d = parse_json(data, "tensor tree")
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("tensors"), dict):
            raise CorruptObjectError("Object is not a tensor tree.")
        try:
            return cls.of({name: TensorManifest.from_dict(m) for name, m in d["tensors"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObjectError(f"Tensor tree has a malformed manifest: {exc}.") from exc
