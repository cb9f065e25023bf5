"""A tensor's manifest: dtype, shape, digest and how each chunk is stored.

Manifests are sorted, compact JSON inside their tree's object (see `tree`),
so an unchanged tensor has the same manifest in every version. Each chunk entry
records both identities: `id`, the hash of the raw chunk (what the reader
verifies), and `obj`, the object holding its encoding, plus what the planner
needs without reading chunk objects: encoding, delta base, the full-copy root
of its chain, chain depth, and stored (compressed) bytes.

Format 2 adds `hash`, the algorithm of the chunk ids and digest (see
`chunks`); a format-1 manifest, written before it, is SHA-256 throughout.
A chunk packed with others into one object (see `tensors.packs`) also
records `at`: where its encoding lies in that object's content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors.chunks import DEFAULT_HASH, HASHES, SHA256

FORMAT = "mlkeep.tensor/2"
_FORMAT_1 = "mlkeep.tensor/1"


@dataclass(frozen=True)
class ChunkRef:
    """Where one chunk lives and how to rebuild it.

    `depth` is the number of deltas to apply after decoding `root` (0 for a full
    chunk, whose `root` is its own object and whose `base` is None). `at` is
    (offset, length) of the chunk's encoding inside `obj` when `obj` is a pack
    of small chunks; a packed chunk is always full and never a delta base.
    """

    id: str
    obj: str
    encoding: str
    base: str | None
    root: str
    depth: int
    stored: int
    nbytes: int
    at: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "obj": self.obj,
            "enc": self.encoding,
            "base": self.base,
            "root": self.root,
            "depth": self.depth,
            "stored": self.stored,
            "nbytes": self.nbytes,
        }
        if self.at is not None:
            d["at"] = list(self.at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkRef:
        at = d.get("at")
        return cls(d["id"], d["obj"], d["enc"], d["base"], d["root"], int(d["depth"]), int(d["stored"]), int(d["nbytes"]),
                   None if at is None else (int(at[0]), int(at[1])))


@dataclass(frozen=True)
class TensorManifest:
    """Everything needed to rebuild and verify one tensor."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    chunk_bytes: int
    digest: str
    chunks: tuple[ChunkRef, ...] = field(default=())
    hash: str = DEFAULT_HASH

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "hash": self.hash,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
            "chunk_bytes": self.chunk_bytes,
            "digest": self.digest,
            "chunks": [c.to_dict() for c in self.chunks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorManifest:
        if d.get("format") not in (FORMAT, _FORMAT_1):
            raise CorruptObjectError(f"Object is not a tensor manifest (format {d.get('format')!r}).")
        algorithm = d.get("hash", SHA256) if d["format"] == FORMAT else SHA256
        if algorithm not in HASHES:
            raise CorruptObjectError(f"Tensor manifest names an unknown hash {algorithm!r}.")
        return cls(
            d["dtype"],
            tuple(int(n) for n in d["shape"]),
            int(d["nbytes"]),
            int(d["chunk_bytes"]),
            d["digest"],
            tuple(ChunkRef.from_dict(c) for c in d["chunks"]),
            algorithm,
        )

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> TensorManifest:
        return cls.from_dict(parse_json(data, "tensor manifest"))

    @property
    def stored(self) -> int:
        """Compressed bytes of this tensor's chunk objects (shared ones counted here too)."""
        return sum(c.stored for c in self.chunks)


def canonical_json(obj: Any) -> bytes:
    """Sorted, compact JSON: equal content gives equal bytes, hence one object id."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CorruptObjectError(f"Object is not a valid {what}: {exc}.") from exc
