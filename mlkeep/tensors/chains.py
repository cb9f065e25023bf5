"""Decoding a chunk object along its delta chain, in byte-plane space where it can.

XOR commutes with splitting elements into byte planes, so a chain of XOR
deltas over a full chunk is decoded plane by plane (decompress, XOR) and
interleaved once at the end. Interleaving is the costliest step of a decode
after decompression, so a star delta (full root plus one XOR) costs one
interleave instead of two. A SUB delta carries across bytes: its base is
interleaved first and the delta added to it.

Nothing here verifies: the caller checks the result against the chunk id its
manifest names, which covers every object of the chain at once.
"""

from __future__ import annotations

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors import codecs
from mlkeep.tensors.blobs import ChunkObjects

MAX_CHAIN = 256  # a header chain longer than any policy allows means a corrupt or cyclic chain


class ChainDecoder:
    """Decodes chunk objects of one `ChunkObjects`; `use_cache` takes bases from its cache of verified chunks,
    `touched` (when given) collects every object read."""

    def __init__(self, blobs: ChunkObjects, use_cache: bool = True, touched: set[str] | None = None) -> None:
        self.blobs, self.use_cache, self.touched = blobs, use_cache, touched

    def decode(self, oid: str, out: np.ndarray) -> codecs.ChunkHeader | None:
        """Decode object `oid` into `out` (flat uint8); return its header (None when copied from the cache)."""
        cached = self._cached(oid)
        if cached is not None and len(cached) == len(out):
            out[:] = cached  # the caller still checks `out` against the chunk id
            return None
        header, data = self._read(oid, len(out), 0)
        self._into(header, data, out, 0)
        return header

    def _into(self, header: codecs.ChunkHeader, data: bytes, out: np.ndarray, level: int) -> None:
        """The chunk `data` encodes, interleaved into `out`."""
        if header.encoding == codecs.FULL:
            codecs.interleave(codecs.planes_of(header, data), out, header.joined)
            return
        base = self._base(header, level)
        if isinstance(base, list):  # XOR over planes of the same layout: XOR the planes, interleave once
            codecs.interleave([np.bitwise_xor(a, b) for a, b in zip(codecs.planes_of(header, data), base)], out,
                              header.joined)
            return
        codecs.decode(header, data, base, out)

    def _planes(self, header: codecs.ChunkHeader, data: bytes, level: int) -> list[np.ndarray]:
        """The byte planes of the chunk `data` encodes, laid out as its own (XOR chains resolved plane by plane)."""
        own = codecs.planes_of(header, data)
        if header.encoding == codecs.FULL:
            return own
        base = self._base(header, level)
        if isinstance(base, list):
            return [np.bitwise_xor(a, b) for a, b in zip(own, base)]
        out = np.empty(header.nbytes, dtype=np.uint8)
        codecs.decode(header, data, base, out)
        return codecs.split_parts(codecs.to_planes(out, header.width, header.joined), header.width, header.joined)

    def _base(self, header: codecs.ChunkHeader, level: int) -> np.ndarray | list[np.ndarray]:
        """The base of a delta object: its planes when an XOR delta can be applied plane by plane,
        else the base chunk interleaved (from the cache when it is there)."""
        assert header.base is not None
        cached = self._cached(header.base)
        if cached is not None:
            return cached
        base_header, base_data = self._read(header.base, header.nbytes, level + 1)
        if header.encoding == codecs.XOR and base_header.width == header.width > 1 \
                and base_header.joined == header.joined:
            return self._planes(base_header, base_data, level + 1)
        if base_header.encoding == codecs.FULL and base_header.width == 1:
            return codecs.planes_of(base_header, base_data)[0]  # a flat root is its bytes: use them in place
        base = np.empty(header.nbytes, dtype=np.uint8)
        self._into(base_header, base_data, base, level + 1)
        return base

    def _read(self, oid: str, nbytes: int, level: int) -> tuple[codecs.ChunkHeader, bytes]:
        if level > MAX_CHAIN:
            raise CorruptObjectError(f"Delta chain through object {oid} is longer than any policy allows.")
        if self.touched is not None:
            self.touched.add(oid)
        data = self.blobs.read(oid)
        header = codecs.read_header(data)
        if header.nbytes != nbytes:
            raise CorruptObjectError(f"Chunk object {oid} holds {header.nbytes} bytes, expected {nbytes}.")
        return header, data

    def _cached(self, oid: str) -> np.ndarray | None:
        return self.blobs.cached(oid) if self.use_cache else None
