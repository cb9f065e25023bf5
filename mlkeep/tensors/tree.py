"""A model's tree: sorted tensor name -> manifest object id, stored as an object.

Like a git tree, it is the snapshot's one id: two trees with the same id hold
the same tensors stored the same way. It records no parent; commits (built
on top) do. Compare manifests' digests, not manifest ids, to ask whether a
tensor's *values* changed, since the same tensor may be stored differently
on two branches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors.manifest import canonical_json, parse_json

FORMAT = "mlkeep.tree/1"


@dataclass(frozen=True)
class Tree:
    """Tensor names and the manifests that hold them, in name order."""

    entries: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> Tree:
        return cls(tuple(sorted(mapping.items())))

    def as_dict(self) -> dict[str, str]:
        return dict(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "tensors": dict(self.entries)}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Tree:
        d = parse_json(data, "tensor tree")
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("tensors"), dict):
            raise CorruptObjectError("Object is not a tensor tree.")
        return cls.of(d["tensors"])
