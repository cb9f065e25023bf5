"""Writing an intermediate's chunks and manifest, and reading a selection back.

`LayerWriter` takes one layer's rows as the model produces them, cuts each
full block of rows into column chunks, and `ChunkSink` encodes, hashes and
compresses each chunk on a thread pool (numpy, zstd and SHA-256 release the
GIL, so this overlaps the model's forward passes) and stores it unless an
object with the same content already exists: exact de-duplication across
layers, models and versions comes from content addressing. A chunk
near-identical to a stored one may be stored as a delta against it
(`delta`, found by `dedup`, or, for a pipeline stage, against the chunk of
the stage before it, its input, through the stage's program when
`stagemaps` knows it). Objects are written on a separate pool of I/O threads
(a remote store's uploads never hold up encoding) to temporary names of a
`Staging`, which `flush` publishes: every object made durable at once, then
named. A capture hands one staging to its sink and publishes it, manifests
included, once; so a manifest, and the record naming it, only ever
reference durable chunks. The manifest (chunk ids
and sizes per block, the layout, the codec, the chunks' LSH keys and delta
bases) is itself an object. `read` decodes only the chunks a selection
touches, on the thread pool, each verified against its hash by the object
store; the contents of deltas decoded lately are kept (`_Decoded`), so the
stages of one pipeline, chained on one another, are not decoded over and
over.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError, NotFoundError
from mlkeep.intermediates import codes, delta
from mlkeep.intermediates.codecs import Codec, decode_chunk, encode_chunk, parse_codec
from mlkeep.intermediates.codes import Codes
from mlkeep.intermediates.dedup import SimilarIndex, pack_keys
from mlkeep.intermediates.layout import Layout, plan_layout, touched
from mlkeep.intermediates.stagemaps import StageMap
from mlkeep.objects.store import ObjectStore, Staging
from mlkeep.tensors.blobs import compress

# Full chunks and deltas: on a CNN's 8-bit codes level 1 was both faster and 4% smaller than 3 (10 fine-tuned
# checkpoints: 22.4 MB against 23.4 MB), and the 50 benchmark pipelines came out the same (their deltas are
# MAP_LEVEL's)
LEVEL = 1
# A stage map's misses are a few small values per code, which zstd's longer searches pack much tighter (the
# 50 benchmark pipelines: 1.58 MB at level 3, 1.46 MB at 12, 1.42 MB at 19); only pipeline stages take
# this path, whose chunks hold at most a few hundred KB of codes
MAP_LEVEL = 12
IO_THREADS = 4  # writes mostly wait on fsync: more threads than cores keep the disk busy
RECENT_BYTES = 64 << 20  # contents of chunks this sink stored lately, kept as delta bases
FORMAT = "mlkeep-intermediate/1"


@dataclass
class WriteResult:
    """What writing one intermediate produced."""

    manifest: dict[str, Any]
    raw_bytes: int
    stored_bytes: int
    new_bytes: int
    chunks: int
    reused: int
    approx_reused: int = 0
    deltas: int = 0


@dataclass(frozen=True)
class Stored:
    """Where one chunk went: its object, compressed size, whether it was new, and how it was kept."""

    oid: str
    size: int
    new: bool
    approx: bool = False
    delta: tuple[str, str] | None = None  # (base id, content id) of a chunk stored against a base
    keys: list[int] | None = None  # LSH keys of a full chunk
    chain: dict[str, tuple[str, str]] = field(default_factory=dict)  # the deltas its base depends on


@dataclass
class _Session:
    """Objects written by this sink (so concurrent writers count new bytes once), the writes still in
    flight, and the contents of recent chunks (a delta's base is usually a chunk just written)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    written: set[str] = field(default_factory=set)
    pending: list[Future[bool]] = field(default_factory=list)
    recent: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    recent_bytes: int = 0


DEDUP = ("exact", "similar", "approx")
_DELTA_GAIN = 0.7  # a delta is kept when it is smaller than this share of the chunk compressed alone
_CANDIDATES = 4  # similar chunks a new chunk is compared with
_DICT_CANDIDATES = 2  # of which the first ones also by the dearer dictionary delta
# deltas a chunk's content may depend on, itself included: a read decodes at most this many. A pipeline
# keeps each stage against the one before, so a deeper chain lets more stages be predicted from their input
# (50 benchmark pipelines with stage maps, zstd level 3: 90x at 3, 120x at 6, 124x at 8) at the cost of a
# slower first read of a late stage
MAX_DEPTH = 6
_RESOLVE_LIMIT = 16  # a longer chain in a stored object is a corrupt (or cyclic) one


class ChunkSink:
    """Encodes and stores chunks for several layers at once on one thread pool.

    `dedup`: "exact" (content hash only), "similar" (also compress a chunk
    against a near-identical stored one: lossless) or "approx" (also reuse a
    stored chunk whose values are all within `tolerance`: lossy). The last two
    need `index`. With `write=False` nothing is stored and only exact
    de-duplication applies (sizes are what storing would take).
    `dictionary=False` never tries the dearer dictionary delta: a network's
    layers and checkpoints share no shifted runs of codes for it to find
    (10 fine-tuned CNN checkpoints: the same bytes with and without it, for
    a fifth more capture time). Objects go to `staging` when given, which
    the caller then publishes; else to a staging of the sink's own that
    `flush` publishes. `map_level` is the zstd level of a `MAP` delta's
    misses (a network's ReLU maps are large: `LEVEL`).
    """

    def __init__(self, objects: ObjectStore, *, write: bool = True, workers: int = 2, dedup: str = "exact",
                 index: SimilarIndex | None = None, tolerance: float = 0.0, dictionary: bool = True,
                 map_level: int = MAP_LEVEL, staging: Staging | None = None) -> None:
        self.objects, self.write, self.tolerance, self.dictionary = objects, write, tolerance, dictionary
        self.map_level = map_level
        self._staging = staging if staging is not None else objects.staging()
        self._owns_staging = staging is None
        self.dedup = dedup if write and index is not None else "exact"
        self.index = index if self.dedup != "exact" else None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlkeep-intermediates")
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="mlkeep-intermediates-io")
        self._session = _Session()
        self._sizes: dict[str, int] = {}

    def submit(self, codec: Codec, parts: list[np.ndarray], lo: int, hi: int,
               related: Future[Stored] | None = None, program: StageMap | None = None) -> Future[Stored]:
        """Encode and store later the chunk of columns [lo, hi) of the rows `parts` (stacked in order).

        `related` is a chunk submitted earlier that this one was likely computed from (the same rows of the
        layer or stage before it): a delta base to try whatever its shape, which the LSH index, keyed by
        shape, cannot offer. `program`, when given, computes this chunk from the whole of `related`."""
        return self._pool.submit(self._assemble_and_store, codec, parts, lo, hi, related, program)

    def _assemble_and_store(self, codec: Codec, parts: list[np.ndarray], lo: int, hi: int,
                            related: Future[Stored] | None, program: StageMap | None) -> Stored:
        return self._store(codec, _columns(parts, lo, hi).T, related, program)

    def flush(self) -> None:
        """Wait until every object submitted so far is staged, and publish them (durable, then named) when
        the staging is the sink's own; re-raises a failed write."""
        with self._session.lock:
            pending, self._session.pending = self._session.pending, []
        for f in pending:
            f.result()
        if self._owns_staging:
            self._staging.publish()

    def close(self) -> None:
        """Stop the threads; objects of the sink's own staging never published are removed."""
        self._pool.shutdown(wait=True)
        self._io.shutdown(wait=True)
        if self._owns_staging:
            self._staging.discard()

    def _store(self, codec: Codec, values: np.ndarray, related: Future[Stored] | None = None,
               program: StageMap | None = None) -> Stored:
        keys = self._keys(codec, values) if self.dedup == "approx" else None
        if self.dedup == "approx":
            found = self._within_tolerance(values, keys)  # type: ignore[arg-type]
            if found is not None:
                return Stored(found, self._size(found), False, approx=True)
        content = encode_chunk(codec, values)
        oid = hashlib.sha256(content).hexdigest()
        if self._known(oid):  # an exact duplicate: its sketch is already indexed (a frozen layer costs no sketch)
            known = self.index.keys_of(oid) if self.index is not None else None
            return Stored(oid, self._size(oid), False, keys=known if known is not None else keys)
        if keys is None and self.index is not None:
            keys = self._keys(codec, values)
        alias = self.index.stored_as(oid) if self.index is not None else None
        if alias is not None and self._known(alias[0]) and self._known(alias[1]):
            return Stored(alias[0], self._size(alias[0]), False, delta=(alias[1], oid),
                          chain=self.index.chain(alias[1]))  # type: ignore[union-attr]
        packed = compress(content, LEVEL)
        if self.dedup == "similar":
            base = self._related_base(related)
            if base is None or related is None or base != related.result().oid:
                program = None  # a program computes the chunk from its input, not from a base further down
            kept = self._against_similar(content, oid, len(packed), keys, base, program)  # type: ignore[arg-type]
            if kept is not None:
                return kept
        new = self._put(oid, packed)
        if self.index is not None:
            self._remember(oid, content)
            self.index.add(oid, keys)  # type: ignore[arg-type]
        return Stored(oid, len(packed), new, keys=keys)

    def _keys(self, codec: Codec, values: np.ndarray) -> list[int]:
        # chunks of different value codecs never stand for one another, so the codec goes into the keys
        return self.index.sketcher.keys(values, str(replace(codec, pool=None)))  # type: ignore[union-attr]

    def _against_similar(self, content: bytes, oid: str, alone: int, keys: list[int],
                         related: str | None = None, program: StageMap | None = None) -> Stored | None:
        """Store `content` as a delta against its best similar chunk, when that saves enough.

        Many chunks can look alike to the sketch (every rescaling of one stage's output does), so the cheap
        `SUB` difference is tried against several candidates and the `related` chunk, the dearer dictionary
        delta only against the first two candidates and the fitted (`FIT`) one only against the related
        chunk (the stage's input, which it is a function of), each when nothing so far was good enough. A
        stage's `program` (`MAP`) is tried first, against the related chunk: it knows how the chunk was made."""
        assert self.index is not None
        limit = int(_DELTA_GAIN * alone)
        best: tuple[bytes, str] | None = None

        def consider(record: bytes | None, cand: str) -> None:
            nonlocal best
            if record is not None and len(record) < limit and (best is None or len(record) < len(best[0])):
                best = (record, cand)

        ranked = [c for c in self.index.candidates(keys, limit=_CANDIDATES) if c != related]
        found = [(cand, self._content(cand)) for cand in ranked]
        bases = [(cand, data) for cand, data in found if data is not None]  # None: collected since indexed
        parent = (related, self._content(related)) if related else None
        if program is not None and parent and parent[1] is not None:
            consider(delta.encode_map(content, parent[0], parent[1], program, self.map_level), parent[0])
        for cand, base in [*bases, *([parent] if parent and parent[1] is not None else [])]:
            if _sub_may_fit(content, base, limit):  # type: ignore[arg-type]
                consider(delta.encode(content, cand, base, LEVEL, dictionary=False), cand)  # type: ignore[arg-type]
        for cand, base in bases[:_DICT_CANDIDATES] if self.dictionary and (best is None or len(best[0]) > limit // 2) else ():
            consider(delta.encode(content, cand, base, LEVEL), cand)
        exact_map = program is not None and program.on_codes and best is not None  # a ReLU: MAP is its model
        if parent and parent[1] is not None and not exact_map and (best is None or len(best[0]) > limit // 2):
            consider(delta.encode_fit(content, parent[0], parent[1], LEVEL), parent[0])
        if best is None:
            return None
        record, base_id = best
        did = hashlib.sha256(record).hexdigest()
        packed = compress(record, 1)  # already compressed: the object store's frame only wraps it
        new = self._put(did, packed) if not self._known(did) else False
        self.index.alias(oid, did, base_id)
        self._remember(did, content)  # a later stage may be kept against this one
        return Stored(did, self._size(did) if not new else len(packed), new, delta=(base_id, oid),
                      chain=self.index.chain(base_id))

    def _related_base(self, related: Future[Stored] | None) -> str | None:
        """The object to offer as base for a chunk computed from `related`: the related chunk itself, or,
        when its chain of deltas is already as deep as allowed, the nearest base down its chain that still
        leaves room (the nearest is the likeliest to hold what the related chunk holds)."""
        if related is None or self.index is None:
            return None
        found = related.result()
        if found.approx:
            return None
        chain = self.index.chain(found.oid)
        for oid in [found.oid, *(base for base, _content in chain.values())]:
            if len(self.index.chain(oid)) < MAX_DEPTH:
                return oid
        return None  # unreachable: the chain ends at a full chunk

    def _within_tolerance(self, values: np.ndarray, keys: list[int]) -> str | None:
        assert self.index is not None
        for cand in self.index.candidates(keys, limit=8):  # each is checked on its values: try several
            content = self._content(cand)
            if content is None:  # collected since the index was built
                continue
            other = decode_chunk(content)
            if other.shape == values.shape and float(np.max(np.abs(other - values), initial=0.0)) <= self.tolerance:
                return cand
        return None

    def _known(self, oid: str) -> bool:
        """Stored already (by this sink or before; an old object is touched so gc keeps it)."""
        with self._session.lock:
            if oid in self._session.written:
                return True
        if self.objects.exists(oid):
            self.objects.touch(oid)
            return True
        return False

    def _put(self, oid: str, packed: bytes) -> bool:
        """Write an object (its content hashes to `oid`) on the I/O threads; True when this sink added it."""
        with self._session.lock:
            new = oid not in self._session.written
            self._session.written.add(oid)
            self._sizes[oid] = len(packed)
            if self.write and new:
                self._session.pending.append(self._io.submit(self._staging.put_compressed, oid, packed))
        return new

    def _remember(self, oid: str, content: bytes) -> None:
        """Keep a stored chunk's content as a possible delta base (the most recent `RECENT_BYTES`)."""
        s = self._session
        with s.lock:
            s.recent[oid] = content
            s.recent_bytes += len(content)
            while s.recent_bytes > RECENT_BYTES and len(s.recent) > 1:
                s.recent_bytes -= len(s.recent.popitem(last=False)[1])

    def _content(self, oid: str) -> bytes | None:
        """A chunk's content (a delta's decoded): remembered, else read (verified) from the store; None if
        it is gone."""
        with self._session.lock:
            content = self._session.recent.get(oid)
        if content is not None:
            return content
        try:
            return load_content(self.objects, oid)
        except NotFoundError:
            return None

    def _size(self, oid: str) -> int:
        with self._session.lock:
            if oid in self._sizes:
                return self._sizes[oid]
        return int(self.objects.fs.size(self.objects.path(oid)))


class LayerWriter:
    """One layer's rows in, encoded chunks out; `finish` returns the manifest and byte counts.

    `parent` is the writer of the layer computed just before this one (its input, for a pipeline stage):
    each chunk offers the parent's chunk of the same block as a delta base, when that was submitted first
    (so a chunk never waits on one queued behind it). `program` computes this layer from the parent's values
    (`stagemaps`): a chunk holding every column of the layer is then kept as what the program mispredicts,
    when its parent's chunk holds every column of the input; with an element-wise program (a network's
    ReLU) every chunk is, against the parent's chunk of the same columns, when both have one layout."""

    def __init__(self, sink: ChunkSink, codec: Codec, n_rows: int, *, block_rows: int, chunk_bytes: int,
                 parent: LayerWriter | None = None, program: StageMap | None = None) -> None:
        self.sink, self.codec, self.n_rows, self.parent = sink, codec, n_rows, parent
        self.program = program
        self.block_rows, self.chunk_bytes = block_rows, chunk_bytes
        self.layout: Layout | None = None
        self.row_shape: tuple[int, ...] | None = None
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._futures: list[list[Future[Stored]]] = []

    def add(self, start: int, values: np.ndarray, row_shape: tuple[int, ...]) -> None:
        """Rows `start..start+len(values)` of the layer (flattened, float32), in order."""
        if self.layout is None:
            self.row_shape = tuple(row_shape)
            self.layout = plan_layout(self.n_rows, self.codec.out_shape(self.row_shape),
                                      block_rows=self.block_rows, chunk_bytes=self.chunk_bytes)
        self._buf.append(self.codec.transform(values, self.row_shape))  # type: ignore[arg-type]
        self._buffered += len(values)
        while self._buffered >= self.block_rows or (self._buffered and start + len(values) >= self.n_rows):
            self._flush_block()

    def _flush_block(self) -> None:
        """Hand the next block's rows (views of the buffered batches) to the sink, one task per chunk: the
        copying into chunks happens on the sink's threads, not in the model's."""
        assert self.layout is not None
        parts: list[np.ndarray] = []
        need = min(self.block_rows, self._buffered)
        self._buffered -= need
        while need:
            head = self._buf[0]
            if len(head) <= need:
                parts.append(self._buf.pop(0))
            else:
                parts.append(head[:need])
                self._buf[0] = head[need:]
            need -= len(parts[-1])
        b = len(self._futures)
        above = self.parent._futures[b] if self.parent is not None and len(self.parent._futures) > b else []
        # a program over whole rows needs the parent's chunk to hold every column of the input, an
        # element-wise one (a ReLU) the parent's chunk of the same columns
        whole = len(above) == 1 and self.layout.n_chunks == 1
        aligned = self.parent is not None and self.parent.layout == self.layout and len(above) == self.layout.n_chunks
        program = self.program if self.program is not None and (whole or (aligned and self.program.elementwise)) else None
        self._futures.append([self.sink.submit(self.codec, parts, *self.layout.chunk(c),
                                               related=above[min(c, len(above) - 1)] if above else None,
                                               program=program)
                              for c in range(self.layout.n_chunks)])

    def finish(self) -> WriteResult:
        """Wait for every chunk to be encoded and written (durable and named unless the sink's staging is
        the caller's to publish), and build the manifest (not yet stored)."""
        assert self.layout is not None and self.row_shape is not None, "no rows were added"
        blocks = [[f.result() for f in block] for block in self._futures]
        self.sink.flush()
        ids, sizes = [], []
        sketches: dict[str, str] = {}
        deltas: dict[str, list[str]] = {}
        stored = new = reused = approx = 0
        for results in blocks:
            ids.append([r.oid for r in results])
            sizes.append([r.size for r in results])
            for r in results:
                stored += r.size
                new += r.size if r.new else 0
                reused += 0 if r.new else 1
                approx += int(r.approx)
                if r.delta is not None:
                    deltas[r.oid] = list(r.delta)
                    deltas.update((k, list(v)) for k, v in r.chain.items())
                elif r.keys is not None:
                    sketches[r.oid] = pack_keys(r.keys)
        manifest = {"format": FORMAT, "layout": self.layout.to_dict(), "codec": str(self.codec),
                    "input_shape": list(self.row_shape), "chunks": ids, "sizes": sizes}
        if sketches:
            manifest["sketches"] = sketches
        if deltas:
            manifest["deltas"] = deltas
        raw = self.n_rows * int(np.prod(self.row_shape)) * 4
        return WriteResult(manifest, raw, stored, new, sum(len(b) for b in ids), reused, approx, len(deltas))


_PROBE = 4096  # bytes of a difference sampled to judge whether a SUB delta can pay
_PROBE_MARGIN = 1.25  # zstd packs runs and repeats below the sample's order-0 entropy: only skip clear misses


def _sub_may_fit(content: bytes, base: bytes, limit: int) -> bool:
    """Whether a `SUB` delta of `content` against `base` may come under `limit` bytes, judged from the
    entropy of a sample of their difference. Near-identical chunks by the sketch are often not close
    byte for byte (two layers of a network with alike maps), and compressing each difference to find out
    took most of a network capture's de-duplication time."""
    if len(content) != len(base):
        return False
    step = max(1, len(content) // _PROBE)
    diff = np.frombuffer(content, np.uint8)[::step] - np.frombuffer(base, np.uint8)[::step]
    counts = np.bincount(diff, minlength=256)
    p = counts[counts > 0] / len(diff)
    bits = float(-(p * np.log2(p)).sum())
    return bits / 8 * len(content) <= _PROBE_MARGIN * limit


_TILE = 64  # rows transposed at a time: a tile's columns stay in the CPU's caches


def _columns(parts: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
    """Columns [lo, hi) of the rows `parts` (stacked in order) as one cols × rows float32 array, the order
    the codecs encode. The columns are first gathered into contiguous rows, then transposed tile by tile:
    numpy's transposing copy of a slice of wide rows touches a new page for every value (and a chunk of 128
    or 1024 columns collides in the cache), which took ten times as long as this on a CNN's maps."""
    rows = np.concatenate([p[:, lo:hi] for p in parts]) if len(parts) > 1 else parts[0][:, lo:hi]
    cm = np.empty((hi - lo, len(rows)), dtype=np.float32)
    for start in range(0, len(rows), _TILE):
        cm[:, start : start + _TILE] = rows[start : start + _TILE].T
    return cm


def put_manifest(objects: ObjectStore | Staging, manifest: dict[str, Any]) -> str:
    """Store (or stage) a manifest as sorted JSON; returns its object id."""
    return objects.put_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def get_manifest(objects: ObjectStore, oid: str) -> dict[str, Any]:
    """A manifest object, verified; `CorruptObjectError` if it is not one."""
    doc = json.loads(objects.get_bytes(oid))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptObjectError(f"Object {oid} is not an intermediate manifest.")
    return doc


class _Decoded:
    """Contents of delta chunks decoded lately (the most recent `RECENT_BYTES`), by object id, each with the
    ids of the bases it was decoded from.

    A pipeline's stages are kept against one another, so reading a late stage decodes every stage before
    it, and the next query (another stage, the same one again) would decode them all over. An object id
    names one content forever (a delta's content is checked against its digest when decoded), so a decoded
    content stays right; `load_content` still reads and verifies the object asked for, and uses a decoded
    content only while the store still holds every base it came from."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._items: OrderedDict[str, tuple[bytes, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, objects: ObjectStore, oid: str) -> tuple[bytes, tuple[str, ...]] | None:
        with self._lock:
            found = self._items.get(oid)
            if found is not None:
                self._items.move_to_end(oid)
        if found is None or not all(objects.exists(held) for held in (oid, *found[1])):
            return None
        return found

    def put(self, oid: str, content: bytes, bases: tuple[str, ...]) -> None:
        with self._lock:
            if oid not in self._items:
                self._items[oid] = (content, bases)
                self.size += len(content)
            while self.size > self.limit and len(self._items) > 1:
                self.size -= len(self._items.popitem(last=False)[1][0])


_DECODED = _Decoded(RECENT_BYTES)


def load_content(objects: ObjectStore, oid: str) -> bytes:
    """The encoded content of a stored chunk, full or delta (its chain of bases decoded; the object asked
    for always read and verified by the object store, its bases too unless decoded lately and still held
    by the store: `_Decoded`)."""
    data = objects.get_bytes(oid)
    if not delta.is_delta(data):
        return data
    chain = [(oid, data)]
    content: bytes | None = None
    below: tuple[str, ...] = ()
    while content is None and delta.is_delta(chain[-1][1]):
        if len(chain) > _RESOLVE_LIMIT:
            raise CorruptObjectError(f"Intermediate chunk {oid} has a chain of deltas too long to be one of ours.")
        base = delta.base_of(chain[-1][1])
        hit = _DECODED.get(objects, base)
        if hit is not None:
            content, below = hit[0], (base, *hit[1])
        else:
            chain.append((base, objects.get_bytes(base)))
    if content is None:
        below = (chain[-1][0],)
        content = chain.pop()[1]
    while chain:
        done, record = chain.pop()
        content = delta.decode(record, content)
        _DECODED.put(done, content, below)
        below = (done, *below)
    return content


def load_chunk(objects: ObjectStore, oid: str) -> np.ndarray:
    """The rows × cols values of a stored chunk, full or delta (every object verified)."""
    return decode_chunk(load_content(objects, oid))


def read(objects: ObjectStore, manifest: dict[str, Any], rows: np.ndarray | None,
         cols: np.ndarray | None, *, workers: int = 2, pool: Executor | None = None, order: str = "C") -> np.ndarray:
    """The selected rows × columns (None: all), decoding only the chunks they touch, `workers` at a time
    (on `pool` when given: a query engine keeps one rather than start threads for every read). `order="F"`
    lays the answer out column by column, as chunks decode: a query over whole columns (CKA's products)
    then gets it without a transposing copy of every chunk."""
    layout = Layout.from_dict(manifest["layout"])
    out = np.empty((layout.n_rows if rows is None else len(rows), layout.n_cols if cols is None else len(cols)),
                   dtype=np.float32, order=order)  # type: ignore[call-overload]

    def fill(b: int, c: int) -> None:  # each (block, chunk) writes its own cells of `out`
        r0, r1 = layout.block(b)
        c0, c1 = layout.chunk(c)
        values = load_chunk(objects, manifest["chunks"][b][c])
        if values.shape != (r1 - r0, c1 - c0):
            raise CorruptObjectError("An intermediate chunk does not have the shape its manifest promises.")
        out_rows, local_rows = _part(rows, r0, r1)
        out_cols, local_cols = _part(cols, c0, c1)
        if isinstance(out_rows, slice) or isinstance(out_cols, slice):
            out[out_rows, out_cols] = values[local_rows][:, local_cols]
        else:
            out[np.ix_(out_rows, out_cols)] = values[np.ix_(local_rows, local_cols)]

    pairs = touched(layout, rows, cols)
    if workers < 2 or len(pairs) < 2:
        for b, c in pairs:
            fill(b, c)
        return out
    if pool is not None:
        for f in [pool.submit(fill, b, c) for b, c in pairs]:
            f.result()
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlkeep-read") as pool:
        for f in [pool.submit(fill, b, c) for b, c in pairs]:
            f.result()
    return out


def read_codes(objects: ObjectStore, manifest: dict[str, Any], cols: np.ndarray | None, *,
               pool: Executor | None = None) -> Codes | None:
    """Every row of the selected columns as the stored 8-bit uniform codes (each chunk read and verified
    as `read` does, not decoded), or None when the layer was stored under another codec."""
    if not codes.applies(parse_codec(manifest["codec"])):
        return None
    layout = Layout.from_dict(manifest["layout"])

    def load(b: int, c: int) -> codes.CodeChunk:
        r0, r1 = layout.block(b)
        c0, c1 = layout.chunk(c)
        lo, step, held = codes.parse(load_content(objects, manifest["chunks"][b][c]), r1 - r0, c1 - c0)
        out_cols, local = _part(cols, c0, c1)
        if isinstance(out_cols, slice):
            return codes.CodeChunk(r0, r1, np.arange(c0, c1), lo, step, held)
        return codes.CodeChunk(r0, r1, out_cols, lo[local], step[local], held[local])

    pairs = touched(layout, None, cols)
    found = ([load(b, c) for b, c in pairs] if pool is None or len(pairs) < 2
             else [f.result() for f in [pool.submit(load, b, c) for b, c in pairs]])
    return Codes(layout.n_rows, layout.n_cols if cols is None else len(cols), found)


def _part(sel: np.ndarray | None, lo: int, hi: int) -> tuple[Any, Any]:
    """(positions in the answer, positions in the chunk) of the selected ids in [lo, hi)."""
    if sel is None:
        return slice(lo, hi), slice(None)
    where = np.flatnonzero((sel >= lo) & (sel < hi))
    return where, sel[where] - lo


def used_objects(objects: ObjectStore, manifest: dict[str, Any]) -> dict[str, int]:
    """Every object reading the intermediate needs, with its stored size: its chunks and the bases of its
    deltas (wherever they were first written)."""
    sizes: dict[str, int] = {}
    for ids, row in zip(manifest["chunks"], manifest["sizes"]):
        sizes.update(zip(ids, row))
    for base, _content in dict(manifest.get("deltas") or {}).values():
        if base not in sizes:
            sizes[base] = int(objects.fs.size(objects.path(base)))
    return sizes


def chunks_bytes(manifest: dict[str, Any], rows: np.ndarray | None, cols: np.ndarray | None) -> tuple[int, int]:
    """(number of chunks, compressed bytes) a selection reads."""
    pairs = touched(Layout.from_dict(manifest["layout"]), rows, cols)
    return len(pairs), sum(manifest["sizes"][b][c] for b, c in pairs)
