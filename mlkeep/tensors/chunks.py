"""Cutting a tensor's bytes into fixed-size chunks, and the hashes that name them.

A chunk is `chunk_bytes` of raw little-endian bytes (rounded down to whole
elements); the last one may be shorter. Its id is the SHA-256 of those bytes,
so equal chunks anywhere (another tensor, version or model) share one id.

A tensor's digest is a hash tree: SHA-256 over its chunk ids (as 32-byte
digests) in order. Every chunk is checked against its id when read, so a
matching digest means every byte of the tensor is as written; and the digest
costs nothing extra to compute, unlike a second pass of SHA-256 over the whole
tensor (which would also serialise a large tensor on one core).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

DEFAULT_CHUNK_BYTES = 1 << 20


def chunk_size(chunk_bytes: int, itemsize: int) -> int:
    """Bytes per chunk for elements of `itemsize`: whole elements, at least one."""
    return max(itemsize, chunk_bytes // itemsize * itemsize)


def spans(nbytes: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) byte offsets of each chunk of an `nbytes` buffer; none when empty."""
    return [(start, min(start + size, nbytes)) for start in range(0, nbytes, size)]


def chunk_id(data: np.ndarray | memoryview | bytes) -> str:
    """SHA-256 (hex) of a chunk's raw bytes."""
    return hashlib.sha256(memoryview(data)).hexdigest()  # type: ignore[arg-type]


def tensor_digest(ids: Sequence[str]) -> str:
    """The hash-tree digest of a tensor from its chunk ids in order."""
    h = hashlib.sha256()
    for cid in ids:
        h.update(bytes.fromhex(cid))
    return h.hexdigest()
