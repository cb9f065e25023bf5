"""Writing an intermediate's chunks and manifest, and reading a selection back.

`LayerWriter` takes one layer's rows as the model produces them, cuts each
full block of rows into column chunks, encodes, hashes and compresses each
chunk on a thread pool (zstd and SHA-256 release the GIL) and stores it
unless an object with the same content already exists: exact
de-duplication across layers, models and versions comes from content
addressing. The manifest (chunk ids and sizes per block, the layout, the
codec) is itself an object. `read` decodes only the chunks a selection
touches, each verified against its hash by the object store.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates.codecs import Codec, decode_chunk, encode_chunk
from mlkeep.intermediates.dedup import ApproxIndex
from mlkeep.intermediates.layout import Layout, plan_layout
from mlkeep.objects.store import ObjectStore
from mlkeep.tensors.blobs import compress

LEVEL = 3
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
    encode_seconds: float = 0.0


@dataclass
class _Session:
    """Objects written by this process, so concurrent writers count new bytes once."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    written: set[str] = field(default_factory=set)


class ChunkSink:
    """Encodes and stores chunks for several layers at once on one thread pool."""

    def __init__(self, objects: ObjectStore, *, write: bool = True, workers: int = 2,
                 approx: ApproxIndex | None = None) -> None:
        self.objects, self.write, self.approx = objects, write, approx
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlkeep-intermediates")
        self._session = _Session()
        self._sizes: dict[str, int] = {}

    def submit(self, codec: Codec, values: np.ndarray) -> Future[tuple[str, int, bool, bool]]:
        """Encode and store one chunk later; the future gives (id, compressed size, new, approximate reuse)."""
        return self._pool.submit(self._store, codec, values)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _store(self, codec: Codec, values: np.ndarray) -> tuple[str, int, bool, bool]:
        if self.approx is not None:
            found = self.approx.match(values)
            if found is not None:
                return found, self._size(found), False, True
        content = encode_chunk(codec, values)
        oid = hashlib.sha256(content).hexdigest()
        with self._session.lock:
            seen = oid in self._session.written
        if seen or self.objects.exists(oid):
            return oid, self._size(oid), False, False
        packed = compress(content, LEVEL)
        if self.write:
            self.objects._write(oid, packed)  # content hashes to oid: an ordinary verified object
        with self._session.lock:
            new = oid not in self._session.written
            self._session.written.add(oid)
            self._sizes[oid] = len(packed)
        if self.approx is not None:
            self.approx.add(oid, values)
        return oid, len(packed), new, False

    def _size(self, oid: str) -> int:
        with self._session.lock:
            if oid in self._sizes:
                return self._sizes[oid]
        return int(self.objects.fs.size(self.objects.path(oid)))


class LayerWriter:
    """One layer's rows in, encoded chunks out; `finish` returns the manifest and byte counts."""

    def __init__(self, sink: ChunkSink, codec: Codec, n_rows: int, *, block_rows: int, chunk_bytes: int) -> None:
        self.sink, self.codec, self.n_rows = sink, codec, n_rows
        self.block_rows, self.chunk_bytes = block_rows, chunk_bytes
        self.layout: Layout | None = None
        self.row_shape: tuple[int, ...] | None = None
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._next_block = 0
        self._futures: list[list[Future[tuple[str, int, bool, bool]]]] = []

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
        assert self.layout is not None
        rows = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        take = min(self.block_rows, len(rows))
        block, rest = rows[:take], rows[take:]
        self._buf = [rest] if len(rest) else []
        self._buffered = len(rest)
        futures = []
        for c in range(self.layout.n_chunks):
            lo, hi = self.layout.chunk(c)
            futures.append(self.sink.submit(self.codec, np.ascontiguousarray(block[:, lo:hi])))
        self._futures.append(futures)
        self._next_block += 1

    def finish(self) -> WriteResult:
        """Wait for every chunk and build the manifest (not yet stored)."""
        assert self.layout is not None and self.row_shape is not None, "no rows were added"
        ids, sizes = [], []
        stored = new = reused = approx = 0
        for block in self._futures:
            results = [f.result() for f in block]
            ids.append([r[0] for r in results])
            sizes.append([r[1] for r in results])
            for oid, size, is_new, is_approx in results:
                stored += size
                new += size if is_new else 0
                reused += 0 if is_new else 1
                approx += int(is_approx)
        manifest = {"format": FORMAT, "layout": self.layout.to_dict(), "codec": str(self.codec),
                    "input_shape": list(self.row_shape), "chunks": ids, "sizes": sizes}
        raw = self.n_rows * int(np.prod(self.row_shape)) * 4
        return WriteResult(manifest, raw, stored, new, sum(len(b) for b in ids), reused, approx)


