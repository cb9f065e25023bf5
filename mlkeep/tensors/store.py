"""TensorStore: put and get trees of named tensors, deduplicated, delta-compressed, verified.

Writing a tree (`put_tree`) runs in two phases over a thread pool (BLAKE3,
SHA-256, zstd and large numpy operations release the GIL):

1. hash every chunk; a chunk whose id the parent tree already holds is reused
   as it is (its object, encoding and chain), so an unchanged tensor costs
   one hash pass and no writes;
2. the planner (`tensors.planner`) sets the tree's chain limit from the
   read-amplification bound, then each changed chunk is encoded as the
   cheapest of full / xor / sub against the parent's chunk or its chain root.

Chunk objects are written by a separate I/O pool (each write fsyncs, and
fsyncs overlap well), and the tree object only after every chunk is durable,
so a tree never names a missing chunk. Small one-chunk tensors that changed
are stored full in one pack object per tree (`tensors.packs`), read back with
one read per pack.

Reading (`get_tree`, `get_tensor`) decodes each chunk along its delta chain
into the output buffer (`tensors.chains`) and checks it against its id; each tensor's
digest is then checked against its chunk ids. A tree hashes its chunks with
its parent's algorithm (BLAKE3 for a tree without parent; SHA-256 in stores
written before BLAKE3), so versions of one model always compare by id. Any mismatch raises
`CorruptObjectError`: a wrong byte is never returned.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mlkeep.errors import CorruptObjectError, InvalidInputError, NotFoundError
from mlkeep.objects.store import ObjectStore
from mlkeep.tensors import codecs, packs
from mlkeep.tensors.blobs import ChunkObjects, compress, raw_frame
from mlkeep.tensors.chains import MAX_CHAIN, ChainDecoder
from mlkeep.tensors.chunks import DEFAULT_HASH, chunk_id, chunk_size, spans, tensor_digest
from mlkeep.tensors.dtypes import TensorLike, as_bytes, from_bytes, item_size, plane_width
from mlkeep.tensors.manifest import ChunkRef, TensorManifest
from mlkeep.tensors.planner import Candidate, StoragePolicy, chain_limit, choose
from mlkeep.tensors.tree import Tree

TreeId = str
_META_LEVEL = 3
_WRAP_LEVEL = -100
_IO_THREADS = 4  # enough to overlap fsyncs; more only contend for the directory locks
_MAX_CHOICES = 1 << 16  # remembered encoding choices: a few versions of a large model, a few MB


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a tree, as stored."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    stored: int
    chunks: int
    encodings: dict[str, int]
    max_depth: int
    digest: str


@dataclass(frozen=True)
class TreeInfo:
    """A tree's tensors and its storage: raw bytes, and compressed bytes of its distinct chunk objects."""

    tree_id: str
    tensors: dict[str, TensorInfo]
    nbytes: int
    stored: int
    encodings: dict[str, int]
    max_depth: int


