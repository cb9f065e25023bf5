"""`Intermediates`: capture, store, plan and query the outputs of model layers (`store.intermediates`).

Each method is one verb over the modules of this package: `capture`
(capture + codecs + layout + storage), `get` and the diagnostic queries
(queries, reading or recomputing as the cost model says), `plan`,
`materialize` and `drop` (costmodel). Queries accept an `Intermediate`, its
id, a unique id prefix or its name.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, overload

import numpy as np

from mlkeep.errors import DatasetUnavailableError, InvalidInputError, RecomputeError
from mlkeep.ids import new_id, now_ms
from mlkeep.intermediates import capture as cap
from mlkeep.intermediates import costmodel, gram, labels, queries, records, recompute, stagemaps, storage
from mlkeep.intermediates.codecs import Codec, parse_codec
from mlkeep.intermediates.codes import Codes
from mlkeep.intermediates.compute import blas_threads
from mlkeep.intermediates.costmodel import Costs, Decision
from mlkeep.intermediates.dedup import SimilarIndex
from mlkeep.intermediates.entities import STORED, VIRTUAL, Intermediate
from mlkeep.intermediates.layout import BLOCK_ROWS, CHUNK_BYTES, Layout, select_cols, select_rows
from mlkeep.metadata import Database
from mlkeep.objects import ObjectStore
from mlkeep.objects.store import Staging as ObjectStaging
from mlkeep.tensors import TensorStore

SOURCES = ("auto", "read", "rerun")
DEFAULT_THRESHOLD = 1.0  # seconds saved per GB stored
_MANIFESTS = 256  # manifests a query engine keeps parsed


class Intermediates:
    """Model intermediates in one store: `threshold` is the γ (seconds saved per GB) above which to store."""

    def __init__(self, db: Database, objects: ObjectStore, tensors: TensorStore, *,
                 threshold: float = DEFAULT_THRESHOLD, block_rows: int = BLOCK_ROWS, chunk_bytes: int = CHUNK_BYTES,
                 workers: int = 2) -> None:
        self.db, self.objects, self.tensors = db, objects, tensors
        self.threshold, self.block_rows, self.chunk_bytes, self.workers = threshold, block_rows, chunk_bytes, workers
        self.last_source: str | None = None  # "read" or "rerun": how the latest query was answered
        self._similar: SimilarIndex | None = None  # built from the store's manifests on first use
        self._targets: dict[str, Any] = {}  # dataset id -> its targets, for group_by="targets"
        self._reader: ThreadPoolExecutor | None = None  # decodes chunks for queries; started on first use
        self._manifests: dict[str, dict[str, Any]] = {}  # manifest id -> manifest, the latest `_MANIFESTS`

    # ------------------------------------------------------------------ capture
    def layers(self, model: Any) -> list[str]:
        """The layers (leaf modules) or stages `layers="all"` captures."""
        return cap.layer_names(model)

    def capture(self, model: Any, dataset: Any, layers: str | Sequence[str] = "all",
                codec: str | Codec | Mapping[str, str | Codec] = "kbit", name: str | None = None, *,
                targets: Any = None, repo: str | None = None, branch: str = "main", architecture: Any = None,
                batch_size: int = 256, progress: cap.Progress | None = None, store: bool = True,
                dedup: str = "similar", tolerance: float | None = None) -> dict[str, Intermediate]:
        """Run a model over a dataset and keep the output of each layer; returns {layer: Intermediate}.

        `model` is a PyTorch module or scikit-learn estimator (committed to
        repository `repo`, default its class name, unless the branch head
        already holds it), a `Commit`, or `"repository@ref"`. `dataset` is a
        logged Dataset, its id, or array-like data (logged, with `targets`).
        `codec` is one spec for every layer or {layer: spec} (`"*"` for the
        rest). With `store=False` nothing but the records is written: each
        intermediate is recomputed when queried. Identical chunks are always
        stored once; `dedup="similar"` (the default, lossless) also stores a
        chunk near-identical to a stored one as a delta against it,
        `dedup="approx"` reuses a stored chunk whose values are all within
        `tolerance` instead (lossy), `"exact"` does neither.

        Raises `LayerNotFoundError` (listing the layers), `CodecMismatchError`,
        `InvalidInputError`.
        """
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1.")
        if dedup not in storage.DEDUP or (dedup == "approx" and not (tolerance and tolerance > 0)):
            raise InvalidInputError("dedup is 'exact', 'similar', or 'approx' with a tolerance > 0.")
        ds = self._dataset(dataset, targets)
        repository, commit, skeleton, live = self._version(model, ds.id, repo, branch, architecture)
        X, y, t_data = recompute.load_inputs(self.db, self.objects, ds.id)
        runnable, t_load = (live, 0.0) if live is not None else recompute.load_model(
            repository, commit, self.objects, skeleton, architecture)
        recomputable = True
        if live is not None:  # measure what a recompute will pay, and prove the version rebuilds
            try:
                t_load = recompute.load_model(repository, commit, self.objects, skeleton)[1]
            except RecomputeError:
                recomputable = False  # e.g. a module class defined inside a function: only reads
        names = cap.resolve_layers(runnable, layers)
        codecs = self._codecs(codec, names)
        n = cap.n_rows(X)
        # A warm-up on two rows gives the shapes, to check the codecs before any work, and the outputs that
        # tell which layers are an element-wise function of the one before (a ReLU of its convolution).
        warm: dict[str, np.ndarray] = {}

        def keep(layer: str, _start: int, values: np.ndarray) -> None:
            warm.setdefault(layer, values)

        shapes = cap.run(runnable, cap.take_rows(X, slice(0, 2)), names, keep, batch_size=2).shapes
        for layer in names:
            codecs[layer].out_shape(shapes[layer])  # CodecMismatchError before any work
        # A pipeline stage's chunks may be kept as deltas against the stage before (its input). Not a
        # network's layers: there, trying that costs more capture time than the bytes it saves are worth.
        chained = cap.framework(runnable) == "sklearn"
        activations = {} if chained else stagemaps.for_network(warm)  # a network's ReLU: kept as a MAP of its input
        staging = self.objects.staging()  # every chunk and manifest of the capture made durable at once
        sink = storage.ChunkSink(self.objects, write=store, workers=self.workers, dedup=dedup,
                                 index=self._index() if dedup != "exact" else None, tolerance=tolerance or 0.0,
                                 dictionary=chained, map_level=storage.MAP_LEVEL if chained else storage.LEVEL,
                                 staging=staging)
        writers: dict[str, storage.LayerWriter] = {}
        for layer in names:
            before, program = activations.get(layer, (None, None))
            if chained:
                before, program = (names[len(writers) - 1] if writers else None), stagemaps.for_layer(runnable, layer)
            writers[layer] = storage.LayerWriter(
                sink, codecs[layer], n, block_rows=self.block_rows, chunk_bytes=self.chunk_bytes,
                parent=writers.get(before) if before is not None else None, program=program)

        def part(rows: slice) -> cap.RunTimes:
            def emit(layer: str, start: int, values: np.ndarray) -> None:
                writers[layer].add(rows.start + start, values, shapes[layer])

            def step(done: int, _total: int) -> None:
                if progress is not None:
                    progress(rows.start + done, n)

            return cap.run(runnable, cap.take_rows(X, rows), names, emit, batch_size=batch_size, progress=step)

        # The first rows' pass is the timed one (Σ t_fwd): it only fills the writers' first block, so no
        # encoding thread competes with it yet.
        sample = min(n, 2 * batch_size, self.block_rows)
        try:
            probe = part(slice(0, sample))
            if sample < n:
                part(slice(sample, n))
            results = {layer: w.finish() for layer, w in writers.items()}
            capture_id, prefix = new_id(), name or f"{repository.name}@{commit.id[:8]}"
            label_oid = labels.put(self.objects, y) if store else None  # per-class queries read these
            measured = records.read_rates(self.db)  # the store's throughput, as queries measured it
            items = [self._record(capture_id, f"{prefix}:{layer}", layer, repository.name, commit.id, ds.id,
                                  codecs[layer], results[layer], probe, sample, t_load, t_data, n, batch_size,
                                  skeleton, staging if store else None, cap.framework(runnable), recomputable,
                                  costmodel.read_estimate(measured, str(codecs[layer])), label_oid) for layer in names]
            staging.publish()  # the chunks, then the manifests naming them: durable before any record names them
        finally:
            sink.close()
            staging.discard()
        records.insert(self.db, items)
        return {i.layer: i for i in items}

    # ------------------------------------------------------------------ records
    def info(self, intermediate: Intermediate | str) -> Intermediate:
        """The record of an intermediate (by entity, id, id prefix or name); `NotFoundError` if none."""
        return records.get(self.db, intermediate)

    def list(self, *, capture_id: str | None = None, commit_id: str | None = None, layer: str | None = None,
             dataset_id: str | None = None, repository: str | None = None) -> list[Intermediate]:
        """Intermediates matching every given filter, oldest first."""
        return records.list_(self.db, capture_id=capture_id, commit_id=commit_id, layer=layer,
                             dataset_id=dataset_id, repository=repository)

    # ------------------------------------------------------------------ queries
    def get(self, intermediate: Intermediate | str, rows: Any = None, columns: Any = None, *,
            source: str = "auto") -> np.ndarray:
        """Values of the selected rows (row ids of the dataset) and columns, rows × columns float32.

        Read from storage or recomputed from the model version, whichever the
        cost model says is faster (`source` forces one). Raises
        `RowsOutOfRangeError`, `DatasetUnavailableError` when a needed
        recomputation's dataset is gone.
        """
        inter = records.get(self.db, intermediate)
        layout = _layout(inter)
        return self._values(inter, select_rows(layout, rows), select_cols(layout, columns), source)

    def topk(self, intermediate: Intermediate | str, neuron: int, k: int = 10, *, largest: bool = True,
             source: str = "auto") -> Any:
        """The `k` examples that activate column `neuron` most: DataFrame (row, value), highest first."""
        import pandas as pd

        inter = records.get(self.db, intermediate)
        col = self._values(inter, None, select_cols(_layout(inter), [neuron]), source)[:, 0]
        rows = queries.topk(col, k, largest=largest)
        return pd.DataFrame({"row": rows, "value": col[rows]})

    def knn(self, intermediate: Intermediate | str, row: int, k: int = 10, *, metric: str = "euclidean",
            source: str = "auto") -> Any:
        """The `k` examples nearest example `row` in this layer's space: DataFrame (row, distance)."""
        import pandas as pd

        inter = records.get(self.db, intermediate)
        select_rows(_layout(inter), [row])
        values = self._values(inter, None, None, source)
        # Euclidean distances take no matrix product; finding BLAS to limit its threads would cost more
        with blas_threads() if metric == "cosine" else nullcontext():
            rows, dist = queries.knn(values, values[row], k, metric=metric, exclude=int(row))
        return pd.DataFrame({"row": rows, "distance": dist})

    def stats(self, intermediate: Intermediate | str, group_by: Any = "targets", columns: Any = None, *,
              source: str = "auto") -> Any:
        """Per group (default: the dataset's targets) and column: count, mean, std, sparsity (DataFrame)."""
        inter = records.get(self.db, intermediate)
        groups = self._groups(inter, group_by)
        cols = select_cols(_layout(inter), columns)
        frame = queries.stats(self._values(inter, None, cols, source), groups)
        if cols is not None:
            frame["column"] = cols[frame["column"].to_numpy()]
        return frame

    def col_diff(self, a: Intermediate | str, b: Intermediate | str, columns: Any = None, *,
                 source: str = "auto") -> np.ndarray:
        """Per column, mean |a − b| between two intermediates of the same rows and columns (e.g. two versions)."""
        ia, ib = self._pair(a, b)
        cols = select_cols(_layout(ia), columns)
        return queries.col_diff(self._values(ia, None, cols, source, paired=True),
                                self._values(ib, None, cols, source, paired=True))

    def row_diff(self, a: Intermediate | str, b: Intermediate | str, rows: Any = None, *,
                 source: str = "auto") -> np.ndarray:
        """Per row, the Euclidean distance between the two intermediates' representations of it."""
        ia, ib = self._pair(a, b)
        sel = select_rows(_layout(ia), rows)
        return queries.row_diff(self._values(ia, sel, None, source, paired=True),
                                self._values(ib, sel, None, source, paired=True))

    def corr(self, intermediate: Intermediate | str, columns: Any = None, *, source: str = "auto") -> np.ndarray:
        """Pearson correlation matrix between the selected columns (neurons)."""
        inter = records.get(self.db, intermediate)
        values = self._values(inter, None, select_cols(_layout(inter), columns), source)
        with blas_threads():
            return queries.corr(values)

    def similarity(self, a: Intermediate | str, b: Intermediate | str, method: str = "cka", *,
                   rows: Any = None, source: str = "auto") -> float:
        """How alike two representations of the same rows are: linear CKA or SVCCA (0..1)."""
        if method not in ("cka", "svcca"):
            raise InvalidInputError(f"Unknown similarity {method!r}; use 'cka' or 'svcca'.")
        ia, ib = records.get(self.db, a), records.get(self.db, b)
        if ia.n_rows != ib.n_rows:
            raise InvalidInputError(f"Similarity needs the same rows: {ia.n_rows} vs {ib.n_rows}.")
        sel = select_rows(_layout(ia), rows)
        # a whole layer stored as 8-bit codes may be taken as its codes (CKA's cross term runs on them)
        codes = method == "cka" and sel is None
        va = self._values(ia, sel, None, source, order="F", codes=codes, paired=True)
        read_a = self.last_source == "read"
        vb = va if ib.id == ia.id else self._values(ib, sel, None, source, order="F", codes=codes,  # read once
                                                      paired=True)
        read_b = self.last_source == "read"
        with blas_threads():
            if method == "svcca":
                return queries.svcca(va, vb)
            # a self term kept for the stored values applies to a whole-layer read of them
            known = [gram.find(self.db, i) if whole else None for i, whole in ((ia, read_a and sel is None),
                                                                       (ib, read_b and sel is None))]
            # va and vb were read (or recomputed) for this answer alone: centred in place
            value, *terms = queries.cka_and_self_terms(va, vb, (known[0], known[1]), overwrite=True)
        for inter, was_read, had, term in ((ia, read_a, known[0], terms[0]), (ib, read_b, known[1], terms[1])):
            if was_read and sel is None and had is None:
                gram.keep(self.db, inter, term)
        return value

    # ------------------------------------------------------------------ cost model
    def plan(self, threshold: float | None = None, *, apply: bool = False,
             intermediates: Sequence[Intermediate | str] | None = None) -> builtins.list[Decision]:
        """Each intermediate's figures and decision under `threshold` (default `self.threshold`), for every
        intermediate of the store or those given.

        With `apply=True`, intermediates worth storing are materialized and the
        others dropped (their chunks stay until garbage collection).
        """
        limit = self.threshold if threshold is None else threshold
        out = []
        every = self.list()
        chosen = every if intermediates is None else [records.get(self.db, i) for i in intermediates]
        charged = costmodel.shares({i.id: storage.used_objects(self.objects, storage.get_manifest(self.objects, i.manifest))
                                    for i in every if i.stored and i.manifest})
        for inter in chosen:
            decision = costmodel.decide(inter, records.costs_of(inter), limit, charged.get(inter.id))
            if apply and decision.action == "materialize":
                self.materialize(inter)
            elif apply and decision.action == "drop":
                self.drop(inter)
            out.append(decision)
        return out

    def materialize(self, intermediate: Intermediate | str) -> Intermediate:
        """Recompute (if needed) and store an intermediate; returns the updated record."""
        inter = records.get(self.db, intermediate)
        if inter.stored:
            return inter
        raw, _ = self._rerun(inter, None, pooled=False)
        self._store(inter, raw)
        return records.get(self.db, inter.id)

    def drop(self, intermediate: Intermediate | str) -> Intermediate:
        """Stop using the stored copy: queries recompute it. Chunks are left for garbage collection."""
        inter = records.get(self.db, intermediate)
        records.set_storage(self.db, inter, status=VIRTUAL, manifest=None)
        return records.get(self.db, inter.id)

    def delete(self, intermediate: Intermediate | str) -> None:
        """Forget an intermediate: its record and lineage go now, its chunks at the next `gc` unless
        another intermediate uses them too."""
        records.delete(self.db, records.get(self.db, intermediate))

    # ------------------------------------------------------------------ internals
    @overload
    def _values(self, inter: Intermediate, rows: np.ndarray | None, cols: np.ndarray | None, source: str, *,
                order: str = "C", codes: Literal[False] = False, paired: bool = False) -> np.ndarray: ...

    @overload
    def _values(self, inter: Intermediate, rows: np.ndarray | None, cols: np.ndarray | None, source: str, *,
                order: str = "C", codes: bool, paired: bool = False) -> np.ndarray | Codes: ...

    def _values(self, inter: Intermediate, rows: np.ndarray | None, cols: np.ndarray | None,
                source: str, *, order: str = "C", codes: bool = False, paired: bool = False) -> np.ndarray | Codes:
        """The selected values, read (laid out in `order` when read) or recomputed as the cost model says,
        the query counted in the record. With `codes`, every row read from a layer stored as 8-bit codes
        comes back as its `Codes`, not decoded (the read rate stays that of decoding reads).

        With `source="auto"` a query reads or re-runs, whichever the cost model finds faster: re-running gives
        the exact values, of which a lossy codec's stored ones are an approximation. A `paired` query (one
        side of a comparison) reads stored lossy values whatever the cost, so both sides are alike: a frozen
        layer compares equal to itself, never a fresh pass against its quantized copy."""
        if source not in SOURCES:
            raise InvalidInputError(f"source is one of {', '.join(SOURCES)}, not {source!r}.")
        recorded = costs = records.costs_of(inter)
        n = inter.n_rows if rows is None else len(rows)
        manifest = self._manifest(inter.manifest) if inter.stored and inter.manifest else None
        nbytes = storage.chunks_bytes(manifest, rows, cols)[1] if manifest else 0
        choice = source if source != "auto" else costmodel.source(costs, manifest is not None, n, nbytes)
        lossy = manifest is not None and parse_codec(manifest["codec"]).value != "exact"
        if source == "auto" and manifest is not None and (
                not inter.document.get("recomputable", True) or paired and lossy):
            choice = "read"
        if choice == "read" and manifest is None:
            raise InvalidInputError(f"Intermediate {inter.name} is not stored; query it with source='rerun' or 'auto'.")
        if choice == "rerun":
            try:
                values, costs = self._rerun(inter, rows, costs=costs)
                values = values if cols is None else values[:, cols]
            except DatasetUnavailableError:
                if manifest is None or source == "rerun":
                    raise
                choice = "read"
        held = storage.read_codes(self.objects, manifest, cols, pool=self._read_pool()) if (  # type: ignore[arg-type]
            choice == "read" and codes and rows is None) else None
        if choice == "read" and held is None:
            t0 = time.perf_counter()
            values = storage.read(self.objects, manifest, rows, cols, workers=self.workers,  # type: ignore[arg-type]
                                  pool=self._read_pool(), order=order)
            costs = costs.measured_read(time.perf_counter() - t0, nbytes)
        self.last_source = choice
        records.count_query(self.db, inter, costs if costmodel.moved(recorded, costs) else None)
        if choice == "rerun" and manifest is None and rows is None and cols is None:
            fresh = records.get(self.db, inter.id)
            if costmodel.decide(fresh, records.costs_of(fresh), self.threshold).action == "materialize":
                self._store(fresh, values, pooled=True)
        return values if held is None else held

    def _rerun(self, inter: Intermediate, rows: np.ndarray | None, *, costs: Costs | None = None,
               pooled: bool = True) -> tuple[np.ndarray, Costs]:
        """The intermediate recomputed from its model version and dataset, and the costs updated with what
        this took: the forward share is the whole wall time but loading, as a query pays it."""
        t0 = time.perf_counter()
        repo, commit = recompute.resolve_version(self.db, self.objects, self.tensors,
                                                 f"{inter.repository}@{inter.commit_id}")
        X, _, t_data = recompute.load_inputs(self.db, self.objects, inter.dataset_id)
        model, t_load = recompute.load_model(repo, commit, self.objects, inter.document.get("skeleton"))
        X = cap.take_rows(X, rows)
        n = cap.n_rows(X)
        in_shape = tuple(inter.document["input_shape"])
        out = np.empty((n, int(np.prod(in_shape))), dtype=np.float32)

        def emit(_layer: str, start: int, values: np.ndarray) -> None:
            out[start : start + len(values)] = values

        cap.run(model, X, [inter.layer], emit, batch_size=inter.document.get("batch_size", 256),
                stop_after=inter.layer)
        codec = parse_codec(inter.codec)
        values = codec.transform(out, in_shape) if pooled else out
        t_fwd = time.perf_counter() - t0 - t_load - t_data
        return values, (costs or records.costs_of(inter)).measured_rerun(t_load, t_data, t_fwd, n)

    def _store(self, inter: Intermediate, values: np.ndarray, *, pooled: bool = False) -> None:
        codec = parse_codec(inter.codec)
        if pooled:
            codec = Codec(codec.value, codec.bits, codec.bins, codec.threshold, None)
        shape = inter.row_shape if pooled else tuple(inter.document["input_shape"])
        sink = storage.ChunkSink(self.objects, workers=self.workers, dedup="similar", index=self._index())
        try:
            writer = storage.LayerWriter(sink, codec, inter.n_rows, block_rows=self.block_rows,
                                         chunk_bytes=self.chunk_bytes)
            writer.add(0, values, shape)
            result = writer.finish()
        finally:
            sink.close()
        result.manifest.update(codec=inter.codec, input_shape=inter.document["input_shape"])
        oid = storage.put_manifest(self.objects, result.manifest)
        records.set_storage(self.db, inter, status=STORED, manifest=oid, stored_bytes=result.stored_bytes,
                            new_bytes=result.new_bytes)
        costs = records.costs_of(inter)
        records.set_costs(self.db, inter, Costs.from_dict(dict(costs.to_dict(), stored_bytes=result.stored_bytes)))

    def _dataset(self, dataset: Any, targets: Any) -> Any:
        from mlkeep.tracking import datasets
        from mlkeep.tracking.entities import Dataset

        if isinstance(dataset, Dataset):
            return dataset
        if isinstance(dataset, str):
            return datasets.get_dataset(self.db, dataset)
        return datasets.log_dataset(self.db, self.objects, dataset, targets=targets)

    def _version(self, model: Any, dataset_id: str, repo: str | None, branch: str,
                 architecture: Any) -> tuple[Any, Any, str | None, Any]:
        """(repository, commit, skeleton object id, live model or None)."""
        from mlkeep.versioning.commit import Commit
        from mlkeep.versioning.repository import Repository

        if isinstance(model, (str, Commit)):
            repository, commit = recompute.resolve_version(self.db, self.objects, self.tensors, model)
            live = None
            source = architecture
        else:
            cap.framework(model)
            repository = Repository(self.db, self.objects, self.tensors, repo or type(model).__name__)
            commit = recompute.commit_model(repository, model, branch, [dataset_id])
            live = source = model
        skeleton = None
        if commit.kind == "torch" and source is not None:
            blob = recompute.module_skeleton(source)
            skeleton = self.objects.put_bytes(blob) if blob is not None else None
        elif commit.kind == "torch":  # an earlier capture of this version may have left its structure
            known = [i.document.get("skeleton") for i in self.list(commit_id=commit.id)]
            skeleton = next((s for s in known if s), None)
        return repository, commit, skeleton, live

    def _codecs(self, codec: str | Codec | Mapping[str, str | Codec], names: Sequence[str]) -> dict[str, Codec]:
        if isinstance(codec, Mapping):
            unknown = set(codec) - set(names) - {"*"}
            if unknown:
                raise InvalidInputError(f"Codecs given for layers not captured: {', '.join(sorted(unknown))}.")
            default = codec.get("*", "kbit")
            return {n: parse_codec(codec.get(n, default)) for n in names}
        parsed = parse_codec(codec)
        return {n: parsed for n in names}

    def _index(self) -> SimilarIndex:
        """The LSH index of stored chunks, rebuilt from every stored manifest the first time."""
        if self._similar is None:
            index = SimilarIndex()
            for inter in self.list():
                if inter.manifest:
                    index.add_manifest(storage.get_manifest(self.objects, inter.manifest))
            self._similar = index
        return self._similar

    def _record(self, capture_id: str, name: str, layer: str, repository: str, commit_id: str, dataset_id: str,
                codec: Codec, result: storage.WriteResult, times: cap.RunTimes, timed_rows: int, t_load: float,
                t_data: float,
                n: int, batch_size: int, skeleton: str | None, staging: ObjectStaging | None, framework: str,
                recomputable: bool, read_estimate: tuple[float, float], label_oid: str | None = None) -> Intermediate:
        """The record of one captured layer; its manifest staged in `staging` (None: not stored). The read
        figures are `read_estimate` (seconds per stored byte, seconds to open) until a query measures them."""
        layout = Layout.from_dict(result.manifest["layout"])
        stored = staging is not None
        manifest = storage.put_manifest(staging, result.manifest) if staging is not None else None
        read_rate, t_open = read_estimate
        t_fwd = times.upto.get(layer, times.total) + times.taking.get(layer, 0.0)
        costs = Costs(t_model_load=t_load, t_data_load=t_data, t_fwd_row=t_fwd / max(timed_rows, 1),
                      read_rate=read_rate, t_open=t_open, stored_bytes=result.stored_bytes, n_rows=n)
        doc = {"costs": costs.to_dict(), "layout": layout.to_dict(), "input_shape": list(times.shapes[layer]),
               "batch_size": batch_size, "skeleton": skeleton, "chunks": result.chunks, "reused": result.reused,
               "approx_reused": result.approx_reused, "deltas": result.deltas, "recomputable": recomputable}
        if label_oid is not None:
            doc[labels.KEY] = label_oid
        return Intermediate(
            id=new_id(), capture_id=capture_id, name=name, layer=layer, repository=repository, commit_id=commit_id,
            dataset_id=dataset_id, codec=str(codec), status=STORED if stored else VIRTUAL, n_rows=n,
            n_cols=layout.n_cols, row_shape=layout.row_shape, raw_bytes=result.raw_bytes,
            stored_bytes=result.stored_bytes, new_bytes=result.new_bytes if stored else 0, manifest=manifest,
            n_queries=0, t_rerun=costs.t_rerun(), t_read=costs.t_read(), creation_time=now_ms(),
            framework=framework, document=doc,
        )

    def _manifest(self, oid: str) -> dict[str, Any]:
        """A manifest, read (verified) once per engine: an object never changes under its id, and a query on
        a narrow layer otherwise spends as long reading its manifest as its values."""
        found = self._manifests.get(oid)
        if found is None:
            found = storage.get_manifest(self.objects, oid)
            if len(self._manifests) >= _MANIFESTS:
                self._manifests.pop(next(iter(self._manifests)))  # the oldest
            self._manifests[oid] = found
        return found

    def _read_pool(self) -> ThreadPoolExecutor:
        """The threads that decode chunks for queries, kept: starting threads for every query costs more
        than decoding a small layer."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=max(self.workers, 1), thread_name_prefix="mlkeep-query")
        return self._reader

    def _groups(self, inter: Intermediate, group_by: Any) -> np.ndarray | None:
        if group_by is None:
            return None
        if isinstance(group_by, str) and group_by == "targets":
            if inter.dataset_id not in self._targets:  # a logged dataset never changes
                self._targets[inter.dataset_id] = labels.load(self.db, self.objects, inter.document, inter.dataset_id)
            y = self._targets[inter.dataset_id]
            if y is None:
                raise InvalidInputError("The dataset has no targets to group by; pass group_by=<one label per row>.")
            return np.asarray(y)
        return np.asarray(group_by)

    def _pair(self, a: Intermediate | str, b: Intermediate | str) -> tuple[Intermediate, Intermediate]:
        ia, ib = records.get(self.db, a), records.get(self.db, b)
        if (ia.n_rows, ia.n_cols) != (ib.n_rows, ib.n_cols):
            raise InvalidInputError(
                f"{ia.name} and {ib.name} differ in shape ({ia.n_rows}×{ia.n_cols} vs {ib.n_rows}×{ib.n_cols}).")
        return ia, ib


def _layout(inter: Intermediate) -> Layout:
    return Layout.from_dict(inter.document["layout"])
