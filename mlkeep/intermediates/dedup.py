"""Approximate de-duplication: MinHash signatures and LSH buckets over quantized chunks.

Exact de-duplication needs nothing here: a chunk is stored under the hash of
its encoded bytes, so an identical chunk is stored once. Near-identical
chunks (a layer that barely moved between two fine-tuned versions) hash
differently; `ApproxIndex` finds them. Values are quantized to a grid of
`tolerance`, a fixed sample of positions becomes a set of (position, cell)
tokens, and a MinHash signature of that set is cut into LSH bands. A chunk
sharing a band with an indexed one is a candidate; it is reused only after
its decoded values are checked to be within `tolerance` everywhere, so the
approximation never exceeds what the user allowed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

N_HASHES = 64
BANDS = 16
SAMPLE = 4096
_PRIME = (1 << 61) - 1


class MinHasher:
    """MinHash signatures of quantized arrays (deterministic: fixed seed)."""

    def __init__(self, tolerance: float, n_hashes: int = N_HASHES, sample: int = SAMPLE, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.tolerance = float(tolerance)
        self.sample = sample
        self.a = rng.integers(1, 1 << 31, n_hashes, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 31, n_hashes, dtype=np.uint64)

    def tokens(self, values: np.ndarray) -> np.ndarray:
        flat = values.ravel()
        step = max(1, len(flat) // self.sample)
        pos = np.arange(0, len(flat), step, dtype=np.int64)
        cells = np.floor(flat[pos] / (2 * self.tolerance)).astype(np.int64)
        return (pos * 1_000_003 + cells).astype(np.uint64) & np.uint64((1 << 31) - 1)

    def signature(self, values: np.ndarray) -> np.ndarray:
        """`n_hashes` minima of universal hashes over the chunk's tokens."""
        tok = self.tokens(values)
        hashed = (self.a[:, None] * tok[None, :] + self.b[:, None]) % np.uint64(_PRIME)
        return hashed.min(axis=1)


class ApproxIndex:
    """LSH buckets of chunk signatures; `match` returns an indexed chunk within `tolerance`, if any."""

    def __init__(self, tolerance: float, load: Callable[[str], np.ndarray], bands: int = BANDS) -> None:
        if not tolerance > 0:
            from mlkeep.errors import InvalidInputError

            raise InvalidInputError("Approximate de-duplication needs a tolerance > 0.")
        self.hasher = MinHasher(tolerance)
        self.tolerance = float(tolerance)
        self.load = load
        self.bands = bands
        self._buckets: dict[tuple[object, ...], list[str]] = {}
        self._lock = threading.Lock()
        self.candidates = 0
        self.matches = 0

    def _keys(self, values: np.ndarray) -> list[tuple[object, ...]]:
        sig = self.hasher.signature(values)
        width = len(sig) // self.bands
        return [(values.shape, i, sig[i * width : (i + 1) * width].tobytes()) for i in range(self.bands)]

    def add(self, oid: str, values: np.ndarray) -> None:
        """Index a stored chunk's values under its object id."""
        keys = self._keys(values)
        with self._lock:
            for k in keys:
                self._buckets.setdefault(k, []).append(oid)

    def match(self, values: np.ndarray) -> str | None:
        """The id of an indexed chunk whose decoded values are all within `tolerance` of `values`."""
        keys = self._keys(values)
        with self._lock:
            found = list(dict.fromkeys(o for k in keys for o in self._buckets.get(k, ())))
        for oid in found:
            self.candidates += 1
            other = self.load(oid)
            if other.shape == values.shape and float(np.max(np.abs(other - values), initial=0.0)) <= self.tolerance:
                self.matches += 1
                return oid
        return None
