"""Model versioning: commit, log, refs, checkout bit for bit, diff, merge, conflicts, corruption."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlkeep.errors import ConflictError, CorruptObjectError, InvalidInputError, MergeConflictError, NotFoundError
from mlkeep.store import Store


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 48), torch.nn.BatchNorm1d(48), torch.nn.ReLU(), torch.nn.Linear(48, 10)
    )


def _train(net: torch.nn.Module, steps: int, params: list[torch.nn.Parameter] | None = None) -> None:
    X, y = load_digits(return_X_y=True)
    X_t, y_t = torch.tensor(X[:512] / 16.0, dtype=torch.float32), torch.tensor(y[:512])
    opt = torch.optim.SGD(params if params is not None else net.parameters(), lr=0.05)
    for i in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X_t[i * 64 % 512 : i * 64 % 512 + 64]), y_t[i * 64 % 512 : i * 64 % 512 + 64])
        loss.backward()
        opt.step()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_commit_log_refs_and_bit_exact_checkout(store: Store) -> None:
    net = _net()
    repo = store.repo("digits-mlp")
    states = []
    for step in range(3):
        _train(net, 5)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        repo.commit(net, f"epoch {step}")
    log = repo.log()
    assert [c.message for c in log] == ["epoch 2", "epoch 1", "epoch 0"]
    assert log[0].parents == (log[1].id,) and log[2].parents == ()
    assert repo.resolve("main~2") == log[2].id == repo.resolve("main^^")
    assert repo.resolve(log[1].id[:7]) == log[1].id
    for i, ref in enumerate(["main~2", "main~1", "main"]):
        assert _same(repo.checkout(ref), states[i])
    fresh = _net()
    repo.checkout("main~1", into=fresh)
    assert _same(fresh.state_dict(), states[1])
    repo.tag("v1", "main~1")
    assert repo.resolve("v1") == log[1].id
    with pytest.raises(ConflictError):
        repo.tag("v1", "main")
    with pytest.raises(NotFoundError):
        repo.resolve("main~3")
    with pytest.raises(NotFoundError):
        repo.resolve("no-such-branch")
    assert "digits-mlp" in store.repositories()
    assert log[0].kind == "torch" and "Linear(in_features=64" in (log[0].architecture or "")


def test_unchanged_tensors_are_stored_once_and_diff_reports_changes(store: Store) -> None:
    net = _net()
    _train(net, 5)
    repo = store.repo("partial")
    first = repo.commit(net, "base")
    before = store.tensors.tree_info(first.tree).stored
    net.eval()  # frozen body: batch-norm statistics stay put too
    _train(net, 3, params=list(net[3].parameters()))  # only the head trains
    second = repo.commit(net, "head only")
    info = store.tensors.tree_info(second.tree)
    assert info.nbytes > 0 and before > 0
    d = repo.diff(first.id, second.id)
    changed = {c.name for c in d.tensors}
    assert changed == {"3.weight", "3.bias"}
    w = next(c for c in d.tensors if c.name == "3.weight")
    assert 0 < w.fraction_changed <= 1 and w.l2 > 0 and w.max_abs > 0
    assert d.unchanged == len(net.state_dict()) - 2


def test_concurrent_commits_to_one_branch_lose_nothing(store: Store) -> None:
    net = _net()
    repo = store.repo("race")
    base = repo.commit(net, "base")
    from mlkeep.versioning.snapshot import snapshot

    _train(net, 1)
    winner = repo.commit(net, "winner")
    with pytest.raises(ConflictError, match="moved"):
        repo.write_snapshot(snapshot(net), "loser", "main", base.id, [base.id], None, (), None, None)
    assert repo.resolve("main") == winner.id


def test_merge_strategies(store: Store) -> None:
    net = _net()
    repo = store.repo("soup")
    base = repo.commit(net, "base")
    repo.branch("a", at="main")
    repo.branch("b", at="main")
    _train(net, 3)
    a = repo.commit(net, "a", branch="a")
    net2 = _net()
    repo.checkout(base.id, into=net2)
    _train(net2, 4, params=list(net2.parameters()))
    with torch.no_grad():
        net2[0].weight.add_(0.5)
    b = repo.commit(net2, "b", branch="b")
    with pytest.raises(MergeConflictError) as info:
        repo.merge("a", "b", strategy="fail")
    assert "0.weight" in info.value.tensors
    assert repo.resolve("a") == a.id  # nothing written
    soup = repo.merge("a", "b", strategy="average")
    assert soup.parents == (a.id, b.id) and repo.resolve("a") == soup.id
    sa, sb, ss = repo.checkout(a.id), repo.checkout(b.id), repo.checkout(soup.id)
    assert torch.allclose(ss["0.weight"], (sa["0.weight"] + sb["0.weight"]) / 2)
    assert torch.equal(ss["1.num_batches_tracked"], sa["1.num_batches_tracked"])
    theirs = repo.merge(a.id, b.id, strategy="theirs", branch="b")
    assert _same(repo.checkout(theirs.id), sb)
    with pytest.raises(InvalidInputError):
        repo.merge("a", "b", strategy="magic")


def test_sklearn_pipeline_round_trip(store: Store) -> None:
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    repo = store.repo("sk")
    c = repo.commit(pipe, "fit")
    assert c.kind == "sklearn" and c.hyperparameters
    assert np.array_equal(repo.checkout().predict_proba(X), pipe.predict_proba(X))
    assert len(store.tensors.tree_info(c.tree).tensors) >= 3  # scaler mean/var/scale and coefficients lifted out


def test_safetensors_file_in_and_out(store: Store, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    net = _net()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    repo = store.repo("st")
    repo.commit(path, "imported")
    assert _same(repo.checkout(), load_file(str(path)))


def test_corrupt_weights_raise_never_return(folder_store: Store) -> None:
    net = _net()
    repo = folder_store.repo("fragile")
    c = repo.commit(net, "x")
    manifests = folder_store.tensors.manifests(c.tree)
    oid = manifests["0.weight"].chunks[0].obj
    path = Path(folder_store.objects.path(oid))
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    fresh = folder_store.repo("fragile")
    fresh.tensors.blobs = type(fresh.tensors.blobs)(folder_store.objects, 0)  # no cache: read from disk
    with pytest.raises(CorruptObjectError):
        fresh.checkout("main")


def test_run_and_dataset_lineage_reach_commits(store: Store) -> None:
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    with store.start_run("digits") as run:
        ds = run.log_dataset(X, name="digits", targets=y)
        c = store.repo("lin").commit(LogisticRegression(max_iter=100).fit(X, y), "fit", run=run, datasets=[ds])
    down = store.lineage(ds.id, "down")
    assert [n.id for n in down.of_kind("commit")] == [c.id]
    assert store.lineage(c.id, "up").of_kind("run")[0].id == run.id


def test_checkout_of_a_version_retention_pruned_raises_weights_pruned(folder_store: Store) -> None:
    from mlkeep import retention
    from mlkeep.errors import WeightsPrunedError
    from mlkeep.gc import gc
    from mlkeep.retention import RetentionPolicy

    repo = folder_store.repo("net")
    rng = np.random.default_rng(0)
    states = [{"w": rng.standard_normal(50_000).astype("float32")} for _ in range(3)]
    ids = [repo.commit(s, f"v{i}").id for i, s in enumerate(states)]
    retention.set_policy(folder_store, RetentionPolicy(keep_versions=1))

    retention.apply_retention(folder_store)  # weights marked dropped, objects not yet deleted: already refused
    with pytest.raises(WeightsPrunedError, match="retention"):
        repo.checkout(ids[0])
    gc(folder_store, grace_seconds=0)
    folder_store.tensors.blobs.forget()
    for ref in (ids[0], ids[1], "main~1"):
        with pytest.raises(WeightsPrunedError) as caught:
            folder_store.repo("net").checkout(ref)
        assert isinstance(caught.value, NotFoundError) and caught.value.code == "WEIGHTS_PRUNED"
    with pytest.raises(WeightsPrunedError):
        folder_store.repo("net").diff(ids[0], ids[2])
    assert np.array_equal(folder_store.repo("net").checkout("main")["w"], states[2]["w"])
    assert [c.id for c in folder_store.repo("net").log()] == ids[::-1]
