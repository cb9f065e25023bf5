"""The recovery planner: how to store each changed chunk, from a cost model.

Storing a chunk as a delta saves bytes and costs recovery time: to read it,
the reader decodes the full root of its chain and then every delta on the
way (its *depth*). The planner weighs the two at two levels.

Per tree (the recovery-time bound). Reading a chunk of ``n`` raw bytes at
depth ``d`` decodes ``n·(d+1)`` bytes; decode work is close to linear in bytes
(zstd, byte planes, SHA-256), so the tree's *read amplification*
``Σ n·(d+1) / Σ n`` stands for checkout time relative to reading each tensor
once. Before encoding, the planner picks the deepest chain mode that keeps the
worst case within ``max_read_amplification``:

* ``chain``: a delta may go against the parent's chunk (depth parent+1, at most
  ``max_chain_depth``), or against the root of the parent's chain;
* ``star``: deltas only against the root (depth 1: one extra decode);
* ``full``: no deltas.

A partial fine-tune (few chunks changed) fits chains; a full fine-tune
fits star deltas, and checkout stays near 2 decodes per chunk however many
versions follow. Unchanged chunks keep their place and cost. The bound counts
bytes, but a delta costs more to decode than a flat chunk does (more objects,
compressed planes, XOR), so `max_chain_depth` keeps chains short as well.

Per chunk (bytes against reads). Each candidate's stored size is estimated
by compressing a sample of its encoding (exact when the chunk is no larger
than the sample); its cost is::

    cost = stored_bytes + read_weight · n · depth + plane_weight · n · interleaves

``interleaves`` counts the passes that put byte planes back together, the
costliest step of a decode after decompression (about as slow as zstd, and
eight times slower than copying): none for a full chunk stored flat (raw
bytes, no planes), one for a full chunk in planes or an XOR delta (XOR chains
decode in plane space and interleave once, see `tensors.chains`), two for a
SUB delta (its base is interleaved before the delta is added). So byte planes
are used where they save more than a pass is worth: the planes of a float32
weight matrix save about 15% and are not worth it; those of a fine-tuning
delta save 40-50% and are.

A delta must also save at least ``min_saving`` of the full size: a delta that
barely helps is not worth a decode on every checkout. The cheapest candidate
wins; full (depth 0) is always allowed, so the planner can always store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlkeep.errors import InvalidInputError
from mlkeep.tensors.chunks import DEFAULT_CHUNK_BYTES
from mlkeep.tensors.codecs import ENCODINGS, FULL
from mlkeep.tensors.manifest import ChunkRef


@dataclass(frozen=True)
class StoragePolicy:
    """Knobs of the cost model and the codecs.

    chunk_bytes: raw bytes per chunk (unit of dedup and of delta choice) of a new tensor; a tensor with a
        parent keeps the parent's chunk size, so its chunks line up with the ones they reuse or delta against.
    level: zstd level for chunk objects (1 is as small as 3 on byte planes, and twice as fast).
    max_chain_depth: longest delta chain; 0 stores every changed chunk full. Each delta on a chain
        costs a checkout 2-3 times what reading a flat chunk does (more objects, planes, XOR), so
        chains are short: on MiniLM's partial fine-tune, depth 2 instead of 8 stored 1.3% more and
        halved the decode time of the changed layer.
    min_saving: fraction of the full size a delta must save to be taken.
    read_weight: bytes of storage one extra decode of a chunk's raw size is worth, per raw byte.
    plane_weight: bytes of storage one pass interleaving a chunk's byte planes is worth, per raw byte.
    max_read_amplification: bound on decoded bytes per checkout over raw bytes.
    sample_bytes: bytes sampled per chunk to estimate each candidate's compressed size.
    encodings: which delta encodings may be tried (full is always possible).
    pack_bytes: a tensor of one chunk no larger than this (a bias, a LayerNorm) is stored full, packed with
        the tree's other small changed tensors into one object (0: never). A third of MiniLM's chunk objects
        were such tensors: each cost a file, an fsync and a read for a few kilobytes, where a delta saves
        a few hundred bytes.
    pack_min: pack only when at least this many small tensors changed; a handful of objects costs little,
        and stored as deltas they keep a small model's versions small.
    """

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    level: int = 1
    max_chain_depth: int = 2
    min_saving: float = 0.05
    read_weight: float = 0.02
    plane_weight: float = 0.2
    max_read_amplification: float = 2.0
    sample_bytes: int = 32 * 1024
    encodings: tuple[str, ...] = ENCODINGS
    pack_bytes: int = 16 * 1024
    pack_min: int = 8

    def __post_init__(self) -> None:
        if self.chunk_bytes < 64:
            raise InvalidInputError("StoragePolicy.chunk_bytes must be at least 64.")
        if self.max_chain_depth < 0:
            raise InvalidInputError("StoragePolicy.max_chain_depth cannot be negative.")
        if not 0.0 <= self.min_saving < 1.0:
            raise InvalidInputError("StoragePolicy.min_saving must be in [0, 1).")
        if self.read_weight < 0 or self.plane_weight < 0 or self.max_read_amplification < 1.0:
            raise InvalidInputError(
                "StoragePolicy.read_weight and plane_weight must be >= 0 and max_read_amplification >= 1.")
        if self.pack_bytes < 0 or self.pack_min < 1:
            raise InvalidInputError("StoragePolicy.pack_bytes cannot be negative, nor pack_min below 1.")
        if self.sample_bytes < 64:
            raise InvalidInputError("StoragePolicy.sample_bytes must be at least 64.")
        unknown = set(self.encodings) - set(ENCODINGS)
        if unknown:
            raise InvalidInputError(f"Unknown encodings {sorted(unknown)}; known: {', '.join(ENCODINGS)}.")


@dataclass(frozen=True)
class Candidate:
    """One way to store a chunk: an encoding, its base object (None for full), chain depth, estimated bytes,
    and the interleaving passes its decode needs."""

    encoding: str
    base: str | None
    depth: int
    estimate: float
    interleaves: int = 1


def chain_limit(policy: StoragePolicy, unchanged: Iterable[ChunkRef], changed: Iterable[tuple[int, ChunkRef | None]]) -> int:
    """The deepest delta allowed in this tree under the read-amplification bound.

    `unchanged` are chunks kept as they are; `changed` are (raw bytes, parent
    chunk at the same place or None) for chunks to encode. Returns
    `max_chain_depth` (chain mode), 1 (star mode) or 0 (full only).
    """
    changed, unchanged = list(changed), list(unchanged)
    kept = sum(c.nbytes * (c.depth + 1) for c in unchanged)
    total = sum(c.nbytes for c in unchanged) + sum(n for n, _ in changed)
    budget = policy.max_read_amplification * total
    if policy.max_chain_depth == 0 or not (set(policy.encodings) - {FULL}):
        return 0

    def worst(limit: int) -> int:
        cost = kept
        for n, parent in changed:
            depth = 0 if parent is None else (parent.depth + 1 if parent.depth + 1 <= limit else min(1, limit))
            cost += n * (depth + 1)
        return cost

    for limit in (policy.max_chain_depth, 1):
        if worst(limit) <= budget:
            return limit
    return 0


def choose(policy: StoragePolicy, candidates: Iterable[Candidate], nbytes: int, limit: int) -> Candidate:
    """The cheapest candidate within depth `limit`; a full candidate must be among them.

    A delta must save `min_saving` of the smallest full candidate's size.
    """
    candidates = list(candidates)
    full = min((c for c in candidates if c.encoding == FULL), key=lambda c: c.estimate)
    ceiling = (1.0 - policy.min_saving) * full.estimate
    allowed = [c for c in candidates if c.encoding == FULL or (c.depth <= limit and c.estimate <= ceiling)]

    def cost(c: Candidate) -> float:
        return c.estimate + nbytes * (policy.read_weight * c.depth + policy.plane_weight * c.interleaves)

    return min(allowed, key=lambda c: (cost(c), c.depth))
