"""TensorStore: round trips, dedup, deltas, chain bounds, corruption, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlkeep.errors import CorruptObjectError, InvalidInputError, NotFoundError
from mlkeep.objects import ObjectStore
from mlkeep.tensors import RawTensor, StoragePolicy, TensorStore


def weights(seed: int = 0, n: int = 3000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "layer.weight": (rng.standard_normal((n, 4)) * 0.05).astype(np.float32),
        "layer.bias": np.zeros(4, dtype=np.float32),
        "steps": np.array(7, dtype=np.int64),
    }


def nudge(w: dict[str, np.ndarray], seed: int, scale: float = 1e-4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = dict(w)
    x = w["layer.weight"]
    out["layer.weight"] = (x + rng.standard_normal(x.shape).astype(np.float32) * scale).astype(np.float32)
    return out


def same(a: object, b: object) -> bool:
    if isinstance(a, RawTensor) and isinstance(b, RawTensor):
        return a.dtype == b.dtype and a.bits.shape == b.bits.shape and a.bits.tobytes() == b.bits.tobytes()
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_every_dtype_scalar_and_empty_round_trip(tensors: TensorStore) -> None:
    rng = np.random.default_rng(1)
    given_ = {
        "f32": rng.standard_normal((33, 70)).astype(np.float32),
        "f16": rng.standard_normal(5000).astype(np.float16),
        "f64": np.array([np.nan, -0.0, np.inf, 5e-324]),
        "i64": np.arange(-5, 2000, dtype=np.int64),
        "i32": np.arange(10, dtype=np.int32).reshape(2, 5),
        "u8": np.arange(256, dtype=np.uint8),
        "bool": rng.random(999) > 0.3,
        "scalar": np.array(3.5, dtype=np.float32),
        "np-scalar": np.int64(42),
        "empty": np.zeros((0, 384), dtype=np.float32),
        "bf16": RawTensor("bfloat16", rng.integers(0, 2**16, (17, 3), dtype=np.uint16)),
        "strided": np.arange(100.0)[::3],
    }
    tree = tensors.put_tree(given_)
    got = tensors.get_tree(tree)
    assert set(got) == set(given_)
    for name, value in given_.items():
        expected = value if isinstance(value, RawTensor) else np.asarray(value)
        assert same(expected, got[name]), name
    assert same(np.zeros((0, 384), dtype=np.float32), tensors.get_tensor(tree, "empty"))


@settings(max_examples=25, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.int32, np.uint8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=24),
    )
)
def test_any_array_round_trips(arr: np.ndarray) -> None:
    objects = ObjectStore.from_url(f"memory://prop-{uuid.uuid4().hex}")
    with TensorStore(objects, policy=StoragePolicy(chunk_bytes=256), workers=1) as ts:
        tree = ts.put_tree({"x": arr})
        assert same(arr, ts.get_tensor(tree, "x"))
        changed = arr.copy()
        if changed.size:
            changed.reshape(-1).view(np.uint8)[0] ^= 1
        child = ts.put_tree({"x": changed}, tree)
        assert same(changed, ts.get_tensor(child, "x"))


def test_identical_tensors_and_trees_are_stored_once(objects: ObjectStore, tensors: TensorStore) -> None:
    w = weights()
    first = tensors.put_tree(w)
    count = len(list(objects))
    assert tensors.put_tree(w) == first
    assert len(list(objects)) == count
    # the same tensor under two more names, and in another "model" with no parent: no new chunk objects
    chunks = {ref.obj for m in tensors.manifests(first).values() for ref in m.chunks}
    other = tensors.put_tree({"a": w["layer.weight"], "b": w["layer.weight"].copy()})
    new_chunks = {ref.obj for m in tensors.manifests(other).values() for ref in m.chunks}
    assert new_chunks <= chunks
    # equal tensors have equal manifests (one object), so the only new object is the tree itself
    assert len(list(objects)) == count + 1


def test_unchanged_tensors_are_reused_and_changed_chunks_become_deltas(objects: ObjectStore, tensors: TensorStore) -> None:
    w0 = weights()
    t0 = tensors.put_tree(w0)
    before = tensors.stats
    w1 = nudge(w0, 1)
    t1 = tensors.put_tree(w1, t0)
    after = tensors.stats
    info0, info1 = tensors.tree_info(t0), tensors.tree_info(t1)
    assert tensors.manifests(t1)["layer.bias"] == tensors.manifests(t0)["layer.bias"]
    assert info1.tensors["layer.weight"].encodings.keys() <= {"xor", "sub"}
    assert info1.tensors["layer.weight"].stored < 0.8 * info0.tensors["layer.weight"].stored
    assert after.chunks_reused - before.chunks_reused == 2  # bias and steps
    assert same(w1["layer.weight"], TensorStore(objects).get_tensor(t1, "layer.weight"))


def test_delta_chains_never_exceed_the_policy_depth(objects: ObjectStore) -> None:
    policy = StoragePolicy(chunk_bytes=4096, max_chain_depth=3, read_weight=0.0, max_read_amplification=100.0)
    ts = TensorStore(objects, policy=policy)
    w, tree = weights(), None
    versions = []
    for step in range(10):
        w = nudge(w, step, scale=1e-6)
        tree = ts.put_tree(w, tree)
        versions.append((tree, w))
    depths = [ts.tree_info(t).max_depth for t, _ in versions]
    assert max(depths) == 3
    assert all(d <= 3 for d in depths)
    reader = TensorStore(objects)  # cold cache: follows every chain from disk
    for t, expected in versions:
        assert same(expected["layer.weight"], reader.get_tensor(t, "layer.weight"))


def test_max_chain_depth_zero_stores_everything_full(tensors: TensorStore) -> None:
    t0 = tensors.put_tree(weights())
    t1 = tensors.put_tree(nudge(weights(), 1), t0, policy=StoragePolicy(chunk_bytes=4096, max_chain_depth=0))
    assert set(tensors.tree_info(t1).encodings) == {"full"}


def test_read_budget_forces_star_deltas_on_a_full_update(objects: ObjectStore) -> None:
    ts = TensorStore(objects, policy=StoragePolicy(chunk_bytes=4096, read_weight=0.0))
    w, tree = weights(), None
    for step in range(6):
        w = nudge(w, step)
        tree = ts.put_tree(w, tree)
        info = ts.tree_info(tree)
        weighted = sum(c.nbytes * (c.depth + 1) for m in ts.manifests(tree).values() for c in m.chunks)
        assert weighted <= 2.0 * info.nbytes


def test_a_flipped_byte_in_a_stored_object_raises(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    ts = TensorStore(objects, policy=StoragePolicy(chunk_bytes=4096))
    tree = ts.put_tree(weights())
    ref = ts.manifests(tree)["layer.weight"].chunks[1]
    path = Path(objects.path(ref.obj))
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    for reader in (TensorStore(objects), ts):  # cold, and with the writer's cache (bypassed by verify)
        with pytest.raises(CorruptObjectError):
            reader.verify(tree)
    with pytest.raises(CorruptObjectError):
        TensorStore(objects).get_tree(tree)
    with pytest.raises(CorruptObjectError):
        TensorStore(objects).get_tensor(tree, "layer.weight")
    assert same(weights()["layer.bias"], TensorStore(objects).get_tensor(tree, "layer.bias"))


def test_a_corrupt_delta_base_raises(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    ts = TensorStore(objects, policy=StoragePolicy(chunk_bytes=4096))
    t0 = ts.put_tree(weights())
    t1 = ts.put_tree(nudge(weights(), 1), t0)
    ref = ts.manifests(t1)["layer.weight"].chunks[0]
    assert ref.base is not None
    base_path = Path(objects.path(ref.base))
    os.chmod(base_path, 0o644)
    data = bytearray(base_path.read_bytes())
    data[-3] ^= 0x01
    base_path.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError):
        TensorStore(objects).get_tensor(t1, "layer.weight")


def test_a_tensor_keeps_its_parents_chunk_size(objects: ObjectStore) -> None:
    """Chunks line up with the parent's whatever the policy now says, so an unchanged tensor is reused and a
    changed one is stored as deltas against the chunks at the same places."""
    ts = TensorStore(objects, policy=StoragePolicy(chunk_bytes=4096))
    t0 = ts.put_tree(weights())
    t1 = TensorStore(objects, policy=StoragePolicy(chunk_bytes=8192)).put_tree(nudge(weights(), 1), t0)
    before, after = ts.manifests(t0), ts.manifests(t1)
    assert after["layer.weight"].chunk_bytes == before["layer.weight"].chunk_bytes == 4096
    assert after["layer.bias"] == before["layer.bias"]
    assert all(c.base for c in after["layer.weight"].chunks)
    fresh = TensorStore(objects, policy=StoragePolicy(chunk_bytes=8192)).put_tree({"other": weights()["layer.weight"]}, t0)
    assert ts.manifests(fresh)["other"].chunk_bytes == 8192
    assert same(nudge(weights(), 1)["layer.weight"], TensorStore(objects).get_tensor(t1, "layer.weight"))


def test_worker_threads_follow_the_environment_then_the_usable_cpus(monkeypatch: pytest.MonkeyPatch,
                                                                   objects: ObjectStore) -> None:
    from mlkeep.tensors.store import worker_threads

    monkeypatch.delenv("MLKEEP_TENSOR_THREADS", raising=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    assert worker_threads() == max(1, min(8, usable))
    monkeypatch.setenv("MLKEEP_TENSOR_THREADS", "3")
    assert worker_threads() == 3
    with TensorStore(objects) as ts:  # three threads decode what one wrote
        tree = ts.put_tree(weights())
        assert all(same(a, ts.get_tree(tree)[k]) for k, a in weights().items())
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MLKEEP_TENSOR_THREADS", bad)
        with pytest.raises(InvalidInputError):
            worker_threads()
    with pytest.raises(InvalidInputError):
        TensorStore(objects, workers=0)


def test_missing_things_and_bad_input(tensors: TensorStore) -> None:
    with pytest.raises(NotFoundError):
        tensors.get_tree("0" * 64)
    tree = tensors.put_tree(weights())
    with pytest.raises(NotFoundError):
        tensors.get_tensor(tree, "nope")
    with pytest.raises(NotFoundError):
        tensors.put_tree(weights(), parent_tree="1" * 64)
    with pytest.raises(InvalidInputError):
        tensors.get_tree("not-an-id")
    with pytest.raises(InvalidInputError):
        tensors.put_tree({"x": np.array(["a", "b"])})
    with pytest.raises(InvalidInputError):
        tensors.put_tree({"": np.zeros(3)})
    with pytest.raises(InvalidInputError):
        tensors.put_tree({"x": [1, 2, 3]})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        StoragePolicy(max_chain_depth=-1)


def test_concurrent_writers_of_the_same_tree(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    w0 = weights(n=20000)
    base = TensorStore(objects, policy=StoragePolicy(chunk_bytes=8192)).put_tree(w0)
    w1 = nudge(w0, 5)
    results: list[str] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            ts = TensorStore(objects, policy=StoragePolicy(chunk_bytes=8192), workers=2)
            results.append(ts.put_tree(w1, base))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert objects.temporary_files() == []
    assert TensorStore(objects).verify(results[0]).tensors == 3


def test_importing_the_tensor_store_does_not_import_torch() -> None:
    code = "import sys, mlkeep.tensors, mlkeep.tensors.pytorch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _format_1_tree(objects: ObjectStore, tensors: dict[str, np.ndarray], chunk_bytes: int) -> str:
    """A tree as the tensor store wrote it before BLAKE3 and per-plane compression: SHA-256 chunk ids,
    MKT1 chunk objects (raw planes after the header, compressed by the object store's frame), format-1
    manifests."""
    import hashlib

    from mlkeep.tensors import codecs
    from mlkeep.tensors.dtypes import as_bytes, plane_width
    from mlkeep.tensors.manifest import canonical_json

    manifests = {}
    for name, array in tensors.items():
        dtype, shape, data = as_bytes(array)
        width, chunks, ids = plane_width(dtype), [], []
        for a in range(0, len(data), chunk_bytes):
            raw = data[a : a + chunk_bytes]
            cid = hashlib.sha256(raw).hexdigest()
            logical = codecs.ChunkHeader(codecs.FULL, width, len(raw), cid, None).pack() + codecs.to_planes(raw, width).tobytes()
            oid = objects.put_bytes(logical)
            ids.append(cid)
            chunks.append({"id": cid, "obj": oid, "enc": "full", "base": None, "root": oid, "depth": 0,
                           "stored": len(logical), "nbytes": len(raw)})
        digest = hashlib.sha256(b"".join(bytes.fromhex(i) for i in ids)).hexdigest()
        manifests[name] = {"format": "mlkeep.tensor/1", "dtype": dtype, "shape": list(shape), "nbytes": len(data),
                           "chunk_bytes": chunk_bytes, "digest": digest, "chunks": chunks}
    return objects.put_bytes(canonical_json({"format": "mlkeep.tree/1", "tensors": manifests}))


def test_stores_written_before_blake3_still_read_and_keep_their_hash(objects: ObjectStore, tensors: TensorStore) -> None:
    w0 = weights(0)
    old = _format_1_tree(objects, w0, 4096)
    def same_tree(a: dict[str, object], b: dict[str, np.ndarray]) -> bool:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)

    assert same_tree(tensors.get_tree(old), w0)
    assert tensors.verify(old).tensors == len(w0)
    w1 = nudge(w0, 1)
    new = tensors.put_tree(w1, parent_tree=old)
    assert same_tree(TensorStore(objects).get_tree(new), w1)
    m_old, m_new = tensors.manifests(old), tensors.manifests(new)
    assert {m.hash for m in m_new.values()} == {"sha256"}  # a descendant keeps its parent's hash: ids compare
    assert m_new["layer.bias"] == m_old["layer.bias"]  # unchanged tensors are reused as they are
    assert any(c.encoding != "full" for c in m_new["layer.weight"].chunks)  # changed ones delta against MKT1 objects
    fresh = tensors.put_tree(w1)
    assert {m.hash for m in tensors.manifests(fresh).values()} == {"blake3"}


def test_a_sampled_delta_keeps_its_noise_planes_raw_and_checks_out_bit_exact(objects: ObjectStore) -> None:
    """Chunks larger than the sample: planes the sample shows to be noise are stored raw, uncompressed."""
    from mlkeep.tensors import codecs

    policy = StoragePolicy(chunk_bytes=1 << 16, sample_bytes=4096)
    with TensorStore(objects, policy=policy, workers=2) as ts:
        w0 = weights(0, n=16384)
        t0 = ts.put_tree(w0)
        w1 = nudge(w0, 1, scale=1e-5)
        t1 = ts.put_tree(w1, t0)
        refs = [c for c in ts.manifests(t1)["layer.weight"].chunks if c.encoding in (codecs.XOR, codecs.SUB)]
        assert refs, "a small update of a large tensor is stored as deltas"
        for ref in refs:
            header = codecs.read_header(ts.blobs.read(ref.obj))
            assert header.stored is not None and header.stored[0] == ref.nbytes // 4  # lowest mantissa byte: raw
            assert header.stored[3] < ref.nbytes // 40  # sign and exponent: compressed
    with TensorStore(objects) as cold:
        assert all(same(w1[k], v) for k, v in cold.get_tree(t1).items())


def test_delta_objects_are_raw_block_zstd_frames_the_object_store_reads_and_verifies(
        objects: ObjectStore, tensors: TensorStore) -> None:
    """Delta objects hold compressed planes, so they are framed as raw zstd blocks without compressing again:
    still ordinary objects, which the object store reads and checks against their ids."""
    from mlkeep.tensors import codecs

    w0 = weights()
    t1 = tensors.put_tree(nudge(w0, 1), tensors.put_tree(w0))
    deltas = {ref.obj for ref in tensors.manifests(t1)["layer.weight"].chunks if ref.encoding != codecs.FULL}
    assert deltas
    for oid in deltas:
        assert objects.verify(oid)
        assert codecs.read_header(objects.get_bytes(oid)).base is not None
    assert same(nudge(w0, 1)["layer.weight"], TensorStore(objects).get_tensor(t1, "layer.weight"))
