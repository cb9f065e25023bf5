"""Finding near-identical chunks: MinHash signatures cut into LSH bands.

Exact de-duplication needs nothing here: a chunk is stored under the hash of
its encoded bytes, so an identical chunk is stored once. Near-identical
chunks hash differently; `SimilarIndex` finds them, for two uses:

* stored together (lossless, `dedup="similar"`): the new chunk is compressed
  against the similar one (`delta`), so only what differs takes space;
* reused (lossy, `dedup="approx"`): the stored chunk stands for the new one
  when every value is within the user's tolerance (checked on the values,
  so the approximation never exceeds what the user allowed).

A chunk's tokens are (position, cell) pairs over a fixed sample of positions,
the cell being the value's place on a coarse grid between its column's
minimum and maximum in the chunk. Normalising per column is what makes a
stage that rescales its input (StandardScaler after MinMaxScaler) look like
its input, as its k-bit codes are; a layer that moved a little between two
versions keeps most of its cells. The signature's bands are hashed with the
chunk's shape into `BANDS` 64-bit keys: a chunk sharing a key with an indexed
one is a candidate, ranked by the number of keys shared.

The keys of every full chunk are kept in its intermediate's manifest, so the
index is rebuilt from the store in a new session (`add_manifest`) and
de-duplication works across captures, sessions and processes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

N_HASHES = 32
BANDS = 8
SAMPLE = 1024
LEVELS = 64
_PRIME = np.uint64((1 << 61) - 1)
_MASK = np.uint64((1 << 31) - 1)


class Sketcher:
    """LSH keys of chunks (deterministic: fixed seed, so keys from different sessions compare)."""

    def __init__(self, n_hashes: int = N_HASHES, bands: int = BANDS, sample: int = SAMPLE, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.bands, self.sample = bands, sample
        self.a = rng.integers(1, 1 << 31, n_hashes, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 31, n_hashes, dtype=np.uint64)

    def tokens(self, values: np.ndarray) -> np.ndarray:
        """(position, cell) tokens of a rows × cols chunk, as 31-bit integers."""
        rows, cols = values.shape
        n = rows * cols
        pos = np.arange(0, n, max(1, n // self.sample), dtype=np.int64)
        c = pos % cols
        lo, hi = values.min(axis=0).astype(np.float64), values.max(axis=0).astype(np.float64)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):  # rare: only then pay for a cleaned copy
            values = _finite(values)
            lo, hi = values.min(axis=0).astype(np.float64), values.max(axis=0).astype(np.float64)
        # a column that barely varies (a map's blank border) is not stretched over the grid: its float noise
        # would pick random cells
        floor = max(float(max(np.abs(lo).max(), np.abs(hi).max())) / LEVELS, 1e-30)
        span = np.maximum(hi - lo, floor)
        sampled = _finite(values[pos // cols, c]).astype(np.float64)  # by index: `values` may be a transposed view
        cells = np.clip(np.floor((sampled - lo[c]) / span[c] * LEVELS), 0, LEVELS - 1).astype(np.int64)
        return _mix((pos * LEVELS + cells).astype(np.uint64)) & _MASK

    def keys(self, values: np.ndarray, tag: str = "") -> list[int]:
        """`bands` 64-bit keys (the MinHash signature's bands, each hashed with the chunk's shape and `tag`,
        e.g. its codec, so only chunks alike in both are candidates), then a key of the chunk's magnitude
        (its range, mean and spread on a log scale), which ranks candidates."""
        tok = self.tokens(values)
        sig = ((self.a[:, None] * tok[None, :] + self.b[:, None]) % _PRIME).min(axis=1)
        width = len(sig) // self.bands
        shape = np.asarray(values.shape, dtype=np.uint64).tobytes() + tag.encode()
        pos = np.arange(0, values.size, max(1, values.size // self.sample))
        sampled = _finite(values[pos // values.shape[1], pos % values.shape[1]]).astype(np.float64)
        summary = [sampled.min(), sampled.max(), sampled.mean(), sampled.std()]
        scale = np.rint(np.log2(np.abs(summary) + 1e-12) * 4).astype(np.int64).tobytes()
        parts = [shape + bytes([i]) + sig[i * width : (i + 1) * width].tobytes() for i in range(self.bands)]
        return [_key(p) for p in [*parts, shape + scale]]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads nearby integers over all 64 bits (a universal hash of raw
    positions would order tokens by position and make every minimum the first one)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _key(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class SimilarIndex:
    """LSH buckets of full chunks, and where chunks stored as deltas went (content id → stored id)."""

    def __init__(self, sketcher: Sketcher | None = None) -> None:
        self.sketcher = sketcher or Sketcher()
        self._buckets: dict[int, list[str]] = {}
        self._aliases: dict[str, tuple[str, str]] = {}
        self._deltas: dict[str, tuple[str, str]] = {}  # delta id -> (base id, content id)
        self._scale: dict[str, int] = {}
        self._keys: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def add(self, oid: str, keys: Iterable[int]) -> None:
        """Index a stored full chunk under its keys."""
        keys = [int(k) for k in keys]
        *bands, scale = keys
        with self._lock:
            self._keys[oid] = keys
            self._scale[oid] = scale
            for k in bands:
                bucket = self._buckets.setdefault(int(k), [])
                if oid not in bucket:
                    bucket.append(oid)

    def keys_of(self, oid: str) -> list[int] | None:
        """The keys an indexed full chunk was added under (None if it is not indexed): an exact duplicate
        of it needs no sketch of its own."""
        with self._lock:
            return self._keys.get(oid)

    def alias(self, content_id: str, stored_id: str, base_id: str) -> None:
        """Remember that the chunk whose content hashes to `content_id` is stored as delta `stored_id`."""
        with self._lock:
            self._aliases[content_id] = (stored_id, base_id)
            self._deltas[stored_id] = (base_id, content_id)

    def chain(self, oid: str) -> dict[str, tuple[str, str]]:
        """The deltas a chunk's content depends on, itself first: {delta id: (base id, content id)}, down
        to the full chunk at the root (empty for a full chunk)."""
        out: dict[str, tuple[str, str]] = {}
        with self._lock:
            while oid in self._deltas and oid not in out:
                out[oid] = self._deltas[oid]
                oid = out[oid][0]
        return out

    def stored_as(self, content_id: str) -> tuple[str, str] | None:
        """(delta id, base id) of a chunk stored as a delta, by its content id."""
        with self._lock:
            return self._aliases.get(content_id)

    def candidates(self, keys: Iterable[int], limit: int = 3) -> list[str]:
        """Indexed chunks sharing a band key, those sharing the most first, then those of the same magnitude
        (many blank chunks share every band), then the oldest."""
        *bands, scale = keys
        with self._lock:
            hits = Counter(o for k in bands for o in self._buckets.get(int(k), ()))
            ranked = sorted(hits, key=lambda o: (-hits[o], self._scale.get(o) != scale))
        return ranked[:limit]

    def add_manifest(self, manifest: Mapping[str, object]) -> None:
        """Index the chunks a stored intermediate's manifest records (its `sketches` and `deltas`)."""
        for oid, hexkeys in dict(manifest.get("sketches") or {}).items():  # type: ignore[call-overload]
            self.add(oid, unpack_keys(hexkeys))
        for oid, (base, content) in dict(manifest.get("deltas") or {}).items():  # type: ignore[call-overload]
            self.alias(content, oid, base)


def pack_keys(keys: Iterable[int]) -> str:
    """Keys as one hex string (how a manifest keeps them)."""
    return b"".join(int(k).to_bytes(8, "little") for k in keys).hex()


def unpack_keys(text: str) -> list[int]:
    raw = bytes.fromhex(text)
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
