"""`gc`: unreachable objects go, reachable ones stay, checkouts stay bit-exact, dry runs delete nothing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import mlkeep.gc as gc_module
from mlkeep.errors import InvalidInputError
from mlkeep.gc import gc, register_root_provider
from mlkeep.store import Store
from mlkeep.tensors import StoragePolicy

sys.path.insert(0, str(Path(__file__).parent / "versioning"))
sys.path.insert(0, str(Path(__file__).parent / "cli"))


def _states(n: int) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    out = []
    for i in range(n):
        with torch.no_grad():
            net[2].weight.add_(1e-3 * (i + 1))
        out.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    return out


def _populate(store: Store, tmp: Path) -> dict[str, object]:
    """Commits (deltas, a branch, a tag, an estimator, a provenance commit), a run with an artifact and dataset."""
    from test_provenance import FN, train_digits

    from mlkeep.versioning import Provenance, RecoveryPolicy

    repo = store.repo("m")
    states = _states(4)
    for i, s in enumerate(states):
        repo.commit(s, f"v{i}")
    repo.tag("first", "main~3")
    repo.branch("exp", at="main~1")
    prov = Provenance(FN, {"steps": 1}, seed=1)
    recovered = prov.run(states[-1])
    repo.commit(recovered, "prov", branch="main", provenance=prov, recovery=RecoveryPolicy(provenance="always"))
    X, y = load_digits(return_X_y=True)
    est = LogisticRegression(max_iter=50).fit(X[:200], y[:200])
    store.repo("sk").commit(est, "fit")
    with store.start_run("gc") as run:
        run.log_dataset(X[:50], name="d", targets=y[:50])
        (tmp / "notes.txt").write_text("hello")
        run.log_artifact(tmp / "notes.txt")
        run.log_model(est, "clf")
    assert train_digits  # imported for the provenance re-runs
    return {"states": [*states, recovered], "est": est, "X": X[:200]}


def _orphans(store: Store) -> set[str]:
    junk = {store.objects.put_bytes(os.urandom(100)) for _ in range(3)}
    tree = store.tensors.put_tree({"w": np.random.default_rng(1).normal(size=5000).astype(np.float32)})
    return junk | store.tensors.tree_objects(tree)


def _check_everything(store: Store, made: dict[str, object]) -> None:
    repo = store.repo("m")
    repo._recovered = None
    store.tensors.blobs.forget()
    states = made["states"]
    for i, ref in enumerate(["main~4", "main~3", "main~2", "main~1", "main"]):
        got = repo.checkout(ref)
        assert all(torch.equal(got[k], v) for k, v in states[i].items()), ref  # type: ignore[index]
    est = store.repo("sk").checkout()
    assert np.array_equal(est.predict_proba(made["X"]), made["est"].predict_proba(made["X"]))  # type: ignore[attr-defined]
    assert store.fsck().ok


def test_unreachable_objects_go_and_every_checkout_stays_bit_exact(store: Store, tmp_path: Path) -> None:
    made = _populate(store, tmp_path)
    orphans = _orphans(store)
    before = set(store.objects)
    dry = gc(store, dry_run=True, grace_seconds=0)
    assert set(dry.deleted) == orphans and set(store.objects) == before  # a dry run deletes nothing
    kept = gc(store)  # default grace period: everything is younger than an hour
    assert kept.deleted == [] and kept.too_young == len(orphans)
    report = gc(store, grace_seconds=0)
    assert set(report.deleted) == orphans and report.bytes_freed > 0
    assert set(store.objects) == before - orphans
    assert {"commits", "tracking"} <= set(report.providers)
    _check_everything(store, made)
    assert gc(store, grace_seconds=0).deleted == []


def test_delta_bases_named_only_in_chunk_headers_are_kept(store: Store) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=20000).astype(np.float32)
    policy = StoragePolicy(chunk_bytes=8192, max_read_amplification=10.0, sample_bytes=1024, read_weight=0.0,
                           max_chain_depth=8)  # deep chains on purpose: bases named only in headers
    trees, parent, versions = [], None, []
    for _ in range(6):
        w = w + rng.normal(scale=1e-4, size=w.shape).astype(np.float32)
        versions.append(w)
        parent = store.tensors.put_tree({"w": w}, parent, policy)
        trees.append(parent)
    assert store.tensors.tree_info(trees[-1]).max_depth >= 3
    register_root_provider("test-last-tree", lambda s: s.tensors.tree_objects(trees[-1]))
    try:
        report = gc(store, grace_seconds=0)
    finally:
        gc_module._providers.pop("test-last-tree")
    assert trees[0] in report.deleted and trees[-1] not in report.deleted
    store.tensors.blobs.forget()
    assert np.array_equal(store.tensors.get_tree(trees[-1])["w"], versions[-1])


def test_a_failing_root_provider_deletes_nothing(store: Store) -> None:
    _orphans(store)
    before = set(store.objects)

    def broken(s: Store) -> list[str]:
        raise RuntimeError("database away")

    register_root_provider("broken", broken)
    try:
        with pytest.raises(RuntimeError):
            gc(store, grace_seconds=0)
    finally:
        gc_module._providers.pop("broken")
    assert set(store.objects) == before
    with pytest.raises(InvalidInputError):
        gc(store, grace_seconds=-1)


def test_reused_objects_are_touched_so_the_grace_period_protects_them(folder_store: Store) -> None:
    oid = folder_store.objects.put_bytes(b"old")
    path = folder_store.objects.path(oid)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert not folder_store.objects.put_compressed(oid, b"")  # exists: not written, but touched
    assert gc(folder_store).deleted == []
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert gc(folder_store).deleted == [oid]


def test_cli_gc(folder_store: Store) -> None:
    from cli_support import invoke

    oid = folder_store.objects.put_bytes(b"orphan")
    root = ["--store", str(Path(folder_store.objects.root).parent)]
    dry = invoke(*root, "gc", "--dry-run", "--grace", "0", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert dry.json()["deleted"] == [oid] and folder_store.objects.exists(oid)
    out = invoke(*root, "gc", "--grace", "0")
    assert out.exit_code == 0 and "deleted 1" in out.stdout and not folder_store.objects.exists(oid)