@dataclass(frozen=True)
class WriteStats:
    """What a TensorStore has written since it was opened (snapshot)."""

    trees: int = 0
    tensors: int = 0
    chunks: int = 0
    chunks_reused: int = 0
    raw_bytes: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    encodings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` re-read and found intact."""

    tree_id: str
    tensors: int
    chunks: int
    objects: int
    nbytes: int


@dataclass(frozen=True)
class RecipeTree:
    """A tree whose changed chunks are left unstored (see `TensorStore.put_recipe_tree`).

    `changed_bytes` are the raw bytes of those chunks; `estimated_bytes` what
    storing them as the planner would (full or delta) would have cost.
    """

    tree_id: str
    changed_bytes: int
    estimated_bytes: float
    decoded_bytes: int


@dataclass(frozen=True)
class _Option:
    """One way to encode a changed chunk: encoding, base object, its chain root, depth, plane width
    (1 for a flat full chunk)."""

    encoding: str
    base: str | None
    root: str | None
    depth: int
    width: int

    @property
    def flat(self) -> bool:
        return self.encoding == codecs.FULL and self.width == 1

    @property
    def interleaves(self) -> int:
        """Plane-interleaving passes a decode needs (see `tensors.planner`)."""
        return 0 if self.width == 1 else (2 if self.encoding == codecs.SUB else 1)


@dataclass(frozen=True)
class _Choice:
    """How the planner stored a chunk object as a delta, for the chunk that replaces it in the next version:
    encoding, plane width, whether the delta stood on its chain's root (depth 1) or on its parent, the planes
    kept raw, and the stored bytes per raw byte when the choice was sampled."""

    encoding: str
    width: int
    on_root: bool
    keep_raw: frozenset[int]
    planned: float

    def pays(self, ratio: float, policy: StoragePolicy) -> bool:
        """Whether a chunk stored this way at `ratio` (stored per raw byte) is still what planning would pick:
        a delta saving `min_saving`, no more than a quarter larger than when the choice was sampled."""
        return ratio <= 1.0 - policy.min_saving and ratio <= 1.25 * self.planned


@dataclass
class _Job:
    """One tensor being written."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray
    chunk_bytes: int
    spans: list[tuple[int, int]]
    parents: list[ChunkRef | None]
    hash: str
    ids: list[str] = field(default_factory=list)
    refs: list[ChunkRef | None] = field(default_factory=list)


class TensorStore:
    """Trees of named tensors in an `ObjectStore`.

    `policy` is the default `StoragePolicy`; `workers` threads encode and
    decode chunks (default `worker_threads()`); `cache_bytes` bounds the cache
    of decoded chunks that lets a training loop delta against what it just
    wrote without reading it back.
    """

    def __init__(
        self,
        objects: ObjectStore,
        *,
        policy: StoragePolicy | None = None,
        workers: int | None = None,
        cache_bytes: int = 256 << 20,
    ) -> None:
        self.objects = objects
        self.policy = policy or StoragePolicy()
        self.blobs = ChunkObjects(objects, cache_bytes)
        if workers is not None and workers < 1:
            raise InvalidInputError(f"TensorStore needs at least one worker thread, not {workers}.")
        self._workers = workers or worker_threads()
        self._pool: ThreadPoolExecutor | None = None
        self._io: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._encodings: Counter[str] = Counter()
        self._tree_cache: OrderedDict[str, Tree] = OrderedDict()
        self._bases: dict[str, str | None] = {}  # object id -> delta base its header names
        self._choices: OrderedDict[str, _Choice] = OrderedDict()  # object id -> how it was stored (for its successor)

    # ---------------------------------------------------------------- writing

    def put_tree(
        self,
        tensors: Mapping[str, TensorLike],
        parent_tree: TreeId | None = None,
        policy: StoragePolicy | None = None,
    ) -> TreeId:
        """Store a tree of named tensors and return its id.

        With `parent_tree`, chunks equal to the parent's are reused and changed
        ones may be stored as deltas against the parent's chunk at the same
        place. Raises `InvalidInputError` for a bad name or dtype (nothing is
        written) and `NotFoundError` for an unknown parent.
        """
        policy = policy or self.policy
        jobs, changed, limit = self._prepare(tensors, parent_tree, policy)
        self._encode_all(jobs, changed, limit, policy)
        tree_id = self._put_tree_object(Tree.of({job.name: self._manifest(job) for job in jobs}))
        self._count(trees=1, tensors=len(jobs))
        return tree_id

    def _prepare(
        self, tensors: Mapping[str, TensorLike], parent_tree: TreeId | None, policy: StoragePolicy
    ) -> tuple[list[_Job], dict[str, tuple[_Job, int, np.ndarray, ChunkRef | None]], int]:
        """Hash every chunk, reuse what the parent holds; return the jobs, the changed chunks and the chain limit."""
        parent = self.manifests(parent_tree) if parent_tree else {}
        algorithm = next(iter(parent.values())).hash if parent else DEFAULT_HASH
        jobs = [self._job(name, tensor, parent.get(name), policy, algorithm) for name, tensor in _checked(tensors)]
        known = {ref.id: ref for m in parent.values() for ref in m.chunks if ref.encoding != codecs.RECIPE}
        self._hash_all(jobs)
        changed = self._reuse(jobs, known)
        limit = chain_limit(
            policy,
            [r for job in jobs for r in job.refs if r is not None],
            [(len(raw_span), base) for _, _, raw_span, base in changed.values()],
        )
        return jobs, changed, limit

    def _job(self, name: str, tensor: TensorLike, parent: TensorManifest | None, policy: StoragePolicy,
             algorithm: str) -> _Job:
        dtype, shape, data = as_bytes(tensor)
        same_kind = parent is not None and plane_width(parent.dtype) == plane_width(dtype)
        # A tensor keeps its parent's chunk size: reuse and deltas go by position, so chunks must line up with
        # the parent's (a store written with another default, or another policy, goes on as it began).
        size = chunk_size(parent.chunk_bytes if same_kind and parent and parent.chunk_bytes > 0 else policy.chunk_bytes,
                          item_size(dtype))
        cuts = spans(len(data), size)
        parents: list[ChunkRef | None] = []
        for i, (start, stop) in enumerate(cuts):
            ref = parent.chunks[i] if same_kind and parent and i < len(parent.chunks) else None
            parents.append(_source(ref) if ref is not None and ref.nbytes == stop - start else None)
        return _Job(name, dtype, shape, data, size, cuts, parents, algorithm)

    def _hash_all(self, jobs: list[_Job]) -> None:
        pool = self._executor()
        futures = [
            [pool.submit(self._identify, job.data[a:b], parent, job.hash)
             for (a, b), parent in zip(job.spans, job.parents)]
            for job in jobs
        ]
        for job, fs in zip(jobs, futures):
            job.ids = [f.result() for f in fs]

    def _identify(self, data: np.ndarray, parent: ChunkRef | None, algorithm: str) -> str:
        """A chunk's id. When the parent's chunk is cached, comparing bytes (about ten times
        faster than SHA-256) settles the common case of an unchanged chunk."""
        if parent is not None and parent.id and parent.at is None:
            cached = self.blobs.cached(parent.obj)
            if cached is not None and _equal(cached, data):
                return parent.id  # cached bytes are verified: they are the chunk `parent.id` names
        return chunk_id(data, algorithm)

    def _reuse(self, jobs: list[_Job], known: dict[str, ChunkRef]) -> dict[str, tuple[_Job, int, np.ndarray, ChunkRef | None]]:
        """Fill in reused chunks; return the distinct changed ones by id (first occurrence wins)."""
        changed: dict[str, tuple[_Job, int, np.ndarray, ChunkRef | None]] = {}
        reused = 0
        for job in jobs:
            job.refs = []
            for i, cid in enumerate(job.ids):
                parent = job.parents[i]
                ref = parent if parent is not None and parent.id == cid else known.get(cid)
                job.refs.append(ref)
                if ref is not None:
                    reused += 1
                elif cid not in changed:
                    a, b = job.spans[i]
                    changed[cid] = (job, i, job.data[a:b], parent)
        self._count(chunks=sum(len(j.ids) for j in jobs), chunks_reused=reused)
        return changed

    def _encode_all(self, jobs: list[_Job], changed: dict[str, tuple[_Job, int, np.ndarray, ChunkRef | None]], limit: int, policy: StoragePolicy) -> None:
        pool = self._executor()
        small = [cid for cid, (job, _, _, _) in changed.items() if _packed(job, policy)]
        small = small if len(small) >= policy.pack_min else []
        members = {cid: pool.submit(self._encode_member, cid, changed[cid][2], changed[cid][0], policy) for cid in small}
        futures: dict[str, Future[tuple[ChunkRef, Future[None]]]] = {
            cid: pool.submit(self._encode_chunk, cid, raw, base, job, limit, policy)
            for cid, (job, _, raw, base) in changed.items()
            if cid not in members
        }
        done, writes = {}, []
        if members:
            refs, write = self._write_pack({cid: (f.result(), len(changed[cid][2])) for cid, f in members.items()})
            done.update(refs)
            writes.append(write)
        for cid, f in futures.items():
            done[cid], write = f.result()
            writes.append(write)
        for w in writes:
            w.result()  # every chunk durable before the tree that names it is written
        for job in jobs:
            job.refs = [ref if ref is not None else done[cid] for ref, cid in zip(job.refs, job.ids)]

    def _encode_member(self, cid: str, raw: np.ndarray, job: _Job, policy: StoragePolicy) -> bytes:
        """The encoded content of a small chunk to be packed: the smaller of flat and byte planes, full."""
        options, _, encoded, _, k, noise = self._plan_chunk(cid, raw, None, job, 0, policy)
        o = options[k]
        with self._lock:
            self._encodings[o.encoding] += 1
        return encoded.get(k) or self._pack(o, raw, None, cid, job.hash, policy, noise.get(k, frozenset()))

    def _write_pack(self, members: dict[str, tuple[bytes, int]]) -> tuple[dict[str, ChunkRef], Future[None]]:
        """Join encoded small chunks (id -> (content, raw bytes)) into one pack object; hand its write to the
        I/O pool and return each chunk's entry."""
        content, at = packs.join([m for m, _ in members.values()])
        oid = hashlib.sha256(content).hexdigest()
        write = self._io_executor().submit(self._write_chunk, oid, compress(content, _WRAP_LEVEL),
                                           sum(n for _, n in members.values()))
        refs = {cid: ChunkRef(cid, oid, codecs.FULL, None, oid, 0, place[1], n, place)
                for (cid, (_, n)), place in zip(members.items(), at)}
        return refs, write

    def put_recipe_tree(
        self,
        tensors: Mapping[str, TensorLike],
        parent_tree: TreeId | None = None,
        policy: StoragePolicy | None = None,
    ) -> RecipeTree:
        """Store a tree whose chunks that differ from `parent_tree` are *not* stored.

        For a commit whose training provenance recreates its weights: chunks
        the parent holds are reused as usual; every other chunk is recorded by
        its hash only (encoding `recipe`, no object), so a re-run can be
        verified against it bit for bit. Its `base` names the parent's stored
        chunk at the same place, which later versions may delta against.
        Also returns what storing those chunks would have cost, for the planner.
        """
        policy = policy or self.policy
        jobs, changed, limit = self._prepare(tensors, parent_tree, policy)
        pool = self._executor()
        futures = {
            cid: pool.submit(self._plan_chunk, cid, raw, base, job, limit, policy)
            for cid, (job, _, raw, base) in changed.items()
        }
        estimated, decoded = 0.0, 0
        done: dict[str, ChunkRef] = {}
        for cid, f in futures.items():
            options, _, _, candidates, k, _ = f.result()
            estimated += candidates[k].estimate
            decoded += len(changed[cid][2]) * (candidates[k].depth + 1)
            src = changed[cid][3]
            n = len(changed[cid][2])
            done[cid] = (
                ChunkRef(cid, "", codecs.RECIPE, src.obj, src.root, src.depth, 0, n)
                if src is not None and src.at is None else ChunkRef(cid, "", codecs.RECIPE, None, "", 0, 0, n)
            )  # fmt: skip
        for job in jobs:
            job.refs = [ref if ref is not None else done[cid] for ref, cid in zip(job.refs, job.ids)]
        kept = sum(r.nbytes * (r.depth + 1) for job in jobs for r in job.refs if r is not None and r.encoding != codecs.RECIPE)
        tree_id = self._put_tree_object(Tree.of({job.name: self._manifest(job) for job in jobs}))
        self._count(trees=1, tensors=len(jobs))
        return RecipeTree(tree_id, sum(len(v[2]) for v in changed.values()), estimated, kept + decoded)

    def _plan_chunk(
        self, cid: str, raw: np.ndarray, parent: ChunkRef | None, job: _Job, limit: int, policy: StoragePolicy
    ) -> tuple[list[_Option], dict[str, np.ndarray], dict[int, bytes], list[Candidate], int, dict[int, frozenset[int]]]:
        """The candidate encodings of one changed chunk, their estimated sizes, and the index of the cheapest
        (with the encoded object content of each candidate it encoded whole, and for each sampled one the
        planes its sample showed to be incompressible)."""
        n, width = len(raw), plane_width(job.dtype)
        options = [_Option(codecs.FULL, None, None, 0, 1)]  # flat: the bytes as they are
        if width > 1:
            options.append(_Option(codecs.FULL, None, None, 0, width))
        bases: dict[str, np.ndarray] = {}
        deltas = [e for e in policy.encodings if e != codecs.FULL]
        if parent is not None and parent.at is None and limit >= 1 and deltas:  # a packed chunk is no base
            if parent.depth + 1 <= limit:
                bases[parent.obj] = self._base_raw(parent.obj, n)
                options += [_Option(e, parent.obj, parent.root, parent.depth + 1, width) for e in deltas]
            if parent.depth >= 1:
                bases[parent.root] = self._base_raw(parent.root, n)
                options += [_Option(e, parent.root, parent.root, 1, width) for e in deltas]
        exact = n <= policy.sample_bytes
        sample = _sample_spans(n, policy.sample_bytes, width)
        encoded: dict[int, bytes] = {}
        noise: dict[int, frozenset[int]] = {}
        candidates = []
        for k, o in enumerate(options):
            base_raw = bases[o.base] if o.base else None
            if exact:
                encoded[k] = self._pack(o, raw, base_raw, cid, job.hash, policy)
                estimate = float(len(encoded[k]))
            elif o.flat:
                estimate = float(n)
            else:
                ratio, noise[k] = _estimate(o.encoding, raw, base_raw, width, sample, policy.level)
                estimate = ratio * n
            candidates.append(Candidate(o.encoding, o.base, o.depth, estimate, o.interleaves))
        best = choose(policy, candidates, n, limit)
        return options, bases, encoded, candidates, candidates.index(best), noise

    @staticmethod
    def _pack(o: _Option, raw: np.ndarray, base: np.ndarray | None, cid: str, algorithm: str,
              policy: StoragePolicy, keep_raw: frozenset[int] = frozenset()) -> bytes:
        return b"".join(TensorStore._parts(o, raw, base, cid, algorithm, policy, keep_raw))

    @staticmethod
    def _parts(o: _Option, raw: np.ndarray, base: np.ndarray | None, cid: str, algorithm: str,
               policy: StoragePolicy, keep_raw: frozenset[int] = frozenset()) -> list[bytes | memoryview]:
        return codecs.pack_parts(o.encoding, raw, base, o.width, cid, algorithm, o.base,
                                 None if o.flat else policy.level, keep_raw)

    def _encode_chunk(
        self, cid: str, raw: np.ndarray, parent: ChunkRef | None, job: _Job, limit: int, policy: StoragePolicy
    ) -> tuple[ChunkRef, Future[None]]:
        """Encode one changed chunk as the planner's choice, or as its predecessor's choice when that still
        holds (see `_Choice`); hand its write to the I/O pool."""
        n = len(raw)
        reused = self._reused_option(parent, n, limit, policy)
        choice = None
        if reused is not None:
            o, choice = reused
            keep_raw = choice.keep_raw
            parts = self._parts(o, raw, self._base_raw(o.base, n) if o.base else None, cid, job.hash, policy, keep_raw)
            if not choice.pays(sum(len(p) for p in parts) / n, policy):
                choice = None  # the tensor changed its ways (a reset layer, a jump): plan this chunk afresh
        if choice is None:
            options, bases, encoded, _, k, noise = self._plan_chunk(cid, raw, parent, job, limit, policy)
            o, keep_raw = options[k], noise.get(k, frozenset())
            parts = [encoded[k]] if k in encoded else self._parts(o, raw, bases[o.base] if o.base else None, cid,
                                                                  job.hash, policy, keep_raw)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        oid, size = digest.hexdigest(), sum(len(p) for p in parts)
        # Byte planes are compressed already (or noise): the object store's frame holds them as raw blocks. A flat
        # chunk is the tensor's bytes as they are, where zstd's fastest setting still finds runs (of zeros).
        packed = compress(b"".join(parts), _WRAP_LEVEL) if o.flat else raw_frame(parts)
        if self.blobs.cache_bytes and o.depth < max(limit, 1):
            # Only a chunk a later delta may stand on is cached: one at the chain's end never is a base (its
            # successor deltas against the root), and caching it would evict the roots the next tree needs.
            self.blobs.remember(oid, np.array(raw, copy=True))  # the caller may change its array later
        with self._lock:
            self._encodings[o.encoding] += 1
        if parent is not None and parent.depth >= 1 and o.base is not None:
            # Against a full parent, "the parent" and "the chain's root" are one object: which the planner
            # meant shows only in the next version, so only a choice made on a delta parent is remembered.
            self._remember_choice(oid, o, o.base == parent.root, keep_raw, size / n, choice, policy)
        write = self._io_executor().submit(self._write_chunk, oid, packed, n)
        return ChunkRef(cid, oid, o.encoding, o.base, o.root or oid, o.depth, len(packed), n), write

    def _reused_option(self, parent: ChunkRef | None, n: int, limit: int,
                       policy: StoragePolicy) -> tuple[_Option, _Choice] | None:
        """The way the parent's chunk was stored, applied to its successor, when this process chose it by
        sampling and it is still allowed here; None to plan afresh.

        Fine-tuning moves a tensor by similar steps version after version, so the encoding that won at a
        place keeps winning there, and the trial compressions that found it (a quarter of a commit's work)
        need not be redone. A chunk small enough to be encoded whole is always planned: that is exact."""
        if parent is None or not parent.obj or parent.at is not None or n <= policy.sample_bytes:
            return None
        with self._lock:
            choice = self._choices.get(parent.obj)
        if choice is None or choice.encoding not in policy.encodings or limit < 1:
            return None
        if choice.on_root:  # a star delta: against the chain's root at depth 1
            return _Option(choice.encoding, parent.root, parent.root, 1, choice.width), choice
        if parent.depth + 1 > limit:
            return None
        return _Option(choice.encoding, parent.obj, parent.root, parent.depth + 1, choice.width), choice

    def _remember_choice(self, oid: str, o: _Option, on_root: bool, keep_raw: frozenset[int], ratio: float,
                         reused: _Choice | None, policy: StoragePolicy) -> None:
        """Record how object `oid` was stored (`ratio`: stored bytes per raw byte), for its successor
        (`_reused_option`); a reused choice (`reused`, which still paid) is passed on with the ratio it was
        planned at."""
        if reused is not None:
            ratio = reused.planned  # measured against the sampled decision, so slow drift is caught too
        with self._lock:
            self._choices[oid] = _Choice(o.encoding, o.width, on_root, keep_raw, ratio)
            while len(self._choices) > _MAX_CHOICES:
                self._choices.popitem(last=False)

    def _write_chunk(self, oid: str, packed: bytes, nbytes: int) -> None:
        if self.blobs.put(oid, packed):
            self._count(objects_written=1, bytes_written=len(packed), raw_bytes=nbytes)

    def _manifest(self, job: _Job) -> TensorManifest:
        refs = tuple(r for r in job.refs if r is not None)
        return TensorManifest(job.dtype, job.shape, len(job.data), job.chunk_bytes, tensor_digest(job.ids, job.hash),
                              refs, job.hash)

    def _put_tree_object(self, tree: Tree) -> str:
        """Store a tree object and keep it parsed: the next version's commit reads it as its parent (parsing
        a MiniLM tree's JSON took longer than writing it)."""
        tree_id = self._put_meta(tree.to_bytes())
        self._cache_tree(tree_id, tree)
        return tree_id

    def _put_meta(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        packed = compress(data, _META_LEVEL)
        if self.blobs.put(oid, packed):
            self._count(objects_written=1, bytes_written=len(packed))
        return oid

    # ---------------------------------------------------------------- reading

    def manifests(self, tree_id: TreeId) -> dict[str, TensorManifest]:
        """Name -> manifest of every tensor in a tree. Raises `NotFoundError` for an unknown tree."""
        return self._tree(tree_id).as_dict()

    def get_tree(self, tree_id: TreeId) -> dict[str, TensorLike]:
        """Every tensor of a tree, bit for bit as written (ndarray, or RawTensor for bfloat16/float8).

        Raises `NotFoundError` for an unknown tree or missing object and
        `CorruptObjectError` when any byte does not match its hash.
        """
        manifests = self.manifests(tree_id)
        for name, m in manifests.items():
            _stored(tree_id, name, m)
        buffers = {name: np.empty(m.nbytes, dtype=np.uint8) for name, m in manifests.items()}
        self._decode_all([(ref, m.hash, buffers[name][a : a + ref.nbytes])
                          for name, m in manifests.items() for ref, a in zip(m.chunks, _offsets(m))], True, None)
        return {name: _finish(name, m, buffers[name]) for name, m in manifests.items()}

    def get_tensor(self, tree_id: TreeId, name: str) -> TensorLike:
        """One tensor of a tree, verified; `NotFoundError` if the tree has no tensor `name`."""
        tree = self.manifests(tree_id)
        if name not in tree:
            raise NotFoundError(f"Tree {tree_id} has no tensor named {name!r}.")
        m = _stored(tree_id, name, tree[name])
        buf = np.empty(m.nbytes, dtype=np.uint8)
        self._decode_all([(ref, m.hash, buf[a : a + ref.nbytes]) for ref, a in zip(m.chunks, _offsets(m))], True, None)
        return _finish(name, m, buf)

    def tree_info(self, tree_id: TreeId) -> TreeInfo:
        """Names, dtypes, shapes, stored bytes, encodings and chain depths, from manifests alone."""
        infos: dict[str, TensorInfo] = {}
        distinct: dict[tuple[str, tuple[int, int] | None], int] = {}
        for name, m in self._tree(tree_id).entries:
            distinct.update(((c.obj, c.at), c.stored) for c in m.chunks if c.obj)
            infos[name] = TensorInfo(
                name, m.dtype, m.shape, m.nbytes, m.stored, len(m.chunks),
                dict(Counter(c.encoding for c in m.chunks)),
                max((c.depth for c in m.chunks), default=0), m.digest,
            )  # fmt: skip
        encodings: Counter[str] = Counter()
        for info in infos.values():
            encodings.update(info.encodings)
        return TreeInfo(
            tree_id, infos, sum(i.nbytes for i in infos.values()), sum(distinct.values()),
            dict(encodings), max((i.max_depth for i in infos.values()), default=0),
        )  # fmt: skip

    def is_recipe(self, tree_id: TreeId) -> bool:
        """True when some chunks of the tree are not stored (a training provenance recreates them)."""
        return any(c.encoding == codecs.RECIPE for _, m in self._tree(tree_id).entries for c in m.chunks)

    def mismatches(self, tree_id: TreeId, tensors: Mapping[str, TensorLike]) -> list[str]:
        """Names of tensors that differ from the tree (bit for bit, by chunk hashes), missing or extra.

        An empty list means `tensors` are exactly the tree's tensors: every
        chunk hashes to the id its manifest records, which is how the weights
        a training provenance recreates are verified before they are returned.
        """
        manifests = self.manifests(tree_id)
        bad = sorted(set(manifests) ^ set(tensors))
        pool = self._executor()
        futures: dict[str, list[Future[str]]] = {}
        for name, m in manifests.items():
            if name not in tensors:
                continue
            dtype, shape, data = as_bytes(tensors[name])
            if dtype != m.dtype or shape != m.shape or len(data) != m.nbytes:
                bad.append(name)
                continue
            futures[name] = [pool.submit(chunk_id, data[a : a + ref.nbytes], m.hash) for ref, a in zip(m.chunks, _offsets(m))]
        for name, fs in futures.items():
            ids = [f.result() for f in fs]
            m = manifests[name]
            if ids != [c.id for c in m.chunks] or tensor_digest(ids, m.hash) != m.digest:
                bad.append(name)
        return sorted(set(bad))

    def tree_objects(self, tree_id: TreeId) -> set[str]:
        """Every object the tree needs: itself, its chunk objects, and each delta base down to its root.

        Bases between a chunk's direct base and its chain root are named only
        in the headers of the objects above them, so those headers are read
        (once per process); `gc` keeps all of these.
        """
        needed = {tree_id}
        for _, m in self._tree(tree_id).entries:
            for c in m.chunks:
                needed.update(oid for oid in (c.obj, c.base, c.root) if oid)
                if c.depth >= 2 and c.base:
                    needed.update(self._chain(c.base))
        return needed

    def _chain(self, oid: str) -> list[str]:
        """The objects of a delta chain from `oid` down to its full root, by their headers."""
        out = []
        seen = 0
        current: str | None = oid
        while current is not None and seen <= MAX_CHAIN:
            out.append(current)
            with self._lock:
                known = self._bases.get(current, False)
            if known is False:
                header = codecs.read_header_prefix(self.blobs.header(current))
                known = header.base
                with self._lock:
                    self._bases[current] = known
            current = known  # type: ignore[assignment]
            seen += 1
        return out

    def verify(self, tree_id: TreeId) -> VerifyReport:
        """Re-read every object the tree needs, bypassing caches; raise `CorruptObjectError` on the first fault.

        Chunks left to a training provenance (encoding `recipe`) have no object
        and are skipped; the repository verifies them when it recreates them.
        """
        manifests = self.manifests(tree_id)
        touched: set[str] = set()
        stored = {name: m for name, m in manifests.items() if not any(c.encoding == codecs.RECIPE for c in m.chunks)}
        buffers = {name: np.empty(m.nbytes, dtype=np.uint8) for name, m in stored.items()}
        items = [(ref, m.hash, buffers[name][a : a + ref.nbytes])
                 for name, m in stored.items() for ref, a in zip(m.chunks, _offsets(m))]
        self._decode_all(items, False, touched)
        chunks = len(items)
        for name, m in stored.items():
            _finish(name, m, buffers[name])
        for oid in sorted(touched):
            if not self.objects.verify(oid):
                raise CorruptObjectError(f"Chunk object {oid} does not match its hash. Run `mlkeep fsck`.")
        return VerifyReport(tree_id, len(manifests), chunks, len(touched), sum(m.nbytes for m in manifests.values()))

    @property
    def stats(self) -> WriteStats:
        """Counters of what this TensorStore wrote since it was opened."""
        with self._lock:
            s, enc = dict(self._stats), dict(self._encodings)
        return WriteStats(encodings=enc, **s)

    def close(self) -> None:
        """Stop the worker threads and drop cached chunks."""
        with self._pool_lock:
            for pool in (self._pool, self._io):
                if pool is not None:
                    pool.shutdown()
            self._pool = self._io = None
        self.blobs.forget()

    def __enter__(self) -> TensorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="mlkeep-tensors")
            return self._pool

    def _io_executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._io is None:
                self._io = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="mlkeep-tensors-io")
            return self._io

    def _count(self, **counts: int) -> None:
        with self._lock:
            self._stats.update(counts)

    def _tree(self, tree_id: TreeId) -> Tree:
        with self._lock:
            tree = self._tree_cache.get(tree_id)
        if tree is None:
            try:
                tree = Tree.from_bytes(self.objects.get_bytes(tree_id))
            except NotFoundError:
                raise NotFoundError(f"Tensor tree {tree_id} is not in the object store.") from None
            self._cache_tree(tree_id, tree)
        return tree

    def _cache_tree(self, tree_id: TreeId, tree: Tree) -> None:
        with self._lock:
            self._tree_cache[tree_id] = tree  # objects never change: a tree read or written once is the tree
            while len(self._tree_cache) > 64:
                self._tree_cache.popitem(last=False)

    def _decode_all(self, items: list[tuple[ChunkRef, str, np.ndarray]], use_cache: bool,
                    touched: set[str] | None) -> None:
        """Decode and verify each (chunk, hash algorithm, output slice) on the worker pool; the chunks of one
        pack are one task, so the pack is read once."""
        pool = self._executor()
        by_pack: dict[str, list[tuple[ChunkRef, str, np.ndarray]]] = {}
        futures = []
        for ref, algorithm, out in items:
            if ref.at is None:
                futures.append(pool.submit(self._decode_ref, ref, algorithm, out, use_cache, touched))
            else:
                by_pack.setdefault(ref.obj, []).append((ref, algorithm, out))
        futures += [pool.submit(self._decode_pack, oid, members, touched) for oid, members in by_pack.items()]
        for f in futures:
            f.result()

    def _decode_pack(self, oid: str, members: list[tuple[ChunkRef, str, np.ndarray]], touched: set[str] | None) -> None:
        """Decode chunks packed in object `oid` into their outputs, each checked against its id."""
        if touched is not None:
            touched.add(oid)
        content = self.blobs.read(oid)
        for ref, algorithm, out in members:
            assert ref.at is not None
            data = packs.member(content, ref.at, oid)
            header = codecs.read_header(data)
            if header.encoding != codecs.FULL or header.nbytes != len(out):
                raise CorruptObjectError(f"Pack {oid} holds a chunk that does not fit its manifest.")
            codecs.decode(header, data, None, out)
            if chunk_id(out, algorithm) != ref.id:
                raise CorruptObjectError(f"Chunk {ref.id} decoded from pack {oid} does not match its hash.")

    def _decode_ref(self, ref: ChunkRef, algorithm: str, out: np.ndarray, use_cache: bool,
                    touched: set[str] | None) -> None:
        """Decode the chunk `ref` names into `out` and check it against `ref.id` (hashed with `algorithm`)."""
        ChainDecoder(self.blobs, use_cache, touched).decode(ref.obj, out)
        if chunk_id(out, algorithm) != ref.id:
            raise CorruptObjectError(f"Chunk {ref.id} decoded from object {ref.obj} does not match its hash.")

    def _base_raw(self, oid: str, nbytes: int) -> np.ndarray:
        """The verified raw chunk of object `oid`, from the cache or decoded (and then cached)."""
        raw = self.blobs.cached(oid)
        if raw is None:
            raw = np.empty(nbytes, dtype=np.uint8)
            header = ChainDecoder(self.blobs).decode(oid, raw)  # None: another thread cached it meanwhile
            if header is not None and chunk_id(raw, header.hash) != header.raw_id:
                raise CorruptObjectError(f"Base object {oid} does not decode to the chunk it promises.")
            self.blobs.remember(oid, raw)
        if len(raw) != nbytes:
            raise CorruptObjectError(f"Base object {oid} holds {len(raw)} bytes, expected {nbytes}.")
        return raw


def worker_threads() -> int:
    """Threads that encode and decode chunks: `MLKEEP_TENSOR_THREADS`, else the CPUs this process may run on
    (its affinity, which a container or `taskset` narrows), at most 8.

    zstd, BLAKE3 and numpy release the GIL, so each thread keeps a core busy;
    more threads than cores only make them take turns.
    """
    raw = os.environ.get("MLKEEP_TENSOR_THREADS")
    if raw is not None and raw.strip():
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidInputError(f"MLKEEP_TENSOR_THREADS must be a whole number of threads (1 or more), not {raw!r}.")
        return value
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, usable or 1))


def _source(ref: ChunkRef) -> ChunkRef | None:
    """What a new chunk may delta against at a parent's place: the parent's chunk, or, when
    that chunk is left to a provenance re-run (no object), the stored chunk the re-run started from.
    The stand-in has no id, so it is never mistaken for the new chunk itself."""
    if ref.encoding != codecs.RECIPE:
        return ref
    if not ref.base:
        return None
    return ChunkRef("", ref.base, "base", None, ref.root, ref.depth, 0, ref.nbytes)


def _packed(job: _Job, policy: StoragePolicy) -> bool:
    """Whether a changed chunk of `job` is packed: the tensor is one small chunk."""
    return len(job.spans) == 1 and len(job.data) <= policy.pack_bytes


def _stored(tree_id: str, name: str, m: TensorManifest) -> TensorManifest:
    if any(c.encoding == codecs.RECIPE for c in m.chunks):
        raise NotFoundError(
            f"Tensor {name!r} of tree {tree_id[:12]} is not stored: its commit's training provenance "
            "recreates it. Check it out through its repository."
        )
    return m


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if len(a) != len(b):
        return False
    if len(a) > 8192 and not np.array_equal(a[:4096], b[:4096]):
        return False  # a trained chunk differs at once: skip the pass over all of it
    if len(a) % 8 == 0:
        return bool((a.view(np.uint64) == b.view(np.uint64)).all())
    return bool(np.array_equal(a, b))


def _checked(tensors: Mapping[str, TensorLike]) -> list[tuple[str, TensorLike]]:
    if not isinstance(tensors, Mapping):
        raise InvalidInputError(f"Expected a mapping of name -> tensor, got {type(tensors).__name__}.")
    items = []
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"Tensor names must be non-empty strings, got {name!r}.")
        items.append((name, tensor))
    return sorted(items, key=lambda kv: kv[0])


def _offsets(m: TensorManifest) -> list[int]:
    out, pos = [], 0
    for ref in m.chunks:
        out.append(pos)
        pos += ref.nbytes
    if pos != m.nbytes:
        raise CorruptObjectError(f"Manifest chunks cover {pos} bytes of a {m.nbytes}-byte tensor.")
    return out


def _finish(name: str, m: TensorManifest, buf: np.ndarray) -> TensorLike:
    """Check a decoded tensor's digest and give it its dtype and shape."""
    if tensor_digest([c.id for c in m.chunks], m.hash) != m.digest:
        raise CorruptObjectError(f"Tensor {name!r} does not match its digest.")
    try:
        return from_bytes(m.dtype, m.shape, buf)
    except (ValueError, TypeError) as exc:
        raise CorruptObjectError(f"Tensor {name!r} has a manifest that does not fit its bytes: {exc}.") from exc


def _sample_spans(n: int, sample_bytes: int, width: int) -> list[tuple[int, int]]:
    """Four evenly spaced, element-aligned slices totalling about `sample_bytes`."""
    piece = max(width, sample_bytes // 4 // width * width)
    step = (n - piece) // 3 // width * width
    return [(i * step, i * step + piece) for i in range(4)]


# A plane whose sample zstd shrinks by less than this is stored raw without compressing it whole.
_NOISE = 0.97


def _estimate(enc: str, raw: np.ndarray, base: np.ndarray | None, width: int, sample: list[tuple[int, int]],
              level: int) -> tuple[float, frozenset[int]]:
    """Stored bytes per raw byte of `enc` on a sample of the chunk (planes compressed one by one, as stored),
    and the planes that barely compress (kept raw when the chunk is stored)."""
    parts = [codecs.encode(enc, raw[a:b], None if base is None else base[a:b], width).reshape(width, -1) for a, b in sample]
    planes = np.concatenate(parts, axis=1)
    sizes = codecs.plane_sizes(planes, width, level)
    noise = frozenset(i for i, size in enumerate(sizes) if size >= _NOISE * planes.shape[1])
    stored = sum(planes.shape[1] if i in noise else size for i, size in enumerate(sizes))
    return stored / planes.size, noise
