"""Small tensors packed into one object per tree, and encoding choices carried from version to version."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlkeep.errors import CorruptObjectError
from mlkeep.gc import gc, register_root_provider
from mlkeep.objects import ObjectStore
from mlkeep.store import Store
from mlkeep.tensors import StoragePolicy, TensorStore, codecs, packs
from mlkeep.tensors.blobs import compress

POLICY = StoragePolicy(chunk_bytes=1 << 16, sample_bytes=4096)


def model(seed: int, n_small: int = 12) -> dict[str, np.ndarray]:
    """A large weight (several chunks) and `n_small` LayerNorm-sized tensors."""
    rng = np.random.default_rng(seed)
    out = {"big.weight": (rng.standard_normal(1 << 16) * 0.05).astype(np.float32)}
    out.update({f"ln{i}.weight": (1 + rng.standard_normal(96) * 0.01).astype(np.float32) for i in range(n_small)})
    return out


def step(w: dict[str, np.ndarray], seed: int, small: bool = True, scale: float = 1e-4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + (rng.standard_normal(v.shape) * scale).astype(np.float32)).astype(np.float32)
            if small or k.startswith("big") else v for k, v in w.items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)


def packed_objects(ts: TensorStore, tree: str) -> set[str]:
    return {c.obj for m in ts.manifests(tree).values() for c in m.chunks if c.at is not None}


def test_changed_small_tensors_share_one_pack_and_check_out_bit_exact(objects: ObjectStore) -> None:
    with TensorStore(objects, policy=POLICY, workers=2) as ts:
        w0 = model(0)
        t0 = ts.put_tree(w0)
        w1 = step(w0, 1)
        t1 = ts.put_tree(w1, t0)
        w2 = step(w1, 2, small=False)  # only the large weight moves
        t2 = ts.put_tree(w2, t1)
        for tree in (t0, t1):
            assert len(packed_objects(ts, tree)) == 1  # twelve small tensors, one object
            smalls = [m.chunks[0] for name, m in ts.manifests(tree).items() if name.startswith("ln")]
            assert all(c.at is not None and c.encoding == codecs.FULL and c.depth == 0 for c in smalls)
        assert packed_objects(ts, t2) == packed_objects(ts, t1)  # unchanged small tensors reuse the pack
        assert any(c.encoding != codecs.FULL for c in ts.manifests(t2)["big.weight"].chunks)
    with TensorStore(objects) as cold:
        for tree, w in ((t0, w0), (t1, w1), (t2, w2)):
            assert same(cold.get_tree(tree), w)  # type: ignore[arg-type]
            assert same({"ln3.weight": cold.get_tensor(tree, "ln3.weight")}, {"ln3.weight": w["ln3.weight"]})  # type: ignore[dict-item]
            report = cold.verify(tree)
            assert report.tensors == len(w)


def test_a_few_small_changes_are_not_packed(objects: ObjectStore) -> None:
    with TensorStore(objects, policy=POLICY, workers=2) as ts:
        w0 = model(0, n_small=3)
        t0 = ts.put_tree(w0)
        assert packed_objects(ts, t0) == set()
        off = ts.put_tree(model(1), policy=dataclasses.replace(POLICY, pack_bytes=0))
        assert packed_objects(ts, off) == set()


def test_a_tampered_pack_raises_and_returns_nothing(objects: ObjectStore) -> None:
    with TensorStore(objects, policy=POLICY, workers=2) as ts:
        tree = ts.put_tree(model(0))
    (oid,) = packed_objects(ts, tree)
    content = bytearray(ts.blobs.read(oid))
    content[-1] ^= 0xFF  # the last member's last plane byte
    objects.remove(oid)
    objects.put_compressed(oid, compress(bytes(content), 3))  # same name, other bytes
    with TensorStore(objects) as cold:
        with pytest.raises(CorruptObjectError):
            cold.get_tree(tree)
        with pytest.raises(CorruptObjectError):
            cold.verify(tree)
    objects.remove(oid)
    objects.put_compressed(oid, compress(b"MKT2" + bytes(content[4:]), 3))  # not a pack at all
    with TensorStore(objects) as cold, pytest.raises(CorruptObjectError):
        cold.get_tensor(tree, "ln0.weight")


def test_a_member_outside_its_pack_is_corrupt() -> None:
    content, at = packs.join([b"abc", b"defg"])
    assert bytes(packs.member(content, at[1], "x")) == b"defg"
    for bad in ((at[1][0], 5), (0, 3), (len(content), 1)):
        with pytest.raises(CorruptObjectError):
            packs.member(content, bad, "x")


def test_gc_keeps_packs_a_reachable_tree_names(store: Store) -> None:
    import mlkeep.gc as gc_module

    ts = store.tensors
    w0 = model(0)
    t0 = ts.put_tree(w0, policy=POLICY)
    w1 = step(w0, 1)
    t1 = ts.put_tree(w1, t0, policy=POLICY)
    old, new = packed_objects(ts, t0), packed_objects(ts, t1)
    assert new and new <= ts.tree_objects(t1)
    register_root_provider("test-packs", lambda s: s.tensors.tree_objects(t1))
    try:
        report = gc(store, grace_seconds=0)
    finally:
        gc_module._providers.pop("test-packs")
    assert old <= set(report.deleted) and not new & set(report.deleted)
    ts.blobs.forget()
    assert same(TensorStore(store.objects).get_tree(t1), w1)  # type: ignore[arg-type]


def test_a_carried_choice_matches_planning_and_a_jump_is_planned_afresh(objects: ObjectStore) -> None:
    """From the third version on, a chunk's encoding is taken from its predecessor instead of sampled;
    it must be what the planner would have chosen, and a chunk whose delta stops paying is planned."""
    with TensorStore(objects, policy=POLICY, workers=2) as ts:
        w = model(0)
        trees = [ts.put_tree(w)]
        for i in range(1, 4):
            w = step(w, i)
            trees.append(ts.put_tree(w, trees[-1]))
        assert ts._choices, "delta choices made against a delta parent are remembered"
        jump = dict(w, **{"big.weight": model(99)["big.weight"]})  # a re-initialised layer: no delta pays
        t_jump = ts.put_tree(jump, trees[-1])
    carried = ts.manifests(trees[-1])["big.weight"].chunks
    with TensorStore(objects, policy=POLICY, workers=2) as fresh:  # no memory: plans every chunk
        planned = fresh.manifests(fresh.put_tree(w, trees[-2]))["big.weight"].chunks
        jumped = fresh.manifests(fresh.put_tree(jump, trees[-1]))["big.weight"].chunks
    assert [(c.encoding, c.base, c.depth) for c in carried] == [(c.encoding, c.base, c.depth) for c in planned]
    assert ts.manifests(t_jump)["big.weight"].chunks == jumped
    assert all(c.encoding == codecs.FULL for c in jumped)
    with TensorStore(objects) as cold:
        assert same(cold.get_tree(t_jump), jump)  # type: ignore[arg-type]