def put_manifest(objects: ObjectStore, manifest: dict[str, Any]) -> str:
    """Store a manifest as sorted JSON; returns its object id."""
    return objects.put_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def get_manifest(objects: ObjectStore, oid: str) -> dict[str, Any]:
    """A manifest object, verified; `CorruptObjectError` if it is not one."""
    doc = json.loads(objects.get_bytes(oid))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptObjectError(f"Object {oid} is not an intermediate manifest.")
    return doc


def read(objects: ObjectStore, manifest: dict[str, Any], rows: np.ndarray | None,
         cols: np.ndarray | None) -> np.ndarray:
    """The selected rows × columns (None: all), decoding only the chunks they touch."""
    layout = Layout.from_dict(manifest["layout"])
    out = np.empty((layout.n_rows if rows is None else len(rows), layout.n_cols if cols is None else len(cols)),
                   dtype=np.float32)
    blocks = range(layout.n_blocks) if rows is None else np.unique(rows // layout.block_rows)
    chunks = range(layout.n_chunks) if cols is None else np.unique(cols // layout.chunk_cols)
    for b in blocks:
        r0, r1 = layout.block(int(b))
        if rows is None:
            out_rows: Any = slice(r0, r1)
            local_rows: Any = slice(None)
        else:
            out_rows = np.flatnonzero((rows >= r0) & (rows < r1))
            local_rows = rows[out_rows] - r0
        for c in chunks:
            c0, c1 = layout.chunk(int(c))
            values = decode_chunk(objects.get_bytes(manifest["chunks"][int(b)][int(c)]))
            if values.shape != (r1 - r0, c1 - c0):
                raise CorruptObjectError("An intermediate chunk does not have the shape its manifest promises.")
            if cols is None:
                out_cols: Any = slice(c0, c1)
                local_cols: Any = slice(None)
            else:
                out_cols = np.flatnonzero((cols >= c0) & (cols < c1))
                local_cols = cols[out_cols] - c0
            if isinstance(out_rows, slice) and isinstance(out_cols, slice):
                out[out_rows, out_cols] = values[local_rows, local_cols]
            elif isinstance(out_rows, slice):
                out[out_rows, out_cols] = values[:, local_cols]
            elif isinstance(out_cols, slice):
                out[out_rows, out_cols] = values[local_rows, :]
            else:
                out[np.ix_(out_rows, out_cols)] = values[np.ix_(local_rows, local_cols)]
    return out


def chunks_bytes(manifest: dict[str, Any], rows: np.ndarray | None, cols: np.ndarray | None) -> tuple[int, int]:
    """(number of chunks, compressed bytes) a selection reads."""
    layout = Layout.from_dict(manifest["layout"])
    blocks = range(layout.n_blocks) if rows is None else np.unique(rows // layout.block_rows)
    chunks = range(layout.n_chunks) if cols is None else np.unique(cols // layout.chunk_cols)
    sizes = manifest["sizes"]
    n = total = 0
    for b in blocks:
        for c in chunks:
            n += 1
            total += sizes[int(b)][int(c)]
    return n, total
