"""Chunk objects in the object store, compressed once, plus a cache of decoded chunks.

`ObjectStore.put_bytes` compresses with zstd level 3. The planner already
compresses each candidate encoding to compare sizes, so compressing the
winner again would double the work; `ChunkObjects.put` writes the planner's
compressed bytes as they are. The result is an ordinary object (a zstd frame
whose content hashes to its id), so `ObjectStore.get_bytes`, `verify` and
`fsck` treat it like any other.

Reads skip the object store's hash check: the decoder checks every decoded
chunk against the SHA-256 its manifest promises, which covers the object's
bytes, its header and its whole delta chain in one pass.

The cache holds decoded raw chunks by object id, bounded in bytes (LRU).
Entries are always verified bytes the process owns, never a caller's array.
It exists for the writer: a delta needs its base's raw bytes, and in a
training loop the base is what the previous commit just wrote.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError, NotFoundError
from mlkeep.objects.store import ObjectStore

_local = threading.local()


def _zstd() -> Any:
    import zstandard

    return zstandard


def compress(data: bytes | memoryview | np.ndarray, level: int, planes: bool = False) -> bytes:
    """zstd frame of `data` (with its content size), one compressor per thread and setting.

    `planes` tunes zstd for one byte plane of floats or of a delta: what
    compresses there is the skewed distribution of byte values (entropy
    coding), not repeats, so short matches (zstd's default minimum of 4-5
    bytes) are mostly noise that costs time and bytes. Minimum match 7 with a
    small hash table was 20-30% faster and 2-3% smaller on MiniLM's planes
    than level 1 as it is; a 256-entry table (hash log 8, was 10) finds fewer
    of those chance matches still, so the planes decompress 15-20% faster
    (more of them is Huffman-coded literals), compress as fast and as small.
    """
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get((level, planes))
    if comp is None:
        zstd = _zstd()
        if planes:
            base = zstd.ZstdCompressionParameters.from_level(level)
            params = zstd.ZstdCompressionParameters.from_level(
                level, min_match=7, hash_log=min(base.hash_log, 8), write_content_size=True)
            comp = zstd.ZstdCompressor(compression_params=params)
        else:
            comp = zstd.ZstdCompressor(level=level)
        cache[(level, planes)] = comp
    return comp.compress(data)  # type: ignore[no-any-return]


_MAGIC = b"\x28\xb5\x2f\xfd"
# Frame header descriptor: an 8-byte content size, not single-segment; then a window of 128 KiB (2**(10+7)),
# which bounds blocks to 128 KiB and never asks a decoder for more memory than that.
_FRAME_HEAD = _MAGIC + bytes([0xC0, 7 << 3])
_BLOCK = 1 << 17


def raw_frame(parts: list[bytes | memoryview]) -> bytes:
    """A zstd frame whose content is `parts` back to back, stored as raw blocks (no compression).

    For content compressed already (byte planes) or incompressible (their
    low mantissa bytes): zstd even at its fastest level searched it for
    matches and, with the join before, cost as much as compressing the
    planes; this is one copy. Any zstd decoder reads it.
    """
    pieces: list[bytes | memoryview] = [_FRAME_HEAD, sum(len(p) for p in parts).to_bytes(8, "little")]
    blocks = [memoryview(p)[i : i + _BLOCK] for p in parts for i in range(0, len(p), _BLOCK)]
    for i, block in enumerate(blocks):  # block header: size << 3 | type raw (0) << 1 | last
        pieces += [(len(block) << 3 | (i == len(blocks) - 1)).to_bytes(3, "little"), block]
    if not blocks:
        pieces.append((1).to_bytes(3, "little"))  # one empty last block
    return b"".join(pieces)


def decompress(data: bytes | memoryview) -> bytes:
    """The content of a zstd frame; `CorruptObjectError` when it is not one."""
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = _zstd().ZstdDecompressor()
    try:
        return dec.decompress(data, max_output_size=1 << 40)  # type: ignore[no-any-return]
    except Exception as exc:  # zstandard raises its own ZstdError
        raise CorruptObjectError(f"Chunk object cannot be decompressed: {exc}. Run `mlkeep fsck`.") from exc


class ChunkObjects:
    """Chunk objects over an `ObjectStore`: precompressed writes, unverified raw reads, an LRU cache."""

    def __init__(self, objects: ObjectStore, cache_bytes: int = 256 << 20) -> None:
        self.objects = objects
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        from fsspec.implementations.local import LocalFileSystem

        self._local = isinstance(objects.fs, LocalFileSystem)

    def put(self, oid: str, compressed: bytes) -> bool:
        """Store a zstd frame whose content hashes to `oid`; False when it was already there.

        Concurrent writers of the same object are harmless: each writes a
        temporary file and renames it over the same name with the same bytes.
        """
        return self.objects.put_compressed(oid, compressed)

    def header(self, oid: str) -> bytes:
        """The first bytes of an object's content (enough for a chunk header), without decoding the rest."""
        import io

        from mlkeep.tensors.codecs import HEADER_SIZE

        raw = self._raw(oid)
        try:
            return _zstd().ZstdDecompressor().stream_reader(io.BytesIO(raw)).read(HEADER_SIZE)  # type: ignore[no-any-return]
        except Exception as exc:
            raise CorruptObjectError(f"Chunk object {oid} cannot be decompressed: {exc}. Run `mlkeep fsck`.") from exc

    def read(self, oid: str) -> bytes:
        """An object's content, decompressed; the caller verifies what it decodes from it."""
        return decompress(self._raw(oid))

    def _raw(self, oid: str) -> bytes:
        """An object's stored bytes. A local folder is read with `open`: fsspec's file objects cost
        more than reading a chunk object does."""
        path = self.objects.path(oid)
        try:
            if self._local:
                with open(path, "rb") as f:
                    return f.read()
            return self.objects.fs.cat_file(path)  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise NotFoundError(f"Chunk object {oid} is not in the object store at {self.objects.root}.") from None

    def cached(self, oid: str) -> np.ndarray | None:
        """The decoded raw chunk of object `oid`, if cached (read-only array)."""
        with self._lock:
            arr = self._cache.get(oid)
            if arr is not None:
                self._cache.move_to_end(oid)
            return arr

    def remember(self, oid: str, raw: np.ndarray) -> None:
        """Cache the verified raw chunk of `oid`; `raw` must not be changed afterwards."""
        if raw.nbytes > self.cache_bytes:
            return
        raw.flags.writeable = False
        with self._lock:
            if oid in self._cache:
                self._cache.move_to_end(oid)
                return
            self._cache[oid] = raw
            self._cached += raw.nbytes
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes

    def forget(self) -> None:
        """Empty the cache."""
        with self._lock:
            self._cache.clear()
            self._cached = 0
